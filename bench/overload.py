"""Overload: an unthrottled publisher against a slow consumer. Does flow control hold the publisher
back, and does broker memory stay bounded?

    .venv/bin/python bench/overload.py --broker leveret  [--time 60] [--consume-rate 2000] [--out F]
    .venv/bin/python bench/overload.py --broker rabbitmq [--time 60] [--consume-rate 2000] [--out F]

* Publisher: a separate process, one connection, no confirms, transient ``--size`` (1 KB)
  messages to one queue through the default exchange, frames pre-encoded and written as fast
  as the socket accepts them (``send`` of about 64 KiB at a time). It advertises the
  ``connection.blocked`` capability and a reader thread records connection.blocked/unblocked.
* Consumer: manual acks, prefetch ``--prefetch`` (50), paced to at most ``--consume-rate``
  messages/s (sleeps before each ack).
* Broker resident memory is sampled every 100 ms (/proc/PID/status VmRSS), the queue depth every
  second (passive queue.declare on a third connection).

Reports peak and final RSS, publish rate (what the publisher's socket accepted, and what reached
the broker: consumed + depth at the end), consume rate, queue depth at the end, whether
connection.blocked arrived, the broker's CPU seconds, and a timeline. Leveret is started by the
script on a free port with a fresh data directory; RabbitMQ is the one on 127.0.0.1:5672 (pid of
``beam.smp``). The queue (``overload.<pid>``, transient) is deleted at the end.
With ``--out FILE`` appends one JSON line per run (the RSS timeline included).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import threading
import time

from memory import (
    RABBIT_PORT,
    AmqpError,
    AsyncConn,
    Leveret,
    append_json,
    basic_ack,
    basic_consume,
    basic_publish,
    basic_qos,
    beam_pid,
    channel_open,
    close_reason,
    handshake_sync,
    queue_declare,
    queue_delete,
    rabbit_total_memory_mb,
    rss_kb,
    wait_rabbit_quiet,
)

# ---------------------------------------------------------------- publisher (child process)

def publisher(port: int, queue: str, size: int, seconds: float) -> dict:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame_max = handshake_sync(s)
    events: list[tuple[float, str, str]] = []
    opened, stop = threading.Event(), threading.Event()
    error: list[str] = []
    t0 = time.monotonic()

    def reader() -> None:
        buf = bytearray()
        while not stop.is_set():
            try:
                data = s.recv(65536)
            except TimeoutError:
                continue
            except OSError as e:
                error.append(f"recv: {e}")
                return
            if not data:
                error.append("connection closed by broker")
                return
            buf.extend(data)
            while len(buf) >= 7 and len(buf) >= 8 + struct.unpack_from(">I", buf, 3)[0]:
                ftype, _ch, size_ = struct.unpack_from(">BHI", buf)
                p = bytes(buf[7:7 + size_])
                del buf[:8 + size_]
                if ftype != 1:
                    continue
                cm = struct.unpack_from(">HH", p)
                if cm == (20, 11):
                    opened.set()
                elif cm == (10, 60):
                    events.append((round(time.monotonic() - t0, 3), "blocked", p[5:5 + p[4]].decode()))
                elif cm == (10, 61):
                    events.append((round(time.monotonic() - t0, 3), "unblocked", ""))
                elif cm in ((10, 50), (20, 40)):
                    error.append(f"closed by broker: {close_reason(p)}")
                    stop.set()

    s.settimeout(0.1)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    s.sendall(channel_open(1))
    if not opened.wait(10):
        raise AmqpError("no channel.open-ok")
    msg = basic_publish(1, "", queue, b"x" * size, frame_max)
    batch = msg * max(1, 65536 // len(msg))
    mv = memoryview(batch)
    sent = off = 0
    timeline = []  # (second, messages accepted by the socket so far)
    t0 = time.monotonic()
    deadline, next_mark = t0 + seconds, t0 + 1.0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_mark:
            timeline.append((round(next_mark - t0), sent // len(msg)))
            next_mark += 1.0
        if now >= deadline:
            break
        try:
            n = s.send(mv[off:])
        except TimeoutError:
            continue
        except OSError as e:
            error.append(f"send: {e}")
            break
        sent += n
        off = (off + n) % len(batch)
    elapsed = time.monotonic() - t0
    stop.set()
    th.join(1)
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
    return {"sent_messages": sent // len(msg), "elapsed_s": round(elapsed, 3), "events": events,
            "errors": error, "timeline": timeline}


# ---------------------------------------------------------------- measuring side

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def passive_depth(c: AsyncConn, queue: str) -> int:
    c.writer.write(queue_declare(1, queue, passive=True))
    p = await c.expect(50, 11)
    n = p[4]
    return struct.unpack_from(">I", p, 5 + n)[0]


async def consumer(port: int, queue: str, prefetch: int, rate: float, state: dict, stop: asyncio.Event) -> None:
    c = await AsyncConn.open("127.0.0.1", port)
    c.writer.write(basic_qos(1, prefetch) + basic_consume(1, queue, "overload"))
    await c.expect(60, 11)
    await c.expect(60, 21)
    t0 = None  # pacing starts with the first delivery
    tag, remaining = 0, -1
    try:
        while not stop.is_set():
            ftype, _ch, p = await c.read_frame()
            if ftype == 1:
                cm = struct.unpack_from(">HH", p)
                if cm == (60, 60):
                    n = p[4]
                    tag = struct.unpack_from(">Q", p, 5 + n)[0]
                elif cm in ((10, 60), (10, 61)):
                    state["consumer_events"].append((round(time.monotonic() - state["t0"], 3), cm[1]))
                elif cm in ((10, 50), (20, 40)):
                    raise AmqpError(f"consumer closed by broker: {close_reason(p)}")
                continue
            if ftype == 2:
                remaining = struct.unpack_from(">Q", p, 4)[0]
            elif ftype == 3:
                remaining -= len(p)
            if remaining != 0:
                continue
            remaining = -1
            state["consumed"] += 1
            if t0 is None:
                t0, base = time.monotonic(), state["consumed"]
            wait = t0 + (state["consumed"] - base) / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            c.writer.write(basic_ack(1, tag))
    finally:
        c.close()


async def run(a, pid: int, port: int, broker: str) -> dict:
    queue = f"overload.{os.getpid()}"
    admin = await AsyncConn.open("127.0.0.1", port)
    admin.writer.write(queue_delete(1, queue) + queue_declare(1, queue))
    await admin.expect(50, 41)
    await admin.expect(50, 11)
    state = {"consumed": 0, "consumer_events": [], "t0": time.monotonic()}
    stop = asyncio.Event()
    cons = asyncio.create_task(consumer(port, queue, a.prefetch, a.consume_rate, state, stop))
    await asyncio.sleep(0.3)
    rss: list[tuple[float, float]] = []
    depth: list[tuple[float, int]] = []
    cons_tl: list[tuple[float, int]] = []
    cpu0 = cpu_seconds(pid)
    rss0 = rss_kb(pid)

    async def sample_rss() -> None:
        while not stop.is_set():
            rss.append((round(time.monotonic() - t0, 2), round(rss_kb(pid) / 1024, 1)))
            await asyncio.sleep(0.1)

    async def sample_depth() -> None:
        while not stop.is_set():
            t = time.monotonic() - t0
            try:
                d = await asyncio.wait_for(passive_depth(admin, queue), 5)
            except TimeoutError:
                d = -1
            depth.append((round(t, 1), d))
            cons_tl.append((round(t, 1), state["consumed"]))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - t)))

    t0 = state["t0"] = time.monotonic()
    consumed0 = state["consumed"]
    samplers = [asyncio.create_task(sample_rss()), asyncio.create_task(sample_depth())]
    child = await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), "--publisher-child", str(port), queue, str(a.size), str(a.time),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    t_end = time.monotonic() - t0
    pub = json.loads(out.decode().strip().splitlines()[-1])
    consumed = state["consumed"] - consumed0
    rss_end = rss_kb(pid) / 1024
    cpu = cpu_seconds(pid) - cpu0
    stop.set()
    await asyncio.gather(*samplers)
    depth_end = await asyncio.wait_for(passive_depth(admin, queue), 60)
    cons.cancel()
    try:
        await cons
    except (asyncio.CancelledError, Exception):
        pass
    rmq_total = rabbit_total_memory_mb() if broker == "rabbitmq" else None
    t_del = time.monotonic()
    admin.writer.write(queue_delete(1, queue))
    await asyncio.wait_for(admin.expect(50, 41), 300)
    delete_s = time.monotonic() - t_del
    await admin.aclose()
    dur = pub["elapsed_s"]
    peak = max(rss, key=lambda x: x[1])
    reached = consumed + depth_end
    return {
        "broker": broker, "time_s": a.time, "size": a.size, "prefetch": a.prefetch,
        "consume_rate_limit": a.consume_rate, "rss_start_mb": round(rss0 / 1024, 1),
        "rss_peak_mb": peak[1], "rss_peak_at_s": peak[0], "rss_end_mb": round(rss_end, 1),
        "publish_rate_socket": round(pub["sent_messages"] / dur), "publish_rate_broker": round(reached / dur),
        "published_socket": pub["sent_messages"], "consume_rate": round(consumed / t_end), "consumed": consumed,
        "depth_end": depth_end, "connection_blocked": any(e[1] == "blocked" for e in pub["events"]),
        "blocked_events": pub["events"][:50], "publisher_errors": pub["errors"],
        "consumer_events": state["consumer_events"][:50], "broker_cpu_s": round(cpu, 1),
        "queue_delete_s": round(delete_s, 2), "rabbitmq_total_mb_end": rmq_total,
        "publisher_timeline": pub["timeline"], "depth_timeline": depth, "consumed_timeline": cons_tl,
        "rss_timeline": rss, "loadavg_1m": os.getloadavg()[0], "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def print_report(r: dict) -> None:
    print(f"\n{r['broker']}: overload {r['time_s']} s, {r['size']} B transient, consumer prefetch {r['prefetch']} "
          f"at <= {r['consume_rate_limit']:.0f} msg/s")
    rows = [("rss at start", f"{r['rss_start_mb']:,.1f} MB"),
            ("rss peak", f"{r['rss_peak_mb']:,.1f} MB (at {r['rss_peak_at_s']} s)"),
            ("rss at end", f"{r['rss_end_mb']:,.1f} MB"),
            ("publish rate, socket accepted", f"{r['publish_rate_socket']:,} msg/s ({r['published_socket']:,})"),
            ("publish rate, reached broker", f"{r['publish_rate_broker']:,} msg/s (consumed + depth)"),
            ("consume rate", f"{r['consume_rate']:,} msg/s ({r['consumed']:,})"),
            ("queue depth at end", f"{r['depth_end']:,}"),
            ("connection.blocked received", f"{r['connection_blocked']} {r['blocked_events'][:3] or ''}"),
            ("publisher errors", ", ".join(r["publisher_errors"]) or "none"),
            ("broker CPU", f"{r['broker_cpu_s']} s"),
            ("queue delete took", f"{r['queue_delete_s']} s")]
    if r.get("rabbitmq_total_mb_end") is not None:
        rows.append(("rabbitmqctl total memory at end", f"{r['rabbitmq_total_mb_end']:,.1f} MB"))
    for k, v in rows:
        print(f"  {k:<32} {v}")
    print("\n  timeline:   t s   rss MB   published(socket)   consumed     depth")
    pub = dict(r["publisher_timeline"])
    depth = {round(t): d for t, d in r["depth_timeline"]}
    cons = {round(t): c for t, c in r["consumed_timeline"]}
    rss = {}
    for t, v in r["rss_timeline"]:
        rss.setdefault(round(t), v)
    step = 5 if r["time_s"] > 20 else 1
    for t in range(0, int(r["time_s"]) + 1, step):
        p = pub.get(t, 0 if t == 0 else None)
        print(f"  {t:>14} {rss.get(t, float('nan')):>8.1f} {p if p is not None else '-':>19} "
              f"{cons.get(t, '-'):>10} {depth.get(t, '-'):>9}")


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--publisher-child":
        port, queue, size, seconds = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        print(json.dumps(publisher(port, queue, size, seconds)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=("leveret", "rabbitmq"), required=True)
    ap.add_argument("--time", type=float, default=60.0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--prefetch", type=int, default=50)
    ap.add_argument("--consume-rate", type=float, default=2000.0)
    ap.add_argument("--leveret-arg", action="append", default=[],
                    help="extra argument for leveret serve (repeatable), e.g. --leveret-arg=--no-uvloop")
    ap.add_argument("--out", help="append JSON lines here")
    a = ap.parse_args()
    if a.broker == "leveret":
        with Leveret(*a.leveret_arg) as b:
            time.sleep(1.0)
            res = asyncio.run(run(a, b.pid, b.port, "leveret"))
    else:
        wait_rabbit_quiet()  # nobody else's load in the numbers (and ours not in theirs)
        res = asyncio.run(run(a, beam_pid(), RABBIT_PORT, "rabbitmq"))
    append_json(a.out, res)
    print_report(res)


if __name__ == "__main__":
    main()
