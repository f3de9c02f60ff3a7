"""Producer worker process of ``leveret perf``.

One process drives one or more publisher connections (non-blocking sockets,
one selector). Each connection has a pre-encoded batch: the basic.publish
frame, the content header frame and the body frame(s) of one message repeated
until about ``--batch-bytes`` (256 KiB). Per message, the only Python work is
one ``pack_into`` of the 16-byte stamp at the start of the body:
``u64 (producer_id << 48 | seq)`` and ``u64 time.monotonic_ns()`` (one clock
read per batch). A batch goes out with as few ``send`` calls as the socket
allows.

How many messages go into the next batch is limited by ``--pmessages``, the
``--rate`` schedule, the publisher-confirm window (``--confirm N``
outstanding) and flow control: after ``connection.blocked`` nothing new is
written until ``connection.unblocked``.

The worker talks to the main process over a pipe: it sends ``ready``, waits for
``go``, then sends a ``tick`` with counter deltas every 200 ms, and a ``final``
with per-producer totals (and the sequence numbers left unconfirmed) at the end.
"""
from __future__ import annotations

import os
import selectors
import signal
import struct
import time

from ..amqp import spec
from .stats import ConfirmTracker
from .wire import FH, BrokerClosed, Connection, PerfError, content_header, frame, start_worker, stop_requested

STAMP = struct.Struct(">QQ")
TICK_NS = 200_000_000
_I = struct.Struct(">I")
_QB = struct.Struct(">QB")
_ACK = 0x003C0050
_NACK = 0x003C0078
_RETURN = 0x003C0032
_BLOCKED = 0x000A003C
_UNBLOCKED = 0x000A003D
_CONN_CLOSE = 0x000A0032
_CHAN_CLOSE = 0x00140028
_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


def build_message(exchange: str, routing_key: str, size: int, persistent: bool, frame_max: int) -> tuple[bytes, int]:
    """All frames of one message on channel 1, and the offset of its body's first byte."""
    head = frame(1, 1, spec.BasicPublish(exchange=exchange, routing_key=routing_key).encode())
    head += frame(2, 1, content_header(size, persistent))
    body_off = len(head) + 7
    chunk = frame_max - 8
    body = bytes(size)
    parts = [head]
    for i in range(0, size, chunk):
        parts.append(frame(3, 1, body[i:i + chunk]))
    return b"".join(parts), body_off


class Publisher:
    """One publishing connection (channel 1) and its counters."""

    def __init__(self, uri, pid: int, exchange: str, routing_key: str, opts):
        self.pid = pid
        self.conn = Connection(uri, opts.connect_timeout)
        if opts.confirm:
            self.conn.rpc(spec.ConfirmSelect(), spec.ConfirmSelectOk)
        self.sock = self.conn.sock
        msg, body_off = build_message(exchange, routing_key, opts.size, opts.persistent, self.conn.frame_max)
        self.msg_len = len(msg)
        self.k = max(1, opts.batch_bytes // self.msg_len)
        self.batch = bytearray(msg * self.k)
        self.mv = memoryview(self.batch)
        self.offs = list(range(body_off, self.k * self.msg_len, self.msg_len)) if opts.size >= 16 else None
        self.ident = pid << 48
        self.limit = opts.pmessages or 0
        self.rate = float(opts.rate or 0)
        self.window = opts.confirm or 0
        self.tracker = ConfirmTracker() if opts.confirm else None
        self.pending = None
        self.pending_n = 0
        self.produced = 0
        self.sent = 0
        self.returned = 0
        self.done = False
        self.t0 = 0
        self.next_due = 0
        self.blocked: str | None = None
        self.blocked_since = 0
        self.blocked_ns = 0
        self.blocked_count = 0
        self.blocked_reasons: list = []
        self.tick_blocked = False
        self.last_send_ns = 0
        self.last_confirm_ns = 0
        self.rbuf = bytearray(self.conn.buf)
        self.ev = 0

    # ------------------------------------------------------------- publishing
    def allowance(self, now: int) -> int:
        """How many messages may go into the next batch right now."""
        if self.done or self.blocked:
            return 0
        n = self.k
        if self.limit:
            left = self.limit - self.produced
            if left <= 0:
                self.done = True
                return 0
            n = min(n, left)
        if self.window:
            n = min(n, self.window - (self.produced - self.tracker.settled))
        if self.rate:
            due = int((now - self.t0) * self.rate / 1e9) + 1 - self.produced
            if due <= 0:
                self.next_due = self.t0 + int(self.produced * 1e9 / self.rate)
                return 0
            n = min(n, due)
        return n

    def fill(self, n: int, now: int) -> None:
        offs = self.offs
        if offs is not None:
            pk = STAMP.pack_into
            buf = self.batch
            base = self.ident + self.produced
            for off, ident in zip(offs, range(base, base + n)):
                pk(buf, off, ident, now)
        self.pending = self.mv[:n * self.msg_len]
        self.pending_n = n
        self.produced += n

    def try_send(self) -> bool:
        """Write as much of the pending batch as the socket takes; True when it is all out."""
        try:
            w = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return False
        if w == len(self.pending):
            self.pending = None
            self.sent += self.pending_n
            self.last_send_ns = time.monotonic_ns()
            return True
        self.pending = self.pending[w:]
        return False

    # ---------------------------------------------------------------- reading
    def on_readable(self, now: int) -> None:
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            raise PerfError("the broker closed a producer connection")
        buf = self.rbuf
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 8:
            ftype, ch, size = FH.unpack_from(buf, pos)
            fend = pos + 8 + size
            if fend > end:
                break
            if ftype == 1:
                (cm,) = _I.unpack_from(buf, pos + 7)
                if cm == _ACK or cm == _NACK:
                    tag, bits = _QB.unpack_from(buf, pos + 11)
                    if self.tracker is not None:
                        self.tracker.settle(tag, bool(bits & 1), cm == _NACK)
                        self.last_confirm_ns = now
                elif cm == _BLOCKED:
                    m = spec.decode_method(bytes(buf[pos + 7:fend - 1]))
                    self.blocked = m.reason or "blocked"
                    self.blocked_since = now
                    self.blocked_count += 1
                    self.tick_blocked = True
                    if self.blocked not in self.blocked_reasons:
                        self.blocked_reasons.append(self.blocked)
                elif cm == _UNBLOCKED:
                    if self.blocked is not None:
                        self.blocked_ns += now - self.blocked_since
                    self.blocked = None
                elif cm == _RETURN:
                    self.returned += 1      # its content frames are skipped below
                elif cm == _CONN_CLOSE or cm == _CHAN_CLOSE:
                    m = spec.decode_method(bytes(buf[pos + 7:fend - 1]))
                    try:
                        self.sock.setblocking(True)
                        self.sock.settimeout(1.0)
                        reply = spec.ConnectionCloseOk() if cm == _CONN_CLOSE else spec.ChannelCloseOk()
                        self.sock.sendall(frame(1, 0 if cm == _CONN_CLOSE else ch, reply.encode()))
                    except OSError:
                        pass
                    self.conn.closed = cm == _CONN_CLOSE
                    what = "connection" if cm == _CONN_CLOSE else "channel"
                    raise BrokerClosed(f"the broker closed producer {self.pid}'s {what}",
                                       m.reply_code, m.reply_text)
            elif ftype == 8:
                try:
                    self.sock.send(_HEARTBEAT)
                except OSError:
                    pass
            pos = fend
        del buf[:pos]

    def confirmed_all(self) -> bool:
        return self.tracker is None or self.tracker.settled >= self.produced

    def summary(self, now: int) -> dict:
        blocked_ns = self.blocked_ns + (now - self.blocked_since if self.blocked else 0)
        t = self.tracker
        return {
            "pid": self.pid, "sent": self.sent, "produced": self.produced, "returned": self.returned,
            "confirmed": t.acked_count if t else 0, "nacked": t.nacked_count if t else 0,
            "unconfirmed": t.unconfirmed(self.produced) if t else None,
            "blocked_count": self.blocked_count, "blocked_ns": blocked_ns,
            "blocked_reasons": self.blocked_reasons,
            "last_send_ns": self.last_send_ns, "last_confirm_ns": self.last_confirm_ns,
            "close_ok": False,
        }


def _counters(pubs) -> tuple[int, int, int]:
    sent = confirmed = nacked = 0
    for p in pubs:
        sent += p.sent
        if p.tracker is not None:
            confirmed += p.tracker.acked_count
            nacked += p.tracker.nacked_count
    return sent, confirmed, nacked


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run(ctl, uri, assignments, opts) -> None:
    """Worker entry point: ``assignments`` is a list of (producer id, exchange, routing key)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = start_worker(ctl, lambda pid, exchange, rk: Publisher(uri, pid, exchange, rk, opts),
                           assignments)
    if started is None:
        return
    pubs, msg = started
    _, t0, end_ns = msg
    time.sleep(max(0, t0 - time.monotonic_ns()) / 1e9)      # everybody starts at t0
    errors: list = []
    sel = selectors.DefaultSelector()
    for p in pubs:
        p.t0 = t0
        p.sock.setblocking(False)
        p.ev = selectors.EVENT_READ
        sel.register(p.sock, p.ev, p)
    sel.register(ctl, selectors.EVENT_READ, None)
    live = list(pubs)
    stopping = False
    deadline = None
    next_tick = t0 + TICK_NS
    last = (0, 0, 0)
    READ, RW = selectors.EVENT_READ, selectors.EVENT_READ | selectors.EVENT_WRITE
    while True:
        now = time.monotonic_ns()
        if now >= next_tick:
            cur = _counters(pubs)
            idx = (now - t0) // TICK_NS - 1
            blocked = [p.blocked for p in pubs if p.tick_blocked or p.blocked]
            for p in pubs:
                p.tick_blocked = False
            ctl.send(("tick", idx, {"sent": cur[0] - last[0], "confirmed": cur[1] - last[1],
                                    "nacked": cur[2] - last[2], "blocked": blocked}))
            last = cur
            next_tick = t0 + (idx + 2) * TICK_NS
        time_up = end_ns is not None and now >= end_ns
        wake = next_tick
        busy = False
        for p in live:
            try:
                if p.pending is None and not stopping and (not time_up or p.rate):
                    # at the end of --time, a rate-limited producer still sends what was due before it
                    n = p.allowance(end_ns - 1 if time_up else now)
                    if n > 0:
                        p.fill(n, now)
                    elif p.rate and not p.done and not p.blocked:
                        wake = min(wake, p.next_due)
                if p.pending is not None and not p.blocked and p.try_send():
                    if p.rate:      # sleep until the next message is due
                        wake = min(wake, p.t0 + int(p.produced * 1e9 / p.rate))
                    else:
                        busy = not stopping
            except (OSError, PerfError) as e:
                errors.append(str(e) if isinstance(e, PerfError) else f"producer {p.pid}: connection lost: {e}")
                live.remove(p)
                sel.unregister(p.sock)
                stopping = True
                break
            want = RW if p.pending is not None and not p.blocked else READ
            if want != p.ev:
                sel.modify(p.sock, want, p)
                p.ev = want
        if time_up:
            stopping = True
        if stopping or all(p.done for p in live):
            if deadline is None:
                deadline = now + int(opts.confirm_timeout * 1e9)
            if all(p.pending is None and p.confirmed_all() for p in live):
                break
            if now > deadline:
                for p in live:
                    if p.pending is not None:
                        errors.append(f"producer {p.pid}: could not finish writing within "
                                      f"{opts.confirm_timeout:g} s" + (" (blocked by the broker)" if p.blocked else ""))
                    elif not p.confirmed_all():
                        errors.append(f"producer {p.pid}: {p.produced - p.tracker.settled} confirms still "
                                      f"outstanding after {opts.confirm_timeout:g} s")
                break
            wake = min(wake, deadline)
        timeout = 0 if busy else max(0, wake - now) / 1e9
        for key, ev in sel.select(timeout):
            p = key.data
            if p is None:
                stopping = stop_requested(ctl) or stopping
                continue
            if ev & READ:
                try:
                    p.on_readable(time.monotonic_ns())
                except (OSError, PerfError) as e:
                    errors.append(str(e) if isinstance(e, PerfError) else f"producer {p.pid}: connection lost: {e}")
                    if p in live:
                        live.remove(p)
                        sel.unregister(p.sock)
                    stopping = True
    now = time.monotonic_ns()
    cur = _counters(pubs)
    ctl.send(("tick", max(0, (now - t0) // TICK_NS), {"sent": cur[0] - last[0], "confirmed": cur[1] - last[1],
                                                      "nacked": cur[2] - last[2], "blocked": []}))
    summaries = [p.summary(now) for p in pubs]
    # close before reporting: close-ok means the broker has processed every publish before it
    for p, summary in zip(pubs, summaries):
        if p in live:
            p.sock.setblocking(True)
            p.conn.buf = p.rbuf
            summary["close_ok"] = p.conn.close(opts.confirm_timeout)
            if not summary["close_ok"]:
                errors.append(f"producer {p.pid}: the broker did not answer connection.close within "
                              f"{opts.confirm_timeout:g} s (publishes may be unprocessed)")
        else:
            p.sock.close()
    ctl.send(("final", {"pubs": summaries, "cpu_s": _cpu(), "errors": errors}))
