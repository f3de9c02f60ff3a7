"""Broker memory: idle resident set, cost per idle connection, cost per empty queue.

    .venv/bin/python bench/memory.py --broker leveret  [--conns 1000] [--queues 10000] [--repeat 3] [--out F]
    .venv/bin/python bench/memory.py --broker rabbitmq [--conns 1000] [--queues 10000] [--repeat 3] [--out F]

Measurements (each repeated ``--repeat`` times; the table shows medians):

* idle: resident memory (VmRSS) of a freshly started broker after 2 s. For RabbitMQ (which this
  script never restarts) the current RSS of ``beam.smp``, counted as idle only when
  ``rabbitmqctl list_connections`` shows no connection;
* per connection: open ``--conns`` AMQP connections (PLAIN guest/guest, heartbeat 0, one open
  channel each), leave them idle, wait until RSS settles (unchanged for 3 s) and report
  (after - before) / N;
* per queue: declare ``--queues`` empty transient queues (non-exclusive, non-auto-delete),
  pipelined on one channel, wait for every declare-ok and for RSS to settle, report the delta / N,
  then delete them; the same again with durable queues (Leveret: data directory on disk).

Leveret is started by the script (``python -m leveret serve`` on a free port, fresh data
directory, a fresh broker for each measurement); RabbitMQ is the one on 127.0.0.1:5672, measured
through ``pgrep -o beam.smp``. For RabbitMQ the script also

* waits until nobody else is connected (and no amqpbench aims at :5672), and repeats a
  measurement that someone else's connection may have disturbed;
* records ``rabbitmqctl status`` (Total memory used, allocated_unused, socket limit) and
  ``erlang:memory()`` before/after each step: a long-running node keeps hundreds of MB of freed
  allocator carriers that new connections and queues reuse without moving the RSS, and its RSS
  drifts while those are handed back, so the Erlang in-use delta (total minus binary) is the
  second column of the table;
* opens fewer connections than ``--conns`` if the node's socket limit (832 with ulimit -n 1024)
  would not accept them all: the rest would wait unanswered in the accept queue.

The client is a small hand-written asyncio AMQP client (no client library), which
bench/startup.py and bench/overload.py import from here as well.
Prints a table; with ``--out FILE`` appends one JSON line per repetition and one summary line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RABBIT_PORT = 5672

# ---------------------------------------------------------------- raw AMQP 0-9-1 frames

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = b"\xce"


def shortstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def longstr(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def table(fields: dict) -> bytes:
    out = b""
    for k, v in fields.items():
        if isinstance(v, bool):
            out += shortstr(k) + b"t" + (b"\x01" if v else b"\x00")
        elif isinstance(v, dict):
            out += shortstr(k) + b"F" + table(v)
        else:
            out += shortstr(k) + b"S" + longstr(str(v).encode())
    return longstr(out)


def frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + FRAME_END


def method(channel: int, cls: int, mid: int, args: bytes = b"") -> bytes:
    return frame(1, channel, struct.pack(">HH", cls, mid) + args)


CLIENT_PROPERTIES = {"product": "leveret-bench", "capabilities": {"connection.blocked": True,
                                                                  "consumer_cancel_notify": True}}


def start_ok() -> bytes:
    return method(0, 10, 11, table(CLIENT_PROPERTIES) + shortstr("PLAIN") + longstr(b"\0guest\0guest")
                  + shortstr("en_US"))


def tune_ok_open(tune_payload: bytes) -> bytes:
    """connection.tune-ok (server's channel_max/frame_max, heartbeat 0) + connection.open('/')."""
    channel_max, frame_max, _hb = struct.unpack_from(">HIH", tune_payload, 4)
    return (method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
            + method(0, 10, 40, shortstr("/") + shortstr("") + b"\x00"))


def channel_open(ch: int) -> bytes:
    return method(ch, 20, 10, shortstr(""))


def queue_declare(ch: int, name: str, durable=False, passive=False, exclusive=False, auto_delete=False,
                  nowait=False) -> bytes:
    bits = passive | durable << 1 | exclusive << 2 | auto_delete << 3 | nowait << 4
    return method(ch, 50, 10, b"\x00\x00" + shortstr(name) + bytes([bits]) + table({}))


def queue_delete(ch: int, name: str) -> bytes:
    return method(ch, 50, 40, b"\x00\x00" + shortstr(name) + b"\x00")


def basic_qos(ch: int, prefetch: int) -> bytes:
    return method(ch, 60, 10, struct.pack(">IHB", 0, prefetch, 0))


def basic_consume(ch: int, queue: str, tag: str = "c", no_ack=False) -> bytes:
    return method(ch, 60, 20, b"\x00\x00" + shortstr(queue) + shortstr(tag) + bytes([no_ack << 1]) + table({}))


def basic_ack(ch: int, tag: int, multiple=False) -> bytes:
    return method(ch, 60, 80, struct.pack(">QB", tag, multiple))


def basic_publish(ch: int, exchange: str, routing_key: str, body: bytes, frame_max: int = 131072) -> bytes:
    """publish + content header (no properties: transient) + body frame(s)."""
    out = method(ch, 60, 40, b"\x00\x00" + shortstr(exchange) + shortstr(routing_key) + b"\x00")
    out += frame(2, ch, struct.pack(">HHQH", 60, 0, len(body), 0))
    step = frame_max - 8
    for i in range(0, len(body), step):
        out += frame(3, ch, body[i:i + step])
    return out


def close_reason(payload: bytes) -> str:
    code, = struct.unpack_from(">H", payload, 4)
    n = payload[6]
    return f"{code} {payload[7:7 + n].decode(errors='replace')}"


class AmqpError(Exception):
    pass


class AsyncConn:
    """One AMQP connection over asyncio streams; frames are (type, channel, payload)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, channels: int = 1) -> AsyncConn:
        reader, writer = await asyncio.open_connection(host, port)
        c = cls(reader, writer)
        writer.write(PROTOCOL_HEADER)
        await c.expect(10, 10)
        writer.write(start_ok())
        tune = await c.expect(10, 30)
        writer.write(tune_ok_open(tune) + b"".join(channel_open(ch) for ch in range(1, channels + 1)))
        await c.expect(10, 41)
        for _ in range(channels):
            await c.expect(20, 11)
        return c

    async def read_frame(self) -> tuple[int, int, bytes]:
        hdr = await self.reader.readexactly(7)
        ftype, ch, size = struct.unpack(">BHI", hdr)
        payload = await self.reader.readexactly(size + 1)
        return ftype, ch, payload[:-1]

    async def expect(self, cls: int, mid: int) -> bytes:
        while True:
            ftype, _ch, p = await self.read_frame()
            if ftype != 1:
                continue
            got = struct.unpack_from(">HH", p)
            if got == (cls, mid):
                return p
            if got in ((10, 50), (20, 40)):
                raise AmqpError(f"closed by broker: {close_reason(p)}")
            if got in ((10, 60), (10, 61)):  # connection.blocked / unblocked
                continue
            raise AmqpError(f"expected {cls}.{mid}, got {got}")

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass

    async def aclose(self) -> None:
        """connection.close, wait for close-ok (briefly), close the socket."""
        try:
            self.writer.write(method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + b"\0\0\0\0"))
            await asyncio.wait_for(self.expect(10, 51), 5)
        except Exception:
            pass
        self.close()


def handshake_sync(sock: socket.socket) -> int:
    """Blocking handshake on a connected socket up to connection.open-ok; returns frame_max."""
    buf = bytearray()

    def read_method() -> bytes:
        while True:
            while len(buf) < 7 or len(buf) < 8 + struct.unpack_from(">I", buf, 3)[0]:
                data = sock.recv(65536)
                if not data:
                    raise AmqpError("connection closed during handshake")
                buf.extend(data)
            size = struct.unpack_from(">I", buf, 3)[0]
            ftype, p = buf[0], bytes(buf[7:7 + size])
            del buf[:8 + size]
            if ftype == 1:
                if struct.unpack_from(">HH", p) == (10, 50):
                    raise AmqpError(f"closed by broker: {close_reason(p)}")
                return p

    sock.sendall(PROTOCOL_HEADER)
    read_method()  # start
    sock.sendall(start_ok())
    tune = read_method()
    sock.sendall(tune_ok_open(tune))
    p = read_method()
    if struct.unpack_from(">HH", p) != (10, 41):
        raise AmqpError(f"expected open-ok, got {struct.unpack_from('>HH', p)}")
    if buf:
        raise AmqpError("unexpected data after open-ok")
    return struct.unpack_from(">I", tune, 6)[0]


# ---------------------------------------------------------------- processes and memory

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settled_rss_kb(pid: int, quiet: float = 3.0, tolerance_kb: int = 256, timeout: float = 30.0) -> tuple[int, bool]:
    """RSS once it has stayed within ``tolerance_kb`` or 0.2 % (whichever is larger) for ``quiet`` seconds
    (or at the timeout). RabbitMQ's RSS drifts by about 0.5 MB/s while its allocators hand back memory."""
    window: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while True:
        now, r = time.monotonic(), rss_kb(pid)
        window.append((now, r))
        window = [(t, v) for t, v in window if t >= now - quiet]
        vals = [v for _, v in window]
        if now - window[0][0] >= quiet - 0.3 and max(vals) - min(vals) <= max(tolerance_kb, r // 500):
            return r, True
        if now > deadline:
            return r, False
        time.sleep(0.25)


def beam_pid() -> int:
    return int(subprocess.check_output(["pgrep", "-o", "beam.smp"]).split()[0])


def rabbit_connections() -> int:
    out = subprocess.run(["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "name"], capture_output=True, text=True, check=False)
    return len([ln for ln in out.stdout.splitlines() if ln.strip()])


def rabbit_busy() -> str | None:
    """Why RabbitMQ is not quiet (someone else's connections or a load generator aimed at it), or None."""
    n = rabbit_connections()
    if n:
        return f"{n} other connection(s)"
    ps = subprocess.run(["pgrep", "-af", "amqpbench|perf-test"], capture_output=True, text=True, check=False).stdout
    if ":5672/" in ps:
        return "a load generator on :5672 is running"
    return None


def wait_rabbit_quiet(timeout: float = 1800.0) -> None:
    t0 = time.monotonic()
    while (why := rabbit_busy()) is not None:
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"RabbitMQ never quiet: {why}")
        print(f"waiting for RabbitMQ to be quiet: {why}", file=sys.stderr)
        time.sleep(10)


_UNIT_MB = {"bytes": 1e-6, "kb": 1e-3, "mb": 1.0, "gb": 1e3, "tb": 1e6}


def rabbit_status_memory_mb() -> dict:
    """``rabbitmqctl status``: "Total memory used" and the allocator's unused part, in MB (~1 s of CPU)."""
    out = subprocess.run(["rabbitmqctl", "status"], capture_output=True, text=True, check=False).stdout
    res = {}
    for key, pat in (("total_mb", r"Total memory used:\s*([0-9.]+)\s*(\w+)"),
                     ("allocated_unused_mb", r"allocated_unused:\s*([0-9.]+)\s*(\w+)")):
        m = re.search(pat, out)
        if m:
            res[key] = round(float(m.group(1)) * _UNIT_MB.get(m.group(2).lower(), float("nan")), 1)
    m = re.search(r"Sockets:\s*([0-9]+),\s*limit:\s*([0-9]+)", out)
    if m:
        res["sockets_used"], res["sockets_limit"] = int(m.group(1)), int(m.group(2))
    return res


def rabbit_total_memory_mb() -> float | None:
    return rabbit_status_memory_mb().get("total_mb")


def erlang_memory_kb() -> dict:
    """``erlang:memory()`` of the RabbitMQ node in KB (total, processes, binary, ets, ...): memory in use,
    without the allocators' caches.

    RabbitMQ's allocators keep freed carriers (``allocated_unused`` in ``rabbitmqctl status``), so
    new processes can reuse them without the RSS moving; these are the figures that do move. Note that
    ``binary`` counts allocated, not touched, memory: on this machine each connection's socket buffer
    adds ~3.9 MB of binary that never becomes resident."""
    out = subprocess.run(["rabbitmqctl", "eval", "erlang:memory()."], capture_output=True, text=True, check=False).stdout
    res = {k: int(v) // 1024 for k, v in re.findall(r"\{(\w+),(\d+)\}", out)}
    if "total" in res and "binary" in res:
        res["nonbinary"] = res["total"] - res["binary"]
    return res


def erlang_delta_per(before: dict, after: dict, n: int) -> dict:
    return {k: round((after[k] - before[k]) / n, 2) for k in ("total", "nonbinary", "processes", "binary", "ets")
            if k in before and k in after}


def wait_handshake(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0,
                   poll: float = 0.005) -> float:
    """Poll until an AMQP handshake on ``port`` reaches open-ok; returns the monotonic time of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(poll)
            continue
        try:
            handshake_sync(s)
            return time.monotonic()
        except (OSError, AmqpError):
            time.sleep(poll)
        finally:
            s.close()
    raise RuntimeError(f"no AMQP handshake on port {port} within {timeout} s")


class Leveret:
    """A private ``leveret serve`` on a free port with a fresh data directory."""

    def __init__(self, *extra: str, stderr=None, python_args: tuple[str, ...] = (), env: dict | None = None):
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="leveret-bench-")
        self.cmd = [sys.executable, *python_args, "-m", "leveret", "serve", "--port", str(self.port),
                    "--data-dir", self.data, "--log-level", "WARNING", *extra]
        self.stderr, self.env = stderr, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait for the first handshake; returns seconds from exec to open-ok."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stderr=self.stderr, env=self.env)
        return wait_handshake(self.port, self.proc) - t0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> Leveret:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < need:
            print(f"warning: RLIMIT_NOFILE hard limit {hard} < {need}", file=sys.stderr)


def append_json(path: str | None, rec: dict) -> None:
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------- measurements

async def open_many(port: int, n: int, parallel: int = 50) -> list[AsyncConn]:
    sem = asyncio.Semaphore(parallel)

    async def one() -> AsyncConn:
        async with sem:
            # a broker out of sockets leaves connections unanswered: fail instead of hanging
            return await asyncio.wait_for(AsyncConn.open("127.0.0.1", port), 30)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def measure_connections(pid: int, port: int, n: int, rabbit: bool) -> dict:
    """Open n idle connections (one channel each); RSS delta per connection."""

    async def run() -> dict:
        before, _ = settled_rss_kb(pid)
        rmq_before = erlang_memory_kb() if rabbit else None
        t0 = time.monotonic()
        conns = await open_many(port, n)
        opened = time.monotonic() - t0
        after, settled = await asyncio.to_thread(settled_rss_kb, pid)
        rmq_after = erlang_memory_kb() if rabbit else None
        await asyncio.gather(*(c.aclose() for c in conns))
        res = {"conns": n, "rss_before_kb": before, "rss_after_kb": after, "settled": settled,
               "open_s": round(opened, 2), "kb_per_conn": round((after - before) / n, 2)}
        if rabbit:
            res["erlang_kb_before"], res["erlang_kb_after"] = rmq_before, rmq_after
            res["erlang_kb_per_conn"] = erlang_delta_per(rmq_before, rmq_after, n)
        return res

    return asyncio.run(run())


def measure_queues(pid: int, port: int, n: int, durable: bool, rabbit: bool) -> dict:
    """Declare n empty queues pipelined on one channel; RSS delta per queue; then delete them."""
    names = [f"membench.{os.getpid()}.{'d' if durable else 't'}.{i:06d}" for i in range(n)]

    async def run() -> dict:
        c = await AsyncConn.open("127.0.0.1", port)
        before, _ = await asyncio.to_thread(settled_rss_kb, pid)
        rmq_before = erlang_memory_kb() if rabbit else None
        t0 = time.monotonic()
        for i in range(0, n, 1000):
            c.writer.write(b"".join(queue_declare(1, q, durable=durable) for q in names[i:i + 1000]))
        for _ in range(n):
            await c.expect(50, 11)
        declared = time.monotonic() - t0
        after, settled = await asyncio.to_thread(settled_rss_kb, pid)
        rmq_after = erlang_memory_kb() if rabbit else None
        t0 = time.monotonic()
        for i in range(0, n, 1000):
            c.writer.write(b"".join(queue_delete(1, q) for q in names[i:i + 1000]))
        for _ in range(n):
            await c.expect(50, 41)
        deleted = time.monotonic() - t0
        await c.aclose()
        res = {"queues": n, "durable": durable, "rss_before_kb": before, "rss_after_kb": after,
               "settled": settled, "declare_s": round(declared, 2), "delete_s": round(deleted, 2),
               "kb_per_queue": round((after - before) / n, 3)}
        if rabbit:
            res["erlang_kb_before"], res["erlang_kb_after"] = rmq_before, rmq_after
            res["erlang_kb_per_queue"] = erlang_delta_per(rmq_before, rmq_after, n)
        return res

    return asyncio.run(run())


def rep_leveret(a) -> dict:
    rec: dict = {"broker": "leveret"}
    with Leveret() as b:
        time.sleep(2.0)
        rec["idle_rss_kb"] = rss_kb(b.pid)
        rec["conn"] = measure_connections(b.pid, b.port, a.conns, False)
    for durable in (False, True):
        with Leveret() as b:
            time.sleep(1.0)
            rec["queue_durable" if durable else "queue_transient"] = measure_queues(
                b.pid, b.port, a.queues, durable, False)
    return rec


def quiet_rabbit(measure, tries: int = 5) -> dict:
    """Run a RabbitMQ measurement while nobody else uses the broker; again if someone did."""
    for attempt in range(1, tries + 1):
        wait_rabbit_quiet()
        res = measure()
        why = rabbit_busy()
        if why is None:
            res["attempts"] = attempt
            return res
        print(f"discarding a measurement: {why}", file=sys.stderr)
    res["disturbed"] = True
    return res


def rep_rabbitmq(a) -> dict:
    pid = beam_pid()
    wait_rabbit_quiet()
    rec: dict = {"broker": "rabbitmq", "pid": pid, "other_connections": rabbit_connections(),
                 "current_rss_kb": rss_kb(pid), "rabbitmqctl_status": rabbit_status_memory_mb(),
                 "erlang_memory_kb": erlang_memory_kb()}
    rec["idle_rss_kb"] = rec["current_rss_kb"] if rec["other_connections"] == 0 else None
    st = rec["rabbitmqctl_status"]
    conns = a.conns
    if "sockets_limit" in st and conns > st["sockets_limit"] - st["sockets_used"] - 32:
        # RabbitMQ stops accepting at its socket limit (ulimit -n 1024 gives 832 sockets)
        conns = max(1, (st["sockets_limit"] - st["sockets_used"] - 32) // 100 * 100)
        print(f"RabbitMQ allows {st['sockets_limit']} sockets: {conns} connections instead of {a.conns}",
              file=sys.stderr)
        rec["conns_capped_from"] = a.conns
    rec["conn"] = quiet_rabbit(lambda: measure_connections(pid, RABBIT_PORT, conns, True))
    for durable in (False, True):
        rec["queue_durable" if durable else "queue_transient"] = quiet_rabbit(
            lambda d=durable: measure_queues(pid, RABBIT_PORT, a.queues, d, True))
    rec["other_connections_end"] = rabbit_connections()
    return rec


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=("leveret", "rabbitmq"), required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--queues", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="append JSON lines here")
    a = ap.parse_args()
    raise_nofile(a.conns * 2 + 256)
    recs = []
    for i in range(a.repeat):
        rec = rep_leveret(a) if a.broker == "leveret" else rep_rabbitmq(a)
        rec.update(rep=i + 1, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
        recs.append(rec)
        append_json(a.out, rec)
        print(json.dumps(rec), file=sys.stderr)
    summary = {
        "broker": a.broker, "summary": True, "repeat": a.repeat, "conns": min(r["conn"]["conns"] for r in recs),
        "queues": a.queues,
        "idle_rss_mb": med([r["idle_rss_kb"] and r["idle_rss_kb"] / 1024 for r in recs]),
        "kb_per_conn": med([r["conn"]["kb_per_conn"] for r in recs]),
        "kb_per_transient_queue": med([r["queue_transient"]["kb_per_queue"] for r in recs]),
        "kb_per_durable_queue": med([r["queue_durable"]["kb_per_queue"] for r in recs]),
        "all_settled": all(r[k]["settled"] for r in recs for k in ("conn", "queue_transient", "queue_durable")),
    }
    if a.broker == "rabbitmq":
        summary["current_rss_mb"] = med([r["current_rss_kb"] / 1024 for r in recs])
        summary["allocated_unused_mb"] = med([r["rabbitmqctl_status"].get("allocated_unused_mb") for r in recs])
        summary["erlang_memory_mb"] = med([r["erlang_memory_kb"].get("total", 0) / 1024 for r in recs])
        for key, m, field in (("kb_per_conn", "conn", "erlang_kb_per_conn"),
                              ("kb_per_transient_queue", "queue_transient", "erlang_kb_per_queue"),
                              ("kb_per_durable_queue", "queue_durable", "erlang_kb_per_queue")):
            for part in ("nonbinary", "binary", "processes", "total"):
                summary[f"erlang_{part}_{key}"] = med([r[m].get(field, {}).get(part) for r in recs])
            summary["erlang_" + key] = summary[f"erlang_nonbinary_{key}"]
        summary["other_connections_max"] = max(max(r["other_connections"], r["other_connections_end"])
                                               for r in recs)
    append_json(a.out, summary)

    def fmt(v, nd=1):
        return "-" if v is None else f"{v:,.{nd}f}"

    rq = a.broker == "rabbitmq"
    print(f"\n{a.broker}: medians of {a.repeat} runs" + ("   (RSS delta | erlang:memory() total-binary delta)" if rq else ""))

    def line(label: str, key: str, unit: str, nd: int) -> None:
        extra = f" | {fmt(summary.get('erlang_' + key), nd)} {unit}" if rq else ""
        print(f"  {label:<34} {fmt(summary[key], nd)} {unit}{extra}")

    print(f"  {'idle resident memory':<34} {fmt(summary['idle_rss_mb'])} MB")
    if rq:
        print(f"  {'current resident memory':<34} {fmt(summary['current_rss_mb'])} MB, of which allocator-cached "
              f"(allocated_unused) {fmt(summary['allocated_unused_mb'])} MB; erlang:memory(total) "
              f"{fmt(summary['erlang_memory_mb'])} MB; other connections seen: {summary['other_connections_max']}")
    line(f"per idle connection (N={summary['conns']})", "kb_per_conn", "KB", 1)
    line(f"per transient queue (N={a.queues})", "kb_per_transient_queue", "KB", 2)
    line(f"per durable queue (N={a.queues})", "kb_per_durable_queue", "KB", 2)
    print(f"  rss settled in every run: {summary['all_settled']}")
    if rq:
        print(f"  erlang binary (allocated, not resident) per connection: {fmt(summary['erlang_binary_kb_per_conn'])} KB;"
              f" erlang processes per connection {fmt(summary['erlang_processes_kb_per_conn'])} KB")
    print("  per run: " + "; ".join(
        f"conn {r['conn']['kb_per_conn']} KB (open {r['conn']['open_s']} s), "
        f"tq {r['queue_transient']['kb_per_queue']} KB ({r['queue_transient']['declare_s']} s), "
        f"dq {r['queue_durable']['kb_per_queue']} KB ({r['queue_durable']['declare_s']} s)" for r in recs))


if __name__ == "__main__":
    main()
