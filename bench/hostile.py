"""Hostile clients beside a well-behaved publisher and consumer.

    .venv/bin/python bench/hostile.py [--hostile 3000] [--messages 5000] [--rate 500] [--out F]

Starts ``python -m leveret serve`` (a fresh data directory, a free port), raises ``ulimit -n``,
then measures a good pair -- one publisher, one consumer (own process, own connections, manual
acks, prefetch 100) exchanging ``--messages`` timestamped messages at ``--rate`` per second --
first alone, then while ``--hostile`` connections attack the broker at once, of these kinds:

* ``random``    -- random bytes instead of a protocol header (the broker answers its header, closes);
* ``garbage``   -- a valid protocol header, then garbage (a silent close: handshake errors);
* ``truncated`` -- header + half a start-ok frame, then silence (handshake_timeout, 10 s);
* ``oversized`` -- a full handshake, then a frame header claiming 2 GB (501, socket dropped 3 s later);
* ``slowloris`` -- a valid handshake sent one byte every 2 s (handshake_timeout);
* ``noread-consumer`` -- handshake (heartbeat 6 s), prefetch 10000, consume, then never read
  (never write either: missed heartbeats close it, as RabbitMQ does);
* ``noread-publisher`` -- publishes 1 KB messages into the never-reading consumers' queues
  without ever reading (its socket fills), heartbeat 6 s;
* ``storm``     -- connect, handshake or not, close; again and again.

Every hostile socket has a 4 KB receive buffer (so what the broker writes stays in the
broker). Each slot reconnects when the broker closes it, until the attack ends. Reported: the
good pair's messages lost / out of order (must be 0), its latency p50/p99/max without and with
the attack, the broker's peak VmRSS during the attack (from /proc/PID/status), and per kind the
connections made and how long the broker took to close them (max).

``run_attack`` and ``good_pair`` are used by tests/test_hostile_clients.py with small numbers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from memory import (  # noqa: E402
    PROTOCOL_HEADER, AsyncConn, Leveret, basic_ack, basic_consume, basic_publish, basic_qos, method,
    queue_declare, raise_nofile, rss_kb, shortstr, start_ok,
)

KINDS = {"random": 0.15, "garbage": 0.15, "truncated": 0.15, "oversized": 0.10, "slowloris": 0.15,
         "noread-consumer": 0.10, "noread-publisher": 0.05, "storm": 0.15}
HANDSHAKE_TIMEOUT = 10.0      # the broker's (and RabbitMQ's) default
NOREAD_HEARTBEAT = 6          # negotiated by the never-reading clients


# ---------------------------------------------------------------- hostile clients


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=s, limit=1 << 16)


async def _until_closed(reader: asyncio.StreamReader, limit: float) -> float | None:
    """Read (and discard) until EOF; seconds it took, or None if still open after ``limit``."""
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - t0


async def _handshake(reader, writer, heartbeat: int = 0) -> None:
    c = AsyncConn(reader, writer)
    writer.write(PROTOCOL_HEADER)
    await c.expect(10, 10)
    writer.write(start_ok())
    tune = await c.expect(10, 30)
    channel_max, frame_max, _ = struct.unpack_from(">HIH", tune, 4)
    writer.write(method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, heartbeat))
                 + method(0, 10, 40, shortstr("/") + shortstr("") + b"\x00") + method(1, 20, 10, shortstr("")))
    await c.expect(10, 41)
    await c.expect(20, 11)


def _handshake_bytes() -> bytes:
    return (PROTOCOL_HEADER + start_ok() + method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 0))
            + method(0, 10, 40, shortstr("/") + shortstr("") + b"\x00"))


class Stats:
    def __init__(self):
        self.kinds = {k: {"connections": 0, "closed_by_broker": 0, "max_close_s": 0.0, "not_closed": 0,
                          "errors": 0} for k in KINDS}

    def closed(self, kind: str, seconds: float | None) -> None:
        k = self.kinds[kind]
        if seconds is None:
            k["not_closed"] += 1
        else:
            k["closed_by_broker"] += 1
            k["max_close_s"] = round(max(k["max_close_s"], seconds), 2)


async def _one(kind: str, port: int, rnd: random.Random, stats: Stats, queue: str, stop: asyncio.Event) -> None:
    """One hostile connection of ``kind``, from connect to the broker closing it."""
    reader, writer = await _open(port)
    stats.kinds[kind]["connections"] += 1
    try:
        if kind == "random":
            writer.write(rnd.randbytes(rnd.randint(8, 4096)))
            stats.closed(kind, await _until_closed(reader, 15))
        elif kind == "garbage":
            writer.write(PROTOCOL_HEADER + rnd.randbytes(rnd.randint(1, 4096)))
            stats.closed(kind, await _until_closed(reader, 20))
        elif kind == "truncated":
            hs = _handshake_bytes()
            writer.write(hs[:len(PROTOCOL_HEADER) + rnd.randint(1, 40)])
            stats.closed(kind, await _until_closed(reader, HANDSHAKE_TIMEOUT + 10))
        elif kind == "oversized":
            await _handshake(reader, writer)
            writer.write(struct.pack(">BHI", 1, 1, 0x7FFFFFFF) + rnd.randbytes(1000))
            stats.closed(kind, await _until_closed(reader, 15))
        elif kind == "slowloris":
            hs = _handshake_bytes()
            t0 = time.monotonic()
            for b in hs:
                writer.write(bytes((b,)))
                try:
                    await asyncio.wait_for(reader.read(65536), 2.0)
                except TimeoutError:
                    continue
                if reader.at_eof():
                    break
            left = await _until_closed(reader, HANDSHAKE_TIMEOUT + 10)
            stats.closed(kind, None if left is None else time.monotonic() - t0)
        elif kind == "noread-consumer":
            await _handshake(reader, writer, NOREAD_HEARTBEAT)
            writer.write(queue_declare(1, queue, auto_delete=True) + basic_qos(1, 10000)
                         + basic_consume(1, queue, tag="noread"))
            t0 = time.monotonic()
            while not stop.is_set() and time.monotonic() - t0 < 4 * NOREAD_HEARTBEAT:
                await asyncio.sleep(0.5)       # never read, never write
            stats.closed(kind, await _until_closed(reader, 4 * NOREAD_HEARTBEAT))
        elif kind == "noread-publisher":
            await _handshake(reader, writer, NOREAD_HEARTBEAT)
            writer.write(queue_declare(1, queue, auto_delete=True))
            body = rnd.randbytes(1024)
            t0 = time.monotonic()
            for _ in range(2000):
                writer.write(basic_publish(1, "", queue, body))
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    break                       # the broker stopped reading us
                await asyncio.sleep(0)
            while not stop.is_set() and time.monotonic() - t0 < 4 * NOREAD_HEARTBEAT:
                await asyncio.sleep(0.5)
            stats.closed(kind, await _until_closed(reader, 4 * NOREAD_HEARTBEAT))
        elif kind == "storm":
            if rnd.random() < 0.5:
                await _handshake(reader, writer)
    except (OSError, asyncio.IncompleteReadError, EOFError) as e:
        stats.kinds[kind]["errors"] += 1
        stats.kinds[kind].setdefault("error_kinds", {}).setdefault(type(e).__name__, 0)
        stats.kinds[kind]["error_kinds"][type(e).__name__] += 1
    except Exception as e:        # AmqpError: refused during the handshake
        stats.kinds[kind]["errors"] += 1
        stats.kinds[kind].setdefault("error_kinds", {}).setdefault(str(e)[:60], 0)
        stats.kinds[kind]["error_kinds"][str(e)[:60]] += 1
    finally:
        writer.transport.abort()


async def run_attack(port: int, hostile: int, seconds: float, seed: int = 1) -> dict:
    """``hostile`` slots attack for ``seconds`` (each reconnects after the broker closes it);
    returns the per-kind stats once every slot has finished its last connection."""
    rnd = random.Random(seed)
    stats = Stats()
    stop = asyncio.Event()
    names = list(KINDS)
    plan = []
    for kind in names:
        plan += [kind] * max(1, round(hostile * KINDS[kind]))
    consumers = [i for i, k in enumerate(plan) if k == "noread-consumer"]

    async def slot(i: int, kind: str) -> None:
        r = random.Random(rnd.random())
        queue = f"hostile-{seed}-{consumers[i % len(consumers)] if kind == 'noread-publisher' else i}"
        await asyncio.sleep(r.random() * 2)          # ramp up over 2 s
        while not stop.is_set():
            await _one(kind, port, r, stats, queue, stop)
            if kind in ("noread-consumer", "noread-publisher"):
                break                                # one long life each

    tasks = [asyncio.create_task(slot(i, k)) for i, k in enumerate(plan)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return stats.kinds


# ---------------------------------------------------------------- the good pair


async def _good_pair(port: int, messages: int, rate: float, queue: str) -> dict:
    pub = await AsyncConn.open("127.0.0.1", port)
    con = await AsyncConn.open("127.0.0.1", port)
    con.writer.write(queue_declare(1, queue, auto_delete=True) + basic_qos(1, 100)
                     + basic_consume(1, queue, tag="good"))
    await con.expect(50, 11)
    await con.expect(60, 11)
    await con.expect(60, 21)
    latencies: list[float] = []
    seqs: list[int] = []

    async def consume() -> None:
        tag = 0
        while len(seqs) < messages:
            ftype, _ch, p = await con.read_frame()
            if ftype == 1 and p[:4] == b"\x00\x3c\x00\x3c":           # basic.deliver
                (tag,) = struct.unpack_from(">Q", p, 5 + p[4])
            elif ftype == 3:
                seq, sent = struct.unpack_from(">Qd", p)
                latencies.append(time.time() - sent)
                seqs.append(seq)
                con.writer.write(basic_ack(1, tag))

    consumer = asyncio.create_task(consume())
    t0 = time.monotonic()
    for i in range(messages):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        pub.writer.write(basic_publish(1, "", queue, struct.pack(">Qd", i, time.time()) + b"x" * 100))
    try:
        await asyncio.wait_for(consumer, 60 + messages / rate)
    except TimeoutError:
        pass
    pub.close()
    con.close()
    lat = sorted(latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

    return {"messages": messages, "received": len(seqs), "lost": messages - len(set(seqs)),
            "in_order": seqs == list(range(len(seqs))), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None}


def _good_pair_process(port: int, messages: int, rate: float, queue: str, conn) -> None:
    conn.send(asyncio.run(_good_pair(port, messages, rate, queue)))


def start_good_pair(port: int, messages: int, rate: float, queue: str):
    """The good pair in its own process (so the attack's event loop cannot delay it);
    returns (process, pipe end): ``pipe.recv()`` gives its result."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_good_pair_process, args=(port, messages, rate, queue, child), daemon=True)
    p.start()
    return p, parent


# ---------------------------------------------------------------- main


async def _attack_with_rss(port: int, pid: int, hostile: int, seconds: float) -> tuple[dict, int]:
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kb(pid))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    kinds = await run_attack(port, hostile, seconds)
    done.set()
    await sampler
    return kinds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hostile", type=int, default=3000)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--out")
    a = ap.parse_args()
    raise_nofile(a.hostile * 2 + 1024)
    with Leveret() as broker:
        idle_rss = rss_kb(broker.pid)
        p, pipe = start_good_pair(broker.port, a.messages, a.rate, "good-baseline")
        baseline = pipe.recv()
        p.join()
        attack_seconds = a.messages / a.rate + 5
        p, pipe = start_good_pair(broker.port, a.messages, a.rate, "good-attacked")
        kinds, peak = asyncio.run(_attack_with_rss(broker.port, broker.pid, a.hostile, attack_seconds))
        attacked = pipe.recv()
        p.join()
        after = rss_kb(broker.pid)
        ok = asyncio.run(AsyncConn.open("127.0.0.1", broker.port)) is not None
    rec = {"bench": "hostile", "hostile": a.hostile, "messages": a.messages, "rate": a.rate,
           "baseline": baseline, "attacked": attacked, "idle_rss_mb": round(idle_rss / 1024, 1),
           "peak_rss_mb": round(peak / 1024, 1), "rss_after_mb": round(after / 1024, 1),
           "accepts_after": ok, "kinds": kinds}
    print(json.dumps(rec, indent=1))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
