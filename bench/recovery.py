"""Recovery time and resident memory with N queued persistent messages (default 1M x 1 KB).

    .venv/bin/python bench/recovery.py --broker leveret  [--count 1000000] [--size 1024]
    .venv/bin/python bench/recovery.py --broker rabbitmq [--count 1000000] [--size 1024]

Steps, the same for both brokers:
1. fill one durable queue with ``--count`` persistent messages through amqpbench (confirms on,
   no consumer, ``--keep``), then wait until the broker's resident memory settles and record it;
2. ``kill -9`` the broker, start it again, and time from the start command until a passive
   queue.declare on the queue answers with the full message count (recovery time);
3. record resident memory again after recovery; then delete the queue.

Leveret runs on port 5697 with a fresh data directory; RabbitMQ is the local Debian service
on 5672 (restarted with ``rabbitmq-server``, detached). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pika

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "shared", "bench", "amqpbench.py")
PREFIX = "recov"
QUEUE = PREFIX + ".q000"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def settled_rss(pid: int, secs: float = 5.0) -> float:
    """RSS after it stops changing (RabbitMQ pages lazily after publishing)."""
    last, stable_since = -1.0, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = rss_mb(pid)
        if abs(r - last) > 2:
            last, stable_since = r, time.monotonic()
        elif time.monotonic() - stable_since > secs:
            break
        time.sleep(0.5)
    return rss_mb(pid)


def queue_count(url: str) -> int | None:
    try:
        c = pika.BlockingConnection(pika.URLParameters(url))
    except Exception:
        return None
    try:
        return c.channel().queue_declare(QUEUE, passive=True).method.message_count
    except Exception:
        return None
    finally:
        try:
            c.close()
        except Exception:
            pass


def wait_count(url: str, want: int, timeout: float = 600) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if queue_count(url) == want:
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"queue never reached {want} messages")


def fill(url: str, count: int, size: int) -> None:
    out = subprocess.run([sys.executable, BENCH, "-x", "1", "-y", "0", "-C", str(count), "-s", str(size),
                          "--persistent", "--durable", "--confirm", "1000", "--keep", "--prefix", PREFIX,
                          "--no-latency", "--confirm-timeout", "600", "--uri", url],
                         capture_output=True, text=True, check=False)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res.get("errors"):
        raise RuntimeError(res["errors"])


def beam_pid() -> int:
    return int(subprocess.check_output(["pgrep", "-o", "beam.smp"]).split()[0])


def run_leveret(count: int, size: int) -> dict:
    data = tempfile.mkdtemp(prefix="leveret-recov-")
    url = "amqp://guest:guest@127.0.0.1:5697/%2F"
    cmd = [sys.executable, "-m", "leveret", "serve", "--port", "5697", "--data-dir", data, "--log-level", "WARNING"]
    try:
        p = subprocess.Popen(cmd)
        while queue_count(url) is None and p.poll() is None:
            # the queue does not exist yet: wait for the port only
            try:
                pika.BlockingConnection(pika.URLParameters(url)).close()
                break
            except Exception:
                time.sleep(0.1)
        fill(url, count, size)
        rss_full = settled_rss(p.pid)
        disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)
        p.send_signal(signal.SIGKILL)
        p.wait()
        t0 = time.monotonic()
        p = subprocess.Popen(cmd)
        t1 = wait_count(url, count)
        rss_after = settled_rss(p.pid, 2.0)
        p.terminate()
        p.wait()
        return {"broker": "leveret", "messages": count, "size": size, "rss_mb_queued": round(rss_full, 1),
                "recovery_s": round(t1 - t0, 2), "rss_mb_after_recovery": round(rss_after, 1),
                "disk_mb": round(disk / 1e6, 1)}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_rabbitmq(count: int, size: int) -> dict:
    url = "amqp://guest:guest@127.0.0.1:5672/%2F"
    subprocess.run(["rabbitmqctl", "delete_queue", QUEUE], capture_output=True)
    fill(url, count, size)
    pid = beam_pid()
    rss_full = settled_rss(pid)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    subprocess.run(["pkill", "-9", "-f", "epmd"], capture_output=True)
    t0 = time.monotonic()
    subprocess.Popen(["rabbitmq-server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    t1 = wait_count(url, count)
    rss_after = settled_rss(beam_pid(), 2.0)
    subprocess.run(["rabbitmqctl", "delete_queue", QUEUE], capture_output=True)
    return {"broker": "rabbitmq", "messages": count, "size": size, "rss_mb_queued": round(rss_full, 1),
            "recovery_s": round(t1 - t0, 2), "rss_mb_after_recovery": round(rss_after, 1),
            "note": "recovery_s includes the Erlang VM boot (about 5-10 s with no messages)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=("leveret", "rabbitmq"), required=True)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args()
    res = run_leveret(a.count, a.size) if a.broker == "leveret" else run_rabbitmq(a.count, a.size)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
