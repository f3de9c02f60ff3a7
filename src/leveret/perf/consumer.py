"""Consumer worker process of ``leveret perf``.

One process drives one or more consuming connections (one queue each). Each
connection reads with ``recv_into`` into a 1 MiB buffer and walks the frames
with ``struct.unpack_from``: for a delivery it looks only at the delivery tag,
the redelivered flag and the first 16 body bytes, the stamp the producers
wrote: ``u64 (producer_id << 48 | seq)`` and ``u64 send time``
(``time.monotonic_ns``, a clock shared by all processes of one machine).

* Accounting: per producer a bytearray indexed by seq counts arrivals
  (saturating at 255); the main process turns them into lost / duplicated /
  unexpected counts.
* Latency: receive time (one clock read per ``recv_into``) minus send time, in
  log-scale buckets; equal send times in a row (one producer batch) are
  bucketed once.
* Acks (manual mode): ``--multi-ack N`` acks with multiple=True every N
  messages, otherwise every message is acked on its own; the acks of one read
  go out in one ``sendall``. Pending acks are flushed when the prefetch window
  is full or the connection goes idle, so ``N > prefetch`` cannot deadlock.
  Delivery tags on the channel are consecutive (one consumer per channel).

Talks to the main process like the producer worker: ``ready``, ``go``,
``tick`` every 200 ms, ``stop``, ``final``.
"""
from __future__ import annotations

import os
import selectors
import signal
import struct
import time

from ..amqp import spec
from .stats import bucket
from .wire import BrokerClosed, Connection, PerfError, frame, start_worker, stop_requested

TICK_NS = 200_000_000
BUF_SIZE = 1 << 20
MIN_FREE = 1 << 18
MASK = (1 << 48) - 1
_FH = struct.Struct(">BHI")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_QB = struct.Struct(">QB")
_QQ = struct.Struct(">QQ")
_ACK = struct.Struct(">BHIIQBB")
_DELIVER = 0x003C003C
_ACK_METHOD = 0x003C0050
_CANCEL = 0x003C001E
_CONN_CLOSE = 0x000A0032
_CHAN_CLOSE = 0x00140028
_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


class Receiver:
    """One consuming connection (channel 1) on one queue."""

    def __init__(self, uri, cid: int, queue: str, qidx: int, opts, nprod: int):
        self.cid = cid
        self.qidx = qidx
        self.conn = c = Connection(uri, opts.connect_timeout)
        if opts.qos:
            c.rpc(spec.BasicQos(prefetch_count=opts.qos), spec.BasicQosOk)
        c.rpc(spec.BasicConsume(queue=queue, consumer_tag=f"perf-consumer-{cid}", no_ack=opts.autoack),
              spec.BasicConsumeOk)
        self.sock = c.sock
        self.sock.settimeout(None)
        self.buf = bytearray(BUF_SIZE)
        self.mv = memoryview(self.buf)
        left = bytes(c.buf)
        self.buf[:len(left)] = left
        self.pos = 0
        self.end = len(left)
        self.chunk = c.frame_max - 8
        self.maps = [bytearray(4096) for _ in range(nprod)]
        self.autoack = opts.autoack
        self.multi = opts.multi_ack
        self.prefetch = opts.qos
        self.received = 0
        self.stamped = 0
        self.redelivered = 0
        self.bad = 0
        self.last_tag = 0
        self.acked = 0
        self.last_ns = 0
        self.hist: dict = {}
        # state of a delivery spread over several reads / frames
        self.state = 0           # 0: between messages, 1: header expected, 2: body frames expected
        self.cur_redel = 0
        self.cur_left = 0
        self.cur_size = 0
        self.cur_first = True
        self.cur_stamp = None
        self.layout = None
        self.layouts: dict = {}
        self.run_start = self.expect = -1    # current run of consecutive idents: [run_start, expect)

    # ---------------------------------------------------------------- reading
    def on_readable(self) -> int:
        try:
            n = self.sock.recv_into(self.mv[self.end:])
        except InterruptedError:
            return 0
        if not n:
            raise PerfError(f"the broker closed consumer {self.cid}'s connection")
        now = time.monotonic_ns()
        self.end += n
        self.parse(now)
        if self.pos == self.end:
            self.pos = self.end = 0
        elif BUF_SIZE - self.end < MIN_FREE:
            rest = self.buf[self.pos:self.end]
            self.buf[:len(rest)] = rest
            self.pos, self.end = 0, len(rest)
        if not self.autoack:
            self.send_acks(False)
        return n

    def parse(self, now: int) -> None:
        """Walk the complete frames in ``buf[pos:end]``.

        Fast path: the deliveries of one queue all have the same frame layout
        (same consumer tag, exchange, routing key, properties and body size), so
        once a layout is learned one ``unpack_from`` per message reads the
        method/header/body sizes (checked against the layout), the delivery tag,
        the redelivered flag and the stamp. Anything else (a new layout, bodies
        over several frames, messages split across reads, other methods) goes
        through the general frame-by-frame path below.
        """
        buf = self.buf
        pos = self.pos
        end = self.end
        fh = _FH.unpack_from
        u32 = _I.unpack_from
        u64 = _Q.unpack_from
        qb = _QB.unpack_from
        hist = self.hist
        received = redel_n = 0
        last_tag = 0
        last_ts = -1
        run = 0
        expect = self.expect
        state = self.state
        lay = self.layout
        learned_at = -1
        while True:
            if lay is not None and state == 0:
                mlen, sig, hs, bs, unpack, stamped = lay
                # ---- fast path: one struct call per message
                while pos + mlen <= end:
                    if stamped:
                        s1, tag, redel, h2, b2, f3, ident, ts = unpack(buf, pos)
                    else:
                        s1, tag, redel, h2, b2, f3 = unpack(buf, pos)
                    if s1 != sig or h2 != hs or b2 != bs or f3 != bs:
                        break
                    pos += mlen
                    received += 1
                    last_tag = tag
                    if redel:
                        redel_n += 1
                    if stamped:
                        if ident == expect:
                            expect += 1
                        else:
                            self.mark(self.run_start, expect)
                            self.run_start = ident
                            expect = ident + 1
                        if ts != last_ts:
                            if run:
                                k = bucket(now - last_ts)
                                hist[k] = hist.get(k, 0) + run
                            last_ts = ts
                            run = 1
                        else:
                            run += 1
            # ---- general path: one frame
            if end - pos < 8:
                break
            ftype, ch, size = fh(buf, pos)
            fend = pos + 8 + size
            if fend > end:
                break
            if ftype == 1:
                (cm,) = u32(buf, pos + 7)
                if cm == _DELIVER:
                    clen = buf[pos + 11]
                    h = fend
                    if learned_at != pos and h + 19 <= end:
                        (bsize,) = u64(buf, h + 11)
                        (hsize,) = u32(buf, h + 3)
                        if 0 < bsize <= self.chunk and h + 16 + hsize + bsize <= end:
                            # a complete single-body-frame delivery: learn its layout, retry fast
                            self.layout = lay = self.learn(size, clen, hsize, bsize)
                            learned_at = pos
                            continue
                    tag, redel = qb(buf, pos + 12 + clen)
                    last_tag = tag
                    self.cur_redel = redel
                    state = 1
                else:
                    self.method(ch, cm, bytes(buf[pos + 7:fend - 1]))
            elif ftype == 2:
                if state == 1:
                    (bsize,) = u64(buf, pos + 11)
                    if bsize == 0:
                        state = 0
                        self.complete(None, 0, now)
                    else:
                        state = 2
                        self.cur_left = self.cur_size = bsize
                        self.cur_first = True
            elif ftype == 3:
                if state == 2:
                    if self.cur_first:
                        self.cur_first = False
                        self.cur_stamp = _QQ.unpack_from(buf, pos + 7) \
                            if self.cur_size >= 16 and size >= 16 else None
                    self.cur_left -= size
                    if self.cur_left <= 0:
                        state = 0
                        stamp = self.cur_stamp
                        self.complete(stamp[0] if stamp else None, stamp[1] if stamp else 0, now)
            elif ftype == 8:
                self.sock.sendall(_HEARTBEAT)
            pos = fend
        if run:
            k = bucket(now - last_ts)
            hist[k] = hist.get(k, 0) + run
        self.expect = expect
        self.state = state
        self.pos = pos
        if received:
            self.received += received
            self.redelivered += redel_n
            self.last_ns = now
        if last_tag > self.last_tag:
            self.last_tag = last_tag

    def learn(self, msize: int, clen: int, hsize: int, bsize: int) -> tuple:
        """The fast-path layout of a delivery: (length, method signature, header size,
        body size, unpack function, has stamp). Cached per shape."""
        key = (msize, clen, hsize, bsize)
        lay = self.layouts.get(key)
        if lay is None:
            h = 8 + msize                  # header frame offset
            b = h + 8 + hsize              # body frame offset
            stamped = bsize >= 16
            fmt = (f">3xQ{1 + clen}xQB{h + 3 - (21 + clen)}xI4xQ{b + 3 - (h + 19)}xI"
                   + ("QQ" if stamped else ""))
            lay = (b + 8 + bsize, msize << 32 | _DELIVER, hsize, bsize, struct.Struct(fmt).unpack_from, stamped)
            self.layouts[key] = lay
        return lay

    def mark(self, start: int, stop: int) -> None:
        """Count arrivals of the idents start..stop-1 (one producer, consecutive seqs)."""
        n = stop - start
        if n <= 0:
            return
        self.stamped += n
        p = start >> 48
        if p >= len(self.maps):
            self.bad += n
            return
        arr = self.maps[p]
        s0 = start & MASK
        s1 = s0 + n
        if s1 > len(arr):
            arr.extend(bytes(max(s1, 2 * len(arr)) - len(arr)))
        if n == 1:
            c = arr[s0]
            arr[s0] = c + (c < 255)
        elif arr.count(0, s0, s1) == n:
            arr[s0:s1] = b"\x01" * n
        else:
            for i in range(s0, s1):
                c = arr[i]
                arr[i] = c + (c < 255)

    def flush_run(self) -> None:
        self.mark(self.run_start, self.expect)
        self.run_start = self.expect

    def complete(self, ident, ts: int, now: int) -> None:
        """Account a message that arrived over several frames or without a stamp."""
        self.received += 1
        self.last_ns = now
        if self.cur_redel:
            self.redelivered += 1
        if ident is None:
            return
        self.mark(ident, ident + 1)
        k = bucket(now - ts)
        self.hist[k] = self.hist.get(k, 0) + 1

    def method(self, ch: int, cm: int, payload: bytes) -> None:
        if cm == _CANCEL:
            raise PerfError(f"the broker cancelled consumer {self.cid} (queue deleted?)")
        if cm == _CONN_CLOSE or cm == _CHAN_CLOSE:
            m = spec.decode_method(payload)
            reply = spec.ConnectionCloseOk() if cm == _CONN_CLOSE else spec.ChannelCloseOk()
            try:
                self.sock.sendall(frame(1, 0 if cm == _CONN_CLOSE else ch, reply.encode()))
            except OSError:
                pass
            self.conn.closed = cm == _CONN_CLOSE
            what = "connection" if cm == _CONN_CLOSE else "channel"
            raise BrokerClosed(f"the broker closed consumer {self.cid}'s {what}", m.reply_code, m.reply_text)

    # ------------------------------------------------------------------- acks
    def send_acks(self, flush: bool) -> None:
        last = self.last_tag
        acked = self.acked
        if last <= acked:
            return
        multi = self.multi
        if multi <= 1:
            pk = _ACK.pack
            self.sock.sendall(b"".join([pk(1, 1, 13, _ACK_METHOD, t, 0, 0xCE) for t in range(acked + 1, last + 1)]))
            self.acked = last
            return
        pending = last - acked
        if flush or (self.prefetch and pending >= self.prefetch):
            upto = last
        elif pending >= multi:
            upto = acked + pending // multi * multi
        else:
            return
        self.sock.sendall(_ACK.pack(1, 1, 13, _ACK_METHOD, upto, 1, 0xCE))
        self.acked = upto

    def take_tick(self) -> tuple[int, int, dict]:
        h = self.hist
        self.hist = {}
        return self.received, self.redelivered, h

    def summary(self) -> dict:
        self.flush_run()
        return {"cid": self.cid, "queue": self.qidx, "received": self.received, "stamped": self.stamped,
                "redelivered": self.redelivered, "bad": self.bad, "last_ns": self.last_ns,
                "maps": [bytes(a).rstrip(b"\x00") for a in self.maps]}


def _grow(arr: bytearray, s: int) -> None:
    arr.extend(bytes(max(s + 1, 2 * len(arr)) - len(arr)))
    arr[s] = 1


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run(ctl, uri, assignments, opts, nprod: int) -> None:
    """Worker entry point: ``assignments`` is a list of (consumer id, queue name, queue index)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = start_worker(ctl, lambda cid, queue, qidx: Receiver(uri, cid, queue, qidx, opts, nprod),
                           assignments)
    if started is None:
        return
    recs, msg = started
    t0 = msg[1]
    coalesce = opts.coalesce_us / 1e6 if opts.coalesce_us else 0
    errors: list = []
    sel = selectors.DefaultSelector()
    for r in recs:
        sel.register(r.sock, selectors.EVENT_READ, r)
    sel.register(ctl, selectors.EVENT_READ, None)
    live = list(recs)
    last = {r.cid: (0, 0) for r in recs}
    next_tick = t0 + TICK_NS
    stop = False

    def tick(idx: int) -> None:
        rec = red = 0
        hist: dict = {}
        for r in recs:
            n, d, h = r.take_tick()
            ln, ld = last[r.cid]
            rec += n - ln
            red += d - ld
            last[r.cid] = (n, d)
            for k, v in h.items():
                hist[k] = hist.get(k, 0) + v
        ctl.send(("tick", idx, {"received": rec, "redelivered": red, "hist": hist}))

    for r in recs:            # deliveries that arrived with the set-up replies
        if r.end:
            r.parse(time.monotonic_ns())
    while not stop:
        now = time.monotonic_ns()
        if now >= next_tick:
            idx = (now - t0) // TICK_NS - 1
            tick(idx)
            next_tick = t0 + (idx + 2) * TICK_NS
        unacked = not opts.autoack and any(r.last_tag > r.acked for r in live)
        timeout = max(0, next_tick - now) / 1e9
        if unacked:
            timeout = min(timeout, 0.02)
        events = sel.select(timeout)
        small = True
        for key, _ in events:
            r = key.data
            if r is None:
                stop = stop_requested(ctl) or stop
                continue
            try:
                if r.on_readable() >= MIN_FREE // 2:
                    small = False
            except (OSError, PerfError) as e:
                errors.append(str(e) if isinstance(e, PerfError) else f"consumer {r.cid}: connection lost: {e}")
                live.remove(r)
                sel.unregister(r.sock)
                if not live:
                    stop = True
        if not events and unacked:
            for r in live:
                try:
                    r.send_acks(True)
                except OSError:
                    pass
        elif coalesce and events and small:
            time.sleep(coalesce)
    for r in live:
        if not opts.autoack:
            try:
                r.send_acks(True)
            except OSError:
                pass
    now = time.monotonic_ns()
    tick(max(0, (now - t0) // TICK_NS))
    ctl.send(("final", {"recs": [r.summary() for r in recs], "cpu_s": _cpu(), "errors": errors}))
    for r in recs:
        if r in live:
            r.conn.buf = bytearray(r.buf[r.pos:r.end])
            r.conn.close(2.0)
        else:
            r.sock.close()
