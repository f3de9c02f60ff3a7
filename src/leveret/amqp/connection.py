"""The AMQP 0-9-1 connection state machine (server side), sans I/O; AMQP 0-8 too,
as RabbitMQ serves it (:mod:`leveret.amqp.amqp08`).

Rule 1: everything that decides what the *connection* does with bytes lives
here — protocol header, start/tune/open handshake, close in both directions,
heartbeats, frame-size limits, channel multiplexing and content assembly
(``basic.publish`` → header → body*). What a method *means* for exchanges,
queues and messages is the job of the subclass (``leveret.broker.connection``),
reached through the ``on_*`` hooks below.

Rule 2: no sockets, no asyncio. Input is :meth:`receive_data` (bytes from the
peer) and :meth:`tick` (the clock, for heartbeats and the handshake timeout);
output is :meth:`data_to_send`, with :attr:`wakeup` called when output becomes
pending so an I/O layer can flush it once per event-loop turn.

States::

    HEADER -> START_OK -> TUNE_OK -> OPEN -> RUNNING -> CLOSING -> CLOSED
                 (secure-ok not used: PLAIN, AMQPLAIN and EXTERNAL are one round trip)

Errors: any :class:`~leveret.amqp.errors.ChannelError` raised by a hook closes
that channel (channel.close with its code and text; frames on the channel are
then ignored until close-ok); a :class:`ConnectionError_` sends connection.close
and ignores everything but close/close-ok. Anything unexpected becomes 541
INTERNAL_ERROR for this connection only.

What RabbitMQ 3.10 (rabbit_reader, rabbit_command_assembler) does, copied here:

* Before connection.open RabbitMQ answers almost every error with a *silent close*:
  no frame, the socket dropped 3 s later (SILENT_CLOSE_DELAY) -- bad tune-ok values
  (frame_max 0 included), an undecodable start-ok, connection.close itself. While
  opening (after tune-ok) errors get a connection.close. Input that crashes its
  reader -- an unknown class/method id, a field table parse_table has no clause for in
  a method's arguments -- drops the socket at once. Until tune-ok frames may carry
  4096 bytes; after it up to frame_max (RabbitMQ's 8-byte fudge; the error quotes
  frame_max - 8).
* An undecodable method on channel 0 of a running connection is 541 INTERNAL_ERROR
  (class/method 0/0): handle_method0 catches the decoder's crash.
* Content: the header's class must be the method's, its weight 0; more body than the
  header announced never completes (the message is not published, further body frames
  are swallowed, any other frame on the channel is 505 "expected content body");
  errors in the sequence carry the content method's class/method ids. Content
  properties that do not decode are 541 INTERNAL_ERROR (0/0) when the message is
  complete.
* Connection-class methods and server-only methods (every "-ok", basic.get-empty,
  basic.deliver/get-ok/return once their content is in) on an open channel: 503
  "COMMAND_INVALID - unimplemented method".
* After a connection error the reader reads on, closing: frames already received after the
  bad one (the same TCP segment included) are ignored but for connection.close (answered with
  close-ok) and close-ok, however the bytes were split. A frame larger than frame_max or with
  a bad end octet is fatal instead (``fatal_frame_error``): connection.close 501, nothing more
  is read and the socket is dropped 3 s later.
* Frame payloads in FRAME_ERROR/UNEXPECTED_FRAME texts are quoted as
  rabbit_reader:payload_snippet does, laid out by Erlang's ~p
  (:func:`~leveret.amqp.errors.frame_text`).
"""
from __future__ import annotations

import logging
import struct

from . import amqp08, spec
from .codec import check_properties, decode_table
from .errors import (
    AMQPError, AMQPSyntaxError, ChannelError, ConnectionError_, FatalFrameError, FrameError, ReaderCrash,
    SilentClose, TableCrash,
    command_invalid, erl_binary, frame_text, internal_error, unexpected_frame,
)
from .frames import HEARTBEAT, method_frame
from ..settings import DEFAULTS

log = logging.getLogger("leveret.connection")

_FH = struct.Struct(">BHI")
_HDR = struct.Struct(">HHQ")
_Q = struct.Struct(">Q")

HEADER, START_OK, TUNE_OK, OPEN, RUNNING, CLOSING, CLOSED = range(7)

SERVER_FRAME_MAX = DEFAULTS.frame_max

# protocol header -> (version_major, version_minor, AMQP 0-8?) (rabbit_reader:handshake/2)
_HEADERS = {
    spec.PROTOCOL_HEADER: (0, 9, False),
    b"AMQP\x01\x01\x00\x09": (0, 9, False),        # 0-9: served as 0-9-1
    amqp08.HEADERS[0]: (8, 0, True),                 # 0-8 ("8-0", as most 0-8 clients send it)
    amqp08.HEADERS[1]: (8, 0, True),                 # 0-8 as the spec on the AMQP site prints it
}
# Methods RabbitMQ 3.10's channel has no clause for: sent on an open channel they close the
# connection with 503 "COMMAND_INVALID - unimplemented method" (their class/method ids). That is
# every connection-class method, every "-ok" (channel.close-ok counts only while the channel is
# not closing) and the server's basic.get-empty; the content-bearing server methods (deliver,
# get-ok, return) are refused the same way once their content has arrived.
_UNIMPLEMENTED = frozenset(
    m.INDEX for m in spec.METHODS.values()
    if not m.CONTENT and (m.CLASS_ID == 10 or m.NAME.endswith("-ok") or m is spec.BasicGetEmpty)
) | frozenset(m.INDEX for m in amqp08.METHODS.values() if m.INDEX in amqp08.ONLY_08_INDEXES and not m.CONTENT)


class ChannelState:
    """Per-channel framing state: content assembly and the closing flag."""

    __slots__ = ("number", "closing", "pending", "header", "body_size", "chunks", "received")

    def __init__(self, number: int):
        self.number = number
        self.closing = False          # we sent channel.close, waiting for close-ok
        self.pending = None           # basic.publish waiting for its content
        self.header = None
        self.body_size = 0
        self.chunks: list | None = None
        self.received = 0


class ProtocolConnection:
    """Server side of one AMQP connection. Subclass and implement the hooks."""

    server_properties: dict = {}
    # connection.start's mechanisms; a broker connection sets its own (offered_mechanisms)
    mechanisms = b"PLAIN AMQPLAIN"
    # defaults from leveret.settings; a broker connection sets its own from its Settings
    handshake_timeout = DEFAULTS.handshake_timeout
    heartbeat_default = DEFAULTS.heartbeat
    channel_max_default = DEFAULTS.channel_max
    frame_max_default = DEFAULTS.frame_max
    max_message_size = DEFAULTS.max_message_size
    close_linger = DEFAULTS.close_linger      # wait for close-ok, or for the peer to hang up
    #                                           (at most the negotiated heartbeat interval)

    def __init__(self, now: float = 0.0):
        self.state = HEADER
        self._buf = bytearray()
        self._out: list = []
        self.out_bytes = 0                 # approximate size of _out (deliveries count it)
        self.wakeup = None                 # callable set by the I/O layer
        self.close_socket = False          # the I/O layer should close after flushing
        self.channel_max = self.channel_max_default
        self.frame_max = self.frame_max_default
        self.heartbeat = 0
        self.channels: dict[int, ChannelState] = {}
        self.client_properties: dict = {}
        self.created = now
        self.last_recv = now
        self.last_send = now
        self.alarm: str | None = None      # resource alarm text ("low on memory", ...) or None
        self.blocked = False               # blocked by the alarm: input is held, not parsed
        self._blocked_sent = False
        self.vhost_name = None
        self.close_deadline = None
        # Until tune-ok RabbitMQ's frame_max is its initial_frame_max, 4096. A frame's payload
        # may be up to frame_max (RabbitMQ's FRAME_SIZE_FUDGE of 8 bytes); its error text and
        # the body frames we send use frame_max - 8.
        self._frame_limit = spec.FRAME_MIN_SIZE
        self._max_frame_payload = spec.FRAME_MIN_SIZE - 8
        self._input_dead = False              # after a fatal frame error nothing more is read
        self.amqp08 = False                   # the client asked for AMQP 0-8 (see amqp08)
        self._methods = spec.METHODS          # class<<16|method -> codec, per protocol
        self.props_ok = None                  # the last content properties seen to decode
        self._last_publish_payload = None
        self._last_publish_size = -1          # len(_last_publish_payload); no frame matches -1
        self._last_publish = None

    # ------------------------------------------------------------ output

    def emit(self, data: bytes) -> None:
        out = self._out
        out.append(data)
        if len(out) == 1 and self.wakeup is not None:
            self.wakeup()

    def emit_many(self, parts: list) -> None:
        out = self._out
        was_empty = not out
        out.extend(parts)
        if was_empty and self.wakeup is not None:
            self.wakeup()

    def send_method(self, channel: int, method: spec.Method) -> None:
        if self.amqp08:
            method = amqp08.outgoing(method)
            if method is None:
                # a 0-9-1-only method (connection.blocked, ...): RabbitMQ's encoder crashes
                # and the connection is dropped
                self._finish_close()
                return
        self.emit(method_frame(channel, method))

    def data_to_send(self) -> bytes:
        """Everything pending for the peer, as one buffer (then cleared)."""
        parts = self.output_parts()
        return b"".join(parts) if parts else b""

    def output_parts(self) -> list | None:
        """Everything pending for the peer, as the list of buffers (for a gathering write)."""
        self.before_flush()
        self.out_bytes = 0
        out = self._out
        if not out:
            return None
        self._out = []
        return out

    def before_flush(self) -> None:
        """Hook: last chance to add coalesced frames (e.g. confirm acks)."""

    # ------------------------------------------------------------ input

    def receive_data(self, data) -> None:
        while data is not None:
            data = self._receive(data)

    def _receive(self, data):
        """Parse ``data``; returns what is left to parse after a connection error (RabbitMQ's
        reader reads on, closing), else None."""
        if self.state == CLOSED or self._input_dead:
            return None
        if self.blocked:
            self._buf += data
            return None
        try:
            if self.state == HEADER:
                buf = self._buf
                buf += data
                if len(buf) < 8:
                    return None         # RabbitMQ reads all 8 octets before it answers
                version = _HEADERS.get(bytes(buf[:8]))
                if version is None:
                    self._bad_header()
                    return None
                data = bytes(buf[8:])
                buf.clear()
                self._send_start(*version)
            elif self._buf:
                buf = self._buf
                # Still inside the frame the buffer starts with (one it may take): keep the piece,
                # parse nothing. Copying and re-parsing the buffer for every piece made a frame
                # sent a byte per read cost its size squared (bench/trickle.py: 2 s for 128 KiB).
                if len(buf) >= 7:
                    size = int.from_bytes(buf[3:7], "big")
                    if size <= self._frame_limit and len(buf) + len(data) < size + 8:
                        buf += data
                        return None
                data = bytes(buf) + data
                buf.clear()
            self._parse_frames(data)
        except AMQPError as e:
            rest = bytes(self._buf)               # what followed the bad frame
            self._buf.clear()
            if self.state in (START_OK, TUNE_OK) and not isinstance(e, SilentClose):
                # before tune-ok RabbitMQ answers every error (the refused login aside, which
                # the subclass reports itself) by dropping the socket after 3 s, frameless
                e = SilentClose(e.reply_text)
            self.connection_error(e)
            if isinstance(e, FatalFrameError):
                self._input_dead = True           # the framing is lost: read nothing more ...
                if self.state == CLOSING:
                    self.close_deadline = self.last_recv + e.delay   # ... and drop the socket then
            elif rest and self.state == CLOSING:
                return rest                       # read on, closing
        except Exception:  # never let one connection's bug take the broker down
            log.exception("internal error on connection")
            self._buf.clear()
            self.connection_error(ConnectionError_(541, "INTERNAL_ERROR"))
        return None

    def _parse_frames(self, buf: bytes) -> None:
        # ``buf`` is immutable bytes: slicing it gives each payload in one copy;
        # a trailing partial frame is kept in ``_buf`` for the next call.
        pos = 0
        n = len(buf)
        maxp = self._max_frame_payload
        maxb = min(maxp, self.max_message_size)    # the largest body the hot path takes
        limit = self._frame_limit
        try:
            while n - pos >= 8 and self.state != CLOSED and not self.blocked:
                ftype, ch, size = _FH.unpack_from(buf, pos)
                if size > limit:
                    raise FatalFrameError(frame_text(ftype, b"", ("frame_too_large", size, maxp)))
                end = pos + 7 + size
                if end >= n:
                    break
                if buf[end] != 0xCE:
                    raise FatalFrameError(frame_text(ftype, buf[pos + 7:end],
                                                     ("invalid_frame_end_marker", buf[end])))
                if ftype == 1 and size == self._last_publish_size \
                        and buf.startswith(self._last_publish_payload, pos + 7) \
                        and self.state == RUNNING and self.alarm is None:
                    # Hot path: a repeated basic.publish followed by its header and one body
                    # frame, all complete in this buffer, is handled in one step (and the
                    # method frame's payload is compared in place, not copied). It takes only
                    # what the general path would accept, with the same outcome; anything
                    # else (a body over frame_max or max_message_size included) falls through.
                    pos = end + 1
                    cs = self.channels.get(ch)
                    if cs is not None and not cs.closing and cs.pending is None and n - pos >= 22:
                        t2, ch2, s2 = _FH.unpack_from(buf, pos)
                        e2 = pos + 7 + s2
                        if t2 == 2 and ch2 == ch and 14 <= s2 <= maxp and e2 < n and buf[e2] == 0xCE \
                                and buf[pos + 7] == 0 and buf[pos + 8] == 60 \
                                and buf[pos + 9] == 0 and buf[pos + 10] == 0:      # class 60, weight 0
                            header = buf[pos + 7:e2]
                            (bsize,) = _Q.unpack_from(header, 4)
                            if bsize <= maxb:
                                if bsize == 0:
                                    pos = e2 + 1
                                    self._publish_now(ch, header, b"")
                                    continue
                                p3 = e2 + 1
                                if n - p3 >= 8:
                                    t3, ch3, s3 = _FH.unpack_from(buf, p3)
                                    e3 = p3 + 7 + s3
                                    if t3 == 3 and ch3 == ch and s3 == bsize and e3 < n and buf[e3] == 0xCE:
                                        pos = e3 + 1
                                        method = self._last_publish
                                        try:
                                            self.on_publish(ch, method, header, buf[p3 + 7:e3])
                                        except ChannelError as e:
                                            self.channel_error(ch, e, method)
                                        if self.alarm is not None:
                                            self._block()
                                        continue
                    payload = self._last_publish_payload
                else:
                    payload = buf[pos + 7:end]
                    pos = end + 1
                if ch and self.state != RUNNING:
                    self._frame_not_running(ftype, payload)
                elif ftype == 3:
                    if ch == 0:
                        if self.state != CLOSING:
                            raise unexpected_frame(frame_text(3, payload))
                        continue
                    self._on_body_frame(ch, payload)
                    if self.alarm is not None:
                        self._block()
                elif ftype == 1 and len(payload) >= 4:
                    self._on_method_frame(ch, payload)
                    if maxp != self._max_frame_payload:     # a tune-ok changed it
                        maxp = self._max_frame_payload
                        maxb = min(maxp, self.max_message_size)
                    limit = self._frame_limit
                elif ftype == 2 and len(payload) >= 12:
                    if ch == 0:
                        if self.state != CLOSING:
                            raise unexpected_frame(frame_text(2, payload))
                        continue
                    self._on_header_frame(ch, payload)
                    if self.alarm is not None:
                        self._block()
                elif ftype == 8 and not payload:
                    if ch != 0:
                        raise unexpected_frame(frame_text(8, b""))
                elif self.state != CLOSING:
                    # rabbit_command_assembler:analyze_frame has no clause for it: a method frame
                    # without class and method ids, a header frame without class, weight and
                    # body size, a heartbeat with a payload, an unknown frame type
                    raise FrameError(frame_text(ftype, payload, "unknown_frame"))
        finally:
            if pos < n and self.state != CLOSED:
                self._buf += buf[pos:]

    def _frame_not_running(self, ftype: int, payload) -> None:
        """A frame on a non-zero channel before connection.open-ok (or while closing)."""
        if self.state == CLOSING:
            return              # RabbitMQ ignores channels once the connection is closing
        # rabbit_reader:handle_frame: unexpected_frame before the connection runs (a close frame
        # while opening; before that, like every handshake error, a silent close)
        raise unexpected_frame(frame_text(ftype, payload))

    # ------------------------------------------------------------ resource alarms

    def set_alarm(self, text: str | None) -> None:
        """The broker's resource alarm changed (RabbitMQ's ``conserve_resources``).

        As in ``rabbit_reader``: a connection is blocked only once it publishes (a content
        header or body frame) while an alarm is on; then ``connection.blocked`` is sent (to
        clients with that capability, once per episode) and nothing more is parsed — bytes
        already received included — until every alarm clears. Heartbeat timeouts are
        suspended meanwhile. ``connection.unblocked`` follows if ``blocked`` was sent.
        """
        self.alarm = text
        if text is None and self.blocked:
            self.blocked = False
            if self._blocked_sent:
                self._blocked_sent = False
                self.send_method(0, spec.ConnectionUnblocked())
            self.on_blocked_change()
            if self._buf and self.state != CLOSED:
                self.receive_data(b"")

    def _block(self) -> None:
        if self.blocked or self.state != RUNNING:
            return
        self.blocked = True
        if self.capability("connection.blocked") and not self._blocked_sent:
            self._blocked_sent = True
            self.send_method(0, spec.ConnectionBlocked(reason=self.alarm))
        self.on_blocked_change()

    def capability(self, name: str) -> bool:
        """Did the client announce ``name`` in its ``capabilities`` table?"""
        caps = self.client_properties.get("capabilities")
        return bool(isinstance(caps, dict) and caps.get(name))

    def on_blocked_change(self) -> None:
        """Hook: :attr:`blocked` changed (the I/O layer stops or resumes reading)."""

    # ------------------------------------------------------------ handshake

    def _bad_header(self) -> None:
        self._buf.clear()
        self.emit(spec.PROTOCOL_HEADER)
        self.state = CLOSED
        self.close_socket = True
        if self.wakeup is not None:
            self.wakeup()

    def _send_start(self, major: int = 0, minor: int = 9, is_08: bool = False) -> None:
        self.state = START_OK
        props = self.server_properties
        if is_08:
            self.amqp08 = True
            self._methods = amqp08.METHODS
            props = amqp08.server_properties(props)
        self.send_method(0, spec.ConnectionStart(
            version_major=major, version_minor=minor, server_properties=props,
            mechanisms=self.mechanisms, locales=b"en_US"))

    def _on_method_frame(self, ch: int, payload: bytes) -> None:
        if payload == self._last_publish_payload:
            method = self._last_publish
        else:
            method = self._decode_method(ch, payload)
            if method is None:
                return
            if method.INDEX == 0x3C0028 and not method.immediate:
                # publishers repeat the same exchange/routing key: decode once
                self._last_publish_payload = payload
                self._last_publish_size = len(payload)
                self._last_publish = method
        if self.state == RUNNING and ch:
            cs = self.channels.get(ch)
            if cs is not None and not cs.closing and cs.pending is None:
                if method.INDEX in _UNIMPLEMENTED:
                    raise command_invalid("unimplemented method", method.CLASS_ID, method.METHOD_ID)
                try:
                    if method.CONTENT:
                        # its content comes first (basic.deliver/get-ok/return and 0-8's content
                        # methods, and a publish's own checks, wait until it is complete, like
                        # RabbitMQ's channel, which gets the method with its content)
                        cs.pending = method
                    elif method.INDEX == spec.ChannelClose.INDEX:
                        self.on_channel_close(ch)
                        del self.channels[ch]
                        self.send_method(ch, spec.ChannelCloseOk())
                    elif method.INDEX == spec.ChannelOpen.INDEX:
                        raise channel_error_already_open(ch)
                    else:
                        self.on_method(ch, method)
                except ChannelError as e:
                    self.channel_error(ch, e, method)
                return
        self._on_method_slow(ch, method)

    def _decode_method(self, ch: int, payload: bytes) -> spec.Method | None:
        """The method in a method frame's payload (at least 4 bytes), checked in RabbitMQ's
        order; None when it is to be ignored."""
        cid = payload[0] << 8 | payload[1]
        mid = payload[2] << 8 | payload[3]
        cls = self._methods.get(cid << 16 | mid)
        st = self.state
        if cls is None:
            # rabbit_command_assembler:analyze_frame -> lookup_method_name crashes the reader
            raise ReaderCrash(f"unknown method {cid}/{mid}")
        if ch:
            cs = self.channels.get(ch)
            if cs is None:
                self._check_channel_count()      # rabbit_reader:create_channel comes first
            elif cs.pending is not None and not cs.closing:
                # the channel's assembler wants content: the method is not even decoded
                raise self._content_expected(cs)
        try:
            return cls.decode(payload, 4)
        except (struct.error, IndexError, AMQPSyntaxError, TableCrash) as e:
            if ch:
                if isinstance(e, TableCrash):
                    raise                        # parse_table crashes the reader: socket dropped
                raise ConnectionError_(501, f"FRAME_ERROR - cannot decode {erl_binary(payload[4:])}",
                                       cls.CLASS_ID, cls.METHOD_ID) from None
            # Channel 0: rabbit_reader:handle_method0 catches whatever the decoder throws;
            # that is no AMQP error, so a running connection gets 541 INTERNAL_ERROR and one
            # still in its handshake a silent close.
            if st == CLOSING:
                return None
            if st == RUNNING:
                raise internal_error() from None
            raise SilentClose(f"cannot decode {cls.NAME}") from None

    def _check_channel_count(self) -> None:
        if len(self.channels) >= self.channel_max:
            raise ConnectionError_(530, f"NOT_ALLOWED - number of channels opened ({len(self.channels)}) "
                                        f"has reached the negotiated channel_max ({self.channel_max})")

    @staticmethod
    def _content_expected(cs: ChannelState) -> ConnectionError_:
        """505 for a frame that is not the content a channel is assembling (its ids are the
        content method's, as in rabbit_command_assembler)."""
        m = cs.pending
        if cs.header is None:
            text = f"expected content header for class {m.CLASS_ID}, got non content header frame instead"
        else:
            text = "expected content body, got non content body frame instead"
        return unexpected_frame(text, m.CLASS_ID, m.METHOD_ID)

    def _on_method_slow(self, ch: int, method: spec.Method) -> None:
        idx = method.INDEX
        st = self.state
        if st == CLOSING:
            if idx == spec.ConnectionCloseOk.INDEX:
                self._finish_close()
            elif idx == spec.ConnectionClose.INDEX:
                self.send_method(0, spec.ConnectionCloseOk())
            return
        if ch == 0:
            if st == START_OK and idx == spec.ConnectionStartOk.INDEX:
                self.client_properties = method.client_properties or {}
                self.on_start_ok(method)
                if self.state == START_OK:
                    self.state = TUNE_OK
                    self.send_method(0, spec.ConnectionTune(
                        channel_max=self.channel_max_default, frame_max=self.frame_max_default,
                        heartbeat=self.heartbeat_default))
                return
            if st == TUNE_OK and idx == spec.ConnectionTuneOk.INDEX:
                self._on_tune_ok(method)
                return
            if st == OPEN and idx == spec.ConnectionOpen.INDEX:
                self.on_open(method.virtual_host)
                self.vhost_name = method.virtual_host
                self.state = RUNNING
                self.send_method(0, spec.ConnectionOpenOk())
                return
            if st == RUNNING:
                if idx == spec.ConnectionClose.INDEX:
                    # like RabbitMQ: answer close-ok and leave closing the socket to the client
                    self.send_method(0, spec.ConnectionCloseOk())
                    self._finish_close(linger=True)
                    return
                if idx == spec.ConnectionUpdateSecret.INDEX:
                    self.on_update_secret(method)
                    self.send_method(0, spec.ConnectionUpdateSecretOk())
                    return
                if idx == spec.ConnectionCloseOk.INDEX:
                    return
            # (connection.close included: before open-ok RabbitMQ does not answer it either)
            raise command_invalid_for(method, st)
        if st != RUNNING:
            raise command_invalid_for(method, st)
        # a channel method on a channel that is closing, unopened or mid-content
        cs = self.channels.get(ch)
        if cs is None:
            self._check_channel_count()
            if idx != spec.ChannelOpen.INDEX:
                raise ConnectionError_(504, "CHANNEL_ERROR - expected 'channel.open'",
                                       method.CLASS_ID, method.METHOD_ID)
            self.channels[ch] = ChannelState(ch)
            try:
                self.on_channel_open(ch)
            except ChannelError as e:
                self.channel_error(ch, e, method)
                return
            self.send_method(ch, spec.ChannelOpenOk())
            return
        if cs.closing:
            if idx == spec.ChannelCloseOk.INDEX:
                del self.channels[ch]
            elif idx == spec.ChannelClose.INDEX:
                self.send_method(ch, spec.ChannelCloseOk())
            return
        if cs.pending is not None:
            raise self._content_expected(cs)
        raise ConnectionError_(541, "INTERNAL_ERROR - unreachable method state")

    def _on_tune_ok(self, m) -> None:
        # rabbit_reader:validate_negotiated_integer_value, frame_max first: 0 ("no limit") and
        # values above the server's are refused, and so are non-zero values below the minimum
        # (4096 for frame_max, 1 for channel_max). Refused by a silent close after 3 s.
        for field, value, server, least in (("frame_max", m.frame_max, self.frame_max_default, spec.FRAME_MIN_SIZE),
                                            ("channel_max", m.channel_max, self.channel_max_default, 1)):
            if value != 0 and value < least:
                raise SilentClose(f"negotiated {field} = {value} is lower than the minimum allowed value ({least})")
            if server != 0 and (value == 0 or value > server):
                raise SilentClose(f"negotiated {field} = {value} is higher than the maximum allowed value "
                                  f"({server})")
        fm = m.frame_max
        self.channel_max = m.channel_max
        self.frame_max = fm
        self._frame_limit = fm
        self._max_frame_payload = fm - 8
        self.heartbeat = m.heartbeat
        self.state = OPEN

    # ------------------------------------------------------------ content

    def _content_channel(self, ch: int) -> ChannelState | None:
        """The channel a header/body frame belongs to, or None when the frame is to be ignored
        (connection or channel closing)."""
        cs = self.channels.get(ch)
        if cs is None:
            if self.state == CLOSING:
                return None
            self._check_channel_count()      # rabbit_reader:create_channel comes first
            raise unexpected_frame("expected method frame, got non method frame instead")
        return None if cs.closing or self.state != RUNNING else cs

    def _on_header_frame(self, ch: int, payload: bytes) -> None:
        # rabbit_command_assembler:process for a content header: the method must want
        # content, no header may have come yet, weight must be 0, the class the method's
        cs = self._content_channel(ch)
        if cs is None:
            return
        m = cs.pending
        if m is None:
            raise unexpected_frame("expected method frame, got non method frame instead")
        if cs.header is not None:
            raise self._content_expected(cs)
        class_id, weight, size = _HDR.unpack_from(payload, 0)
        if weight != 0:
            raise self._content_expected(cs)
        if class_id != m.CLASS_ID:
            raise unexpected_frame(f"expected content header for class {m.CLASS_ID}, "
                                   f"got one for class {class_id} instead", m.CLASS_ID, m.METHOD_ID)
        if size > self.max_message_size and m.INDEX == spec.BasicPublish.INDEX:
            # refused at the header, before buffering the body (RabbitMQ checks the same
            # limit once the content is assembled; the client sees the same channel error,
            # or immediate's connection error, which RabbitMQ checks first)
            self.check_publish(ch, m)
            self.channel_error(ch, ChannelError(
                406, f"PRECONDITION_FAILED - message size {size} is larger than configured max size "
                     f"{self.max_message_size}", 60, 40))
            return
        cs.header = payload
        cs.body_size = size
        if size == 0:
            self._content_done(cs, b"")
        else:
            cs.chunks = []
            cs.received = 0

    def _on_body_frame(self, ch: int, payload: bytes) -> None:
        cs = self._content_channel(ch)
        if cs is None:
            return
        if cs.header is None:
            if cs.pending is None:
                raise unexpected_frame("expected method frame, got non method frame instead")
            raise self._content_expected(cs)
        received = cs.received = cs.received + len(payload)
        if received == cs.body_size:
            chunks = cs.chunks
            if chunks:
                chunks.append(payload)
                payload = b"".join(chunks)
            self._content_done(cs, payload)
        elif received < cs.body_size:
            cs.chunks.append(payload)
        else:
            # More body than the header announced. RabbitMQ's assembler never reaches "complete"
            # again: the message is never published, further body frames are swallowed and any
            # other frame on the channel is 505 "expected content body" (_content_expected).
            cs.chunks = None

    def _publish_now(self, ch: int, header: bytes, body: bytes) -> None:
        method = self._last_publish
        try:
            self.on_publish(ch, method, header, body)
        except ChannelError as e:
            self.channel_error(ch, e, method)
        if self.alarm is not None:
            self._block()

    def _content_done(self, cs: ChannelState, body: bytes) -> None:
        method, header = cs.pending, cs.header
        cs.pending = cs.header = cs.chunks = None
        if method.INDEX != spec.BasicPublish.INDEX:
            # a server-to-client content method (or 0-8's file/stream/...): refused now
            raise command_invalid("unimplemented method", method.CLASS_ID, method.METHOD_ID)
        self.check_publish(cs.number, method)
        try:
            self.on_publish(cs.number, method, header, body)
        except ChannelError as e:
            self.channel_error(cs.number, e, method)

    def check_content(self, header) -> None:
        """The content properties must decode: RabbitMQ's channel decodes them at basic.publish
        (``ensure_content_decoded``, after the exchange checks) and a crash there -- a header
        table with a ``U`` or ``Z`` value, a property list cut short or too long -- closes the
        connection with a bare 541 INTERNAL_ERROR (and a consumer could not have decoded them
        either). :meth:`on_publish` calls it at that point of its checks. The last properties
        that passed are kept in :attr:`props_ok`: publishers tend to repeat them, and a caller
        on the hot path compares ``header[12:]`` with it before calling."""
        props = header[12:]
        if props == self.props_ok:
            return
        try:
            check_properties(props)
        except AMQPError:
            raise internal_error() from None
        self.props_ok = props

    # ------------------------------------------------------------ errors & close

    def channel_error(self, ch: int, e: ChannelError, method=None) -> None:
        cs = self.channels.get(ch)
        if cs is None or cs.closing:
            return
        cs.closing = True
        cs.pending = cs.header = cs.chunks = None
        cid = e.class_id or (method.CLASS_ID if method is not None else 0)
        mid = e.method_id or (method.METHOD_ID if method is not None else 0)
        self.on_channel_close(ch)
        self.send_method(ch, spec.ChannelClose(reply_code=e.reply_code, reply_text=clip_reply_text(e.reply_text),
                                               class_id=cid, method_id=mid))

    def connection_error(self, e: AMQPError) -> None:
        if self.state in (CLOSING, CLOSED):
            return
        if self.state == HEADER or isinstance(e, SilentClose):
            log.info("closing connection %s: %s", getattr(self, "name", "?"), e.reply_text)
            self._finish_close(delay=e.delay if isinstance(e, SilentClose) else 0.0)
            return
        self.send_method(0, spec.ConnectionClose(reply_code=e.reply_code, reply_text=clip_reply_text(e.reply_text),
                                                 class_id=e.class_id, method_id=e.method_id))
        if isinstance(e, FatalFrameError):
            self._finish_close(delay=e.delay)
            return
        self._enter_closing()

    def close(self, code: int = 320, text: str = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'") -> None:
        """Server-initiated connection close (shutdown, management)."""
        self.connection_error(ConnectionError_(code, text))

    def _enter_closing(self) -> None:
        self.state = CLOSING
        self.close_deadline = None
        self.on_closing()

    def _finish_close(self, linger: bool = False, delay: float = 0.0) -> None:
        """Stop serving. ``linger``: keep the socket open for the peer to close (up to
        ``close_linger`` seconds, then the clock closes it). ``delay``: read nothing more and
        close the socket that many seconds after the last input (RabbitMQ's silent close)."""
        if self.state == CLOSED:
            return
        prev = self.state
        self.state = CLOSED
        self.close_deadline = self.last_recv + delay if delay else None
        self.close_socket = not (linger or delay)
        if prev != CLOSING:
            self.on_closing()
        if self.wakeup is not None:
            self.wakeup()

    def connection_lost(self) -> None:
        """The I/O layer reports the socket is gone."""
        if self.state != CLOSED:
            prev = self.state
            self.state = CLOSED
            if prev != CLOSING:
                self.on_closing()

    # ------------------------------------------------------------ timers

    def tick(self, now: float, received: bool = False, sent: bool = False) -> None:
        """Clock input. ``received``/``sent``: was there traffic since the last tick (an I/O
        layer may instead set :attr:`last_recv`/:attr:`last_send` as traffic happens)."""
        if received:
            self.last_recv = now
        if sent:
            self.last_send = now
        st = self.state
        if st in (HEADER, START_OK, TUNE_OK, OPEN):
            if now - self.created > self.handshake_timeout:
                log.info("closing connection: handshake timeout")
                self._finish_close()
            return
        if st == CLOSING or st == CLOSED:
            if st == CLOSED and self.close_socket:
                return
            if self.close_deadline is None:
                # rabbit_reader:close_connection: the peer gets the heartbeat interval when one was
                # negotiated and is shorter, else ?CLOSING_TIMEOUT (30 s), to close its end
                hb = self.heartbeat
                self.close_deadline = now + (hb if 0 < hb < self.close_linger else self.close_linger)
            elif now >= self.close_deadline:
                self.close_socket = True
                self.state = CLOSED
            return
        hb = self.heartbeat
        if st == RUNNING and hb:
            if self.blocked:
                self.last_recv = now          # the heartbeat monitor is paused while blocked
            elif now - self.last_recv > 2 * hb:
                log.warning("missed heartbeats from client, timeout: %ss", hb)
                self._finish_close()
                return
            if now - self.last_send >= hb / 2:
                self.emit(HEARTBEAT)
                self.last_send = now

    # ------------------------------------------------------------ hooks

    def on_start_ok(self, method) -> None:
        """Authenticate; raise ConnectionError_ (or call _finish_close) to refuse."""

    def on_open(self, vhost: str) -> None:
        """Check the vhost; raise ConnectionError_(530, ...) to refuse."""

    def on_update_secret(self, method) -> None:
        pass

    def check_publish(self, ch: int, method) -> None:
        """Called once a basic.publish's content is complete, before :meth:`on_publish` (or at
        a content header over ``max_message_size``, before that refusal); may raise.

        The hot path skips it for a repeat of the last decoded publish, so it may depend on the
        method only and must accept any publish with ``immediate`` false (the only kind cached)."""

    def on_channel_open(self, ch: int) -> None:
        pass

    def on_method(self, ch: int, method) -> None:
        raise ConnectionError_(540, f"NOT_IMPLEMENTED - {method.NAME}", method.CLASS_ID, method.METHOD_ID)

    def on_publish(self, ch: int, method, header: bytes, body: bytes) -> None:
        """A complete basic.publish. Its content properties are not checked yet: call
        :meth:`check_content` before reading them, at the point RabbitMQ decodes them."""

    def on_channel_close(self, ch: int) -> None:
        """The channel is going away (client close or server error): release its resources."""

    def on_closing(self) -> None:
        """The connection stops serving (close sent or received, or socket lost)."""



def clip_reply_text(text: str) -> str:
    """A reply text is a shortstr: RabbitMQ cuts longer ones to 252 bytes + ``...``."""
    b = text.encode("utf-8", "surrogateescape")
    if len(b) <= 255:
        return text
    return (b[:252] + b"...").decode("utf-8", "surrogateescape")


def channel_error_already_open(ch: int) -> ConnectionError_:
    return ConnectionError_(504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


_STATE_NAMES = {START_OK: "starting", TUNE_OK: "tuning", OPEN: "opening", RUNNING: "running"}


def command_invalid_for(method, state) -> ConnectionError_:
    return ConnectionError_(504, f"CHANNEL_ERROR - unexpected method in connection state "
                                 f"{_STATE_NAMES.get(state, 'closing')}", method.CLASS_ID, method.METHOD_ID)


# RabbitMQ's auth mechanism registry in the order connection.start lists it (an ETS set's order,
# observed on 3.10.8: "EXTERNAL PLAIN AMQPLAIN" whatever the order of auth_mechanisms.N)
MECHANISM_ORDER = ("EXTERNAL", "PLAIN", "AMQPLAIN")
_offered: dict = {}


def offered_mechanisms(configured: tuple, tls: bool) -> bytes:
    """connection.start's ``mechanisms`` (rabbit_reader:auth_mechanisms/1): the registered
    mechanisms that are in ``auth_mechanisms`` and that offer themselves on this socket --
    EXTERNAL only on a TLS connection (with or without a client certificate: a missing one is
    refused at login with a clearer reason)."""
    key = (tuple(configured), tls)
    m = _offered.get(key)
    if m is None:
        m = _offered[key] = " ".join(n for n in MECHANISM_ORDER
                                     if n in configured and (tls or n != "EXTERNAL")).encode()
    return m


def parse_plain(response: bytes) -> tuple[str, str] | None:
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")


def parse_amqplain(response: bytes) -> tuple[str, str] | None:
    import struct as _s
    try:
        table, _ = decode_table(_s.pack(">I", len(response)) + response, 0)
    except AMQPError:
        return None
    login, pw = table.get("LOGIN"), table.get("PASSWORD")
    if login is None or pw is None:
        return None
    if isinstance(login, bytes):
        login = login.decode("utf-8", "replace")
    if isinstance(pw, bytes):
        pw = pw.decode("utf-8", "replace")
    return str(login), str(pw)
