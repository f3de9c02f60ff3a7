"""A client connection as the broker sees it: auth, vhost, channels, exclusive queues.

Subclasses the sans-I/O :class:`~leveret.amqp.connection.ProtocolConnection`
and fills in its hooks: authentication (PLAIN, AMQPLAIN, and EXTERNAL -- the user
named by the client's TLS certificate, :mod:`leveret.broker.certlogin` -- each only
when it is in ``Settings.auth_mechanisms``; guest only from loopback), vhost access,
one :class:`~leveret.broker.channel.Channel` per open channel, and cleanup —
unacked messages requeued, consumers cancelled, exclusive queues deleted — when
the connection goes.

As rabbit_reader does: a mechanism the broker did not offer is refused before any
check ("invalid authentication mechanism", a silent close like every error before
connection.tune); a refused login is logged as "<MECHANISM> login refused: <reason>"
and the client, if it has the ``authentication_failure_close`` capability, gets 403
ACCESS_REFUSED "Login was refused using authentication mechanism <MECHANISM>. For
details see the broker logfile."

The I/O layer (``leveret.server``) drives it through a small interface and
nothing else: what it knows of the socket at construction (the peer address,
``tls``, and ``peer_cert``: the verified client certificate, DER, or None), bytes in (``receive_data``), output out (``output_parts``,
``has_output``, the ``wakeup``/``flush_now`` callbacks it sets), the clock
(``tick``), :meth:`set_writable` when the socket's write buffer fills or
drains (while the peer is not reading, channels stop taking deliveries so a
slow consumer cannot make the broker buffer without bound), and
:attr:`reading` / ``on_reading_change``: whether the broker wants the socket
read (not while a resource alarm blocks the connection, nor while publisher
flow control holds it -- :class:`~leveret.broker.flow.FlowControl`).

Settlements in one read go channel by channel, as RabbitMQ 3.10's processes usually schedule
them: its reader hands every frame of a read to its channel's process in order, the first
channel it woke runs first and casts all its acks to the queue process before the second
channel's reach it, and the queue delivers after each ack. So a run of consecutive
``basic.ack``/``nack``/``reject`` frames in one read is applied grouped by channel, channels in
the order of their first settlement in the run, each channel's in its own order: the first
channel's are applied as they come, the others' are held until the run ends -- at the first
other frame that reaches a channel or the connection, or at the end of the read (then the held
ones go first). With acks for consumers "a" (channel 1) and "b" (channel 2), each holding two
of six messages at prefetch 2, written a, b, a, b in one write, "a" gets both remaining
messages: 4/2, RabbitMQ's outcome in about 80% of trials (tools/backlog_split_trials.py; the
others come from its two schedulers running the channels in parallel). Leveret gives that
outcome every time; settlements in separate reads keep their order.
"""
from __future__ import annotations

import logging
import time

from ..amqp import spec
from ..amqp.connection import ProtocolConnection, offered_mechanisms, parse_amqplain, parse_plain
from ..amqp.errors import ChannelError, ConnectionError_, SilentClose
from .certlogin import LoginRefused, auth_name
from .channel import HANDLERS, Channel

# basic.ack, basic.reject, basic.nack: the settlements a read applies channel by channel
SETTLEMENTS = frozenset((spec.BasicAck.INDEX, spec.BasicReject.INDEX, spec.BasicNack.INDEX))

log = logging.getLogger("leveret.connection")


class BrokerConnection(ProtocolConnection):
    def __init__(self, broker, peer: tuple | None = None, now: float = 0.0, tls: bool = False,
                 peer_cert: bytes | None = None, local: tuple | None = None):
        super().__init__(now)
        self.broker = broker
        self.local = local               # (host, port) of the listening end
        self.connected_at = int(time.time() * 1000)
        self.socket_stats = None         # set by the I/O layer: () -> the socket's byte counts
        s = broker.settings
        self.tls = tls
        self.peer_cert = peer_cert       # DER of the verified client certificate (TLS only)
        self.mechanisms = offered_mechanisms(s.auth_mechanisms, tls)
        self.server_properties = broker.server_properties
        self.heartbeat_default = s.heartbeat
        self.frame_max_default = s.frame_max
        self.channel_max_default = s.channel_max
        self.handshake_timeout = s.handshake_timeout
        self.max_message_size = s.max_message_size
        self.close_linger = s.close_linger
        self.peer = peer
        self.user = None
        self.auth_mechanism = None
        self.vhost = None
        self.sessions: dict[int, Channel] = {}
        self.exclusive_queues: list = []
        # channels owing confirms, in the order they came to (a set would go by memory address)
        self.confirm_channels: dict = {}
        self.cancels: list = []          # (channel, consumer tag): basic.cancel notifications owed
        self.writable = True
        self.flow_held = False           # publisher flow control holds this connection
        self.settle_lead = None          # channel of the first settlement in this read's run ...
        self.settle_held = None          # ... and the other channels' settlements: {channel: [method]}
        self.flush_now = None            # set by the I/O layer: write pending output at once
        self.on_reading_change = None    # set by the I/O layer: ``reading`` changed
        self.name = f"{peer[0]}:{peer[1]}" if peer else "?"
        # RabbitMQ's connection name, as the management API shows it
        self.display_name = (f"{peer[0]}:{peer[1]} -> {local[0]}:{local[1]}" if peer and local else self.name)

    @property
    def reading(self) -> bool:
        """Should the I/O layer read this connection's socket?"""
        return not self.blocked and not self.flow_held

    def on_blocked_change(self) -> None:
        if self.on_reading_change is not None:
            self.on_reading_change()

    def set_flow_held(self, held: bool) -> None:
        self.flow_held = held
        if self.on_reading_change is not None:
            self.on_reading_change()

    def has_output(self) -> bool:
        return bool(self._out)

    # ------------------------------------------------------------ handshake hooks

    login_as = None     # a direct connection's user (the I/O layer sets it): no SASL check

    def on_start_ok(self, m) -> None:
        mech = m.mechanism
        self.auth_mechanism = mech
        if self.login_as is not None:
            self.user = self.login_as
            return
        if mech not in self.mechanisms.decode().split(" "):
            raise SilentClose(f"invalid authentication mechanism '{mech}'")
        peer_host = self.peer[0] if self.peer else None
        user = None
        if mech == "EXTERNAL":
            try:
                name = auth_name(self.peer_cert, self.broker.settings)
            except LoginRefused as e:
                reason = str(e)
            else:
                user, reason = self.broker.access.login_external(name, peer_host)
        else:
            resp = m.response.encode("utf-8", "surrogateescape")
            creds = parse_plain(resp) if mech == "PLAIN" else parse_amqplain(resp)
            reason = "invalid credentials"
            if creds is not None:
                user, reason = self.broker.access.login(creds[0], creds[1], peer_host)
        if user is None:
            log.warning("%s login refused: %s (connection from %s)", mech, reason, self.name)
            text = (f"ACCESS_REFUSED - Login was refused using authentication mechanism {mech}. "
                    "For details see the broker logfile.")
            if self.capability("authentication_failure_close"):
                self.connection_error(ConnectionError_(403, text))
            else:
                # no frame; rabbit_reader:handle_exception drops the socket 3 s later
                self._finish_close(delay=SilentClose.delay)
            return
        self.user = user

    def on_open(self, vhost: str) -> None:
        """``rabbit_reader``'s order: the vhost's connection limit (an unknown vhost is found
        here), the user's connection limit, then the user's access to the vhost."""
        b = self.broker
        v = b.vhosts.get(vhost)
        if v is None:
            raise ConnectionError_(530, f"NOT_ALLOWED - vhost {vhost} not found", 10, 40)
        user = self.user
        lim = v.limits.get("max-connections", -1)
        if lim >= 0 and sum(1 for c in b.connections if c.vhost is v) >= lim:
            raise ConnectionError_(530, f"NOT_ALLOWED - access to vhost '{vhost}' refused for user "
                                        f"'{user.name}': connection limit ({lim}) is reached", 10, 40)
        lim = user.limits.get("max-connections", -1)
        if lim >= 0 and sum(1 for c in b.connections if c.user is user) >= lim:
            raise ConnectionError_(530, f"NOT_ALLOWED - connection refused for user '{user.name}': "
                                        f"user connection limit ({lim}) is reached", 10, 40)
        if not b.access.vhost_access(user, vhost):
            raise ConnectionError_(530, f"NOT_ALLOWED - access to vhost '{vhost}' refused for user "
                                        f"'{user.name}'", 10, 40)
        self.vhost = v
        self.broker.connections.add(self)
        self.broker.stats.churn["connections_opened"] += 1
        self.alarm = self.broker.alarm_text
        cname = self.client_properties.get("connection_name")
        log.info("connection %s%s: user '%s' authenticated and granted access to vhost '%s'",
                 self.name, f" ({cname})" if cname else "", self.user.name, vhost)

    def _check_channel_count(self) -> None:
        """``rabbit_reader:create_channel``: the negotiated channel_max, then the user's
        ``max-channels`` limit over all its connections."""
        super()._check_channel_count()
        u = self.user
        lim = u.limits.get("max-channels", -1) if u is not None else -1
        if lim >= 0 and sum(len(c.channels) for c in self.broker.connections if c.user is u) >= lim:
            raise ConnectionError_(530, f"NOT_ALLOWED - number of channels opened for user '{u.name}' has "
                                        f"reached the maximum allowed user limit of ({lim})")

    def force_close(self, text: str) -> None:
        """Close from the broker's side (a deleted user or vhost): connection.close 320 now."""
        self.close(320, text)
        if self.wakeup is not None:
            self.wakeup()

    def on_update_secret(self, m) -> None:
        # PLAIN/AMQPLAIN users carry no expiring token; RabbitMQ accepts and re-checks.
        pass

    # ------------------------------------------------------------ channel hooks

    def on_channel_open(self, ch: int) -> None:
        if self.settle_lead is not None:
            self.end_settle_run()
        self.sessions[ch] = Channel(self, ch)
        self.broker.stats.churn["channels_opened"] += 1

    def on_method(self, ch: int, method) -> None:
        lead = self.settle_lead
        if method.INDEX in SETTLEMENTS:
            if lead is None:
                self.settle_lead = ch
            elif lead != ch:
                held = self.settle_held
                if held is None:
                    self.settle_held = {ch: [method]}
                else:
                    held.setdefault(ch, []).append(method)
                return
        elif lead is not None:
            self.end_settle_run()
        fn = HANDLERS.get(method.INDEX)
        if fn is None:
            raise ConnectionError_(540, f"NOT_IMPLEMENTED - {method.NAME}", method.CLASS_ID, method.METHOD_ID)
        fn(self.sessions[ch], method)

    def end_settle_run(self) -> None:
        """The run of settlements in this read ended: apply the held ones, channel by channel in
        the order of their first settlement (see the module docstring)."""
        held = self.settle_held
        self.settle_lead = self.settle_held = None
        if held is None:
            return
        for ch, methods in held.items():
            for m in methods:
                cs = self.channels.get(ch)
                session = self.sessions.get(ch)
                if cs is None or cs.closing or session is None:
                    break
                try:
                    HANDLERS[m.INDEX](session, m)
                except ChannelError as e:
                    self.channel_error(ch, e, m)

    def _parse_frames(self, buf: bytes) -> None:
        try:
            super()._parse_frames(buf)
        finally:
            # the end of the read ends the run (before a connection error it raised is
            # handled: RabbitMQ's reader had handed the settlements to the channels)
            if self.settle_lead is not None:
                self.end_settle_run()

    def check_publish(self, ch: int, m) -> None:
        if m.immediate:
            raise ConnectionError_(540, "NOT_IMPLEMENTED - immediate=true", 60, 40)

    def on_publish(self, ch: int, method, header: bytes, body: bytes) -> None:
        if self.settle_lead is not None:
            self.end_settle_run()
        self.sessions[ch].publish(method, header, body)

    def on_channel_close(self, ch: int) -> None:
        if self.settle_lead is not None:
            self.end_settle_run()
        s = self.sessions.pop(ch, None)
        if s is not None:
            s.close()

    def notify_cancel(self, channel: Channel, tag: str) -> None:
        """Tell the client that the broker cancelled consumer ``tag`` (its queue went). RabbitMQ's
        channel sends this when it learns that the queue process is gone -- after the reply to
        the queue.delete that removed it, even on the same channel -- so the notification waits
        for the next flush, after every reply of this turn; a channel that closed meanwhile
        gets none."""
        if not self.cancels and self.wakeup is not None:
            self.wakeup()
        self.cancels.append((channel, tag))

    def before_flush(self) -> None:
        cc = self.confirm_channels
        if cc:
            for s in cc:
                s.flush_confirms()
            cc.clear()
        if self.cancels:
            cancels, self.cancels = self.cancels, []
            for ch, tag in cancels:
                if not ch.closed and self.sessions.get(ch.number) is ch:
                    self.send_method(ch.number, spec.BasicCancel(consumer_tag=tag, nowait=True))

    # ------------------------------------------------------------ flow

    def has_consumers(self) -> bool:
        for s in self.sessions.values():
            if s.consumers:
                return True
        return False

    def set_writable(self, writable: bool) -> None:
        if writable == self.writable:
            return
        self.writable = writable
        for s in list(self.sessions.values()):
            s.set_deliverable()

    # ------------------------------------------------------------ teardown

    def on_closing(self) -> None:
        if self.vhost is not None:
            log.info("closing connection %s (vhost '%s', user '%s')", self.name, self.vhost.name,
                     self.user.name if self.user else "?")
        # nothing more goes out once connection.close is sent: a channel closing first must not
        # hand its requeued messages to a consumer on another channel of this connection
        for s in self.sessions.values():
            s.deliverable = False
        if self.settle_lead is not None:
            self.end_settle_run()           # (connection.close in the same read: acked, not requeued)
        for ch in list(self.sessions):
            self.on_channel_close(ch)
        v = self.vhost
        if v is not None:
            for q in self.exclusive_queues:
                v.delete_queue(q)
        self.exclusive_queues.clear()
        self.broker.flow.forget(self)
        self.broker.connections.discard(self)
        self.broker.stats.churn["connections_closed"] += 1
