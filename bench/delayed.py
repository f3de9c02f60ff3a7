"""Delayed messages at scale: N messages (default 1M) pending on an ``x-delayed-message``
exchange at once; publish rate, delivery lateness and the broker's memory.

    .venv/bin/python bench/delayed.py [--count 1000000] [--size 64] [--hold 120] [--window 100]

``--broker rabbitmq`` runs the same against the local RabbitMQ (5672), which needs the
rabbitmq-delayed-message-exchange plugin (not in Debian's package: build it from source for
3.10 and ``rabbitmq-plugins enable rabbitmq_delayed_message_exchange``). Steps:
1. start ``leveret serve`` on port 5698 with a fresh data directory; declare a durable
   ``x-delayed-message`` exchange (``x-delayed-type: direct``) bound to a durable queue;
2. a consumer process (its own connection, no-ack) records, for every message, its arrival time
   minus its due time (the due time is in the body);
3. a publisher process sends ``--count`` persistent messages (confirm mode, at most 500 in
   flight) whose due times are spread evenly over ``--window`` seconds starting ``--hold``
   seconds after the run starts, so all of them are pending together once publishing ends;
   ``x-delay`` is the due time minus the send time;
4. report: publish rate overall and for the first and last 10% (a publish must not slow down as
   the pending set grows), resident memory with everything pending, and lateness
   p50/p99/max once every message has arrived. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import array
import json
import multiprocessing as mp
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import pika  # noqa: E402  (set-up only)

BENCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
PORT = 5698
WINDOW = 500           # unconfirmed publishes in flight
URL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
URL = f"amqp://guest:guest@127.0.0.1:{PORT}/%2F"
EX, Q = "bench.delayed", "bench.delayed.q"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def consumer(count: int, ready, out) -> None:
    """A raw no-ack consumer (pika would fall behind at ~8k deliveries/s here)."""
    sys.path.insert(0, BENCH_DIR)
    import amqpbench as ab
    conn = ab.Conn(URL, name="delayed-bench-consumer")
    conn.sock.settimeout(None)          # nothing arrives until the first due time
    conn.channel_open(1)
    conn.basic_consume(1, Q, True, "c")
    ready.set()
    late = array.array("d")
    unpack = struct.unpack_from
    early = []
    while len(late) < count:
        t, _ch, payload = conn.read_frame()
        if t == ab.FRAME_BODY:
            due, idx = unpack(">dI", payload)
            x = time.time() * 1000 - due
            late.append(x)
            if x < 0 and len(early) < 20:
                early.append((idx, round(x, 1), len(late)))
    if early:
        print("early deliveries (index, ms, arrival #):", early, file=sys.stderr)
    conn.close()
    late = sorted(late)
    n = len(late)
    out.put({"received": n, "early": sum(1 for x in late if x < 0),
             "lateness_ms_p50": round(late[n // 2], 2), "lateness_ms_p99": round(late[int(n * 0.99)], 2),
             "lateness_ms_max": round(late[-1], 2), "lateness_ms_min": round(late[0], 2)})


def publisher(count: int, size: int, first_due: float, window_ms: float, out) -> None:
    """Raw frames over amqpbench's connection (pika's property encoding would cap the rate at
    about 6k/s here, measuring the client instead of the broker), in confirm mode with at most
    ``WINDOW`` unconfirmed messages, so that a message reaches the broker within a few ms of
    being sent: ``x-delay`` counts from the broker's receipt, and the due time written in the
    body is ``send time + x-delay`` (so measured lateness also includes that skew)."""
    sys.path.insert(0, BENCH_DIR)
    import amqpbench as ab
    conn = ab.Conn(URL, name="delayed-bench")
    conn.channel_open(1)
    conn.confirm_select(1)
    pad = b"x" * max(0, size - 8)
    m = ab.method_frame(1, ab.B_PUBLISH, b"\x00\x00" + ab.shortstr(EX) + ab.shortstr("k") + b"\x00")
    body_len = 8 + len(pad)
    t0 = time.time()
    marks = []
    step = max(1, count // 10)
    batch = []
    confirmed = 0
    for i in range(count):
        now = time.time() * 1000
        delay = max(1, int(first_due + window_ms * i / count - now))
        props = struct.pack(">H", 0x3000) + ab.enc_table({"x-delay": delay}) + b"\x02"
        hp = struct.pack(">HHQ", 60, 0, body_len) + props
        batch.append(m + ab.S_HDR.pack(ab.FRAME_HEADER, 1, len(hp)) + hp + b"\xce"
                     + ab.S_HDR.pack(ab.FRAME_BODY, 1, body_len) + struct.pack(">dI", now + delay, i) + pad[4:] + b"\xce")
        if len(batch) >= 25:
            conn.send(b"".join(batch))
            batch.clear()
            while i + 1 - confirmed > WINDOW:
                confirmed = max(confirmed, _read_ack(conn, ab))
        if i % step == 0:
            marks.append((i, time.time()))
    conn.send(b"".join(batch))
    while confirmed < count:
        confirmed = max(confirmed, _read_ack(conn, ab))
    t1 = time.time()
    marks.append((count, t1))
    conn.close()
    first = (marks[1][0] - marks[0][0]) / (marks[1][1] - marks[0][1])
    last = (marks[-1][0] - marks[-2][0]) / (marks[-1][1] - marks[-2][1])
    out.put({"publish_seconds": round(t1 - t0, 1), "publish_rate": round(count / (t1 - t0)),
             "publish_rate_first_10pct": round(first), "publish_rate_last_10pct": round(last)})


def _read_ack(conn, ab) -> int:
    """Wait for the next basic.ack; returns its delivery tag."""
    while True:
        t, _ch, p = conn.read_frame()
        if t == ab.FRAME_METHOD:
            cls, meth = struct.unpack_from(">HH", p, 0)
            if (cls, meth) == (60, 80):
                return struct.unpack_from(">Q", p, 4)[0]
            if (cls, meth) == (60, 120):
                raise RuntimeError("publish nacked")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--hold", type=float, default=120.0, help="s from the start to the first due time")
    ap.add_argument("--window", type=float, default=100.0, help="s over which due times are spread")
    ap.add_argument("--broker", choices=("leveret", "rabbitmq"), default="leveret",
                    help="rabbitmq: the local RabbitMQ on 5672, which needs the delayed-message plugin enabled")
    a = ap.parse_args()
    global URL
    data = tempfile.mkdtemp(prefix="leveret-delayed-")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if a.broker == "rabbitmq":
        URL = URL_RABBITMQ
        broker = None
        pid = int(subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True).stdout.split()[0])
    else:
        broker = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(PORT), "--data-dir", data],
                                  cwd=root, stderr=subprocess.PIPE, text=True)
        for line in broker.stderr:
            if "listening on" in line:
                break
        pid = broker.pid
    try:
        idle_rss = rss_mb(pid)
        c = pika.BlockingConnection(pika.URLParameters(URL))
        ch = c.channel()
        ch.exchange_declare(EX, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
        ch.queue_declare(Q, durable=True)
        ch.queue_bind(Q, EX, "k")
        c.close()
        results: mp.Queue = mp.Queue()
        ready = mp.Event()
        cons = mp.Process(target=consumer, args=(a.count, ready, results))
        cons.start()
        ready.wait(10)
        first_due = time.time() * 1000 + a.hold * 1000
        pub = mp.Process(target=publisher, args=(a.count, a.size, first_due, a.window * 1000, results))
        pub.start()
        peak = 0.0
        while pub.is_alive():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.5)
        pub_res = results.get()
        time.sleep(1)
        pending_rss = rss_mb(pid)
        if time.time() * 1000 > first_due:
            print("warning: publishing took longer than --hold; not all messages were pending at once",
                  file=sys.stderr)
        while cons.is_alive():
            peak = max(peak, rss_mb(pid))
            cons.join(0.5)
        if cons.exitcode != 0:
            raise SystemExit("consumer failed")
        cons_res = results.get()
        du = subprocess.run(["du", "-sm", data], capture_output=True, text=True).stdout.split()[0]
        if broker is None:
            c = pika.BlockingConnection(pika.URLParameters(URL))
            ch = c.channel()
            ch.queue_delete(Q)
            ch.exchange_delete(EX)
            c.close()
            du = "n/a"
        print(json.dumps({"broker": a.broker, "count": a.count, "size": a.size, **pub_res, **cons_res,
                          "rss_mb_idle": round(idle_rss, 1), "rss_mb_all_pending": round(pending_rss, 1),
                          "rss_mb_peak": round(peak, 1), "data_dir_mb_at_end": du}))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
