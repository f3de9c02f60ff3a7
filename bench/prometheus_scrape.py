"""Prometheus scrapes with many queues, while messages flow.

Starts ``leveret serve`` (own ports, a temporary data directory), declares N queues, and
measures: the broker's CPU time per scrape of ``/metrics``, ``/metrics/per-object`` and
``/metrics/detailed`` (the queue tables) with no traffic (from /proc/<pid>/stat), then with a pika publisher and consumer running (one
queue, transient messages, in a thread) the delivery rate without scraping, while scraping
``/metrics`` every second, and while scraping ``/metrics/per-object`` every second, with the
wall time of each scrape (curl).

    python bench/prometheus_scrape.py [--queues 10000] [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import pika

sys.path.insert(0, os.path.dirname(__file__))

from mgmt_listing import Traffic, free_port  # noqa: E402


DETAILED = "/metrics/detailed?family=queue_coarse_metrics&family=queue_metrics"


def scrape(port: int, path: str) -> tuple[float, int]:
    """(wall seconds, bytes) of one GET by curl: a separate process, so reading the body does
    not compete with the traffic thread for this process's GIL."""
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                        f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise OSError(r.stderr)
    t, n = r.stdout.split()
    return float(t), int(n)


def cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate_while(t: Traffic, seconds: float, port: int | None, path: str | None) -> tuple[float, list]:
    times = []
    n0, t0 = t.delivered, time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        if path is not None:
            times.append(scrape(port, path)[0])
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - start)))     # one scrape a second
    return (t.delivered - n0) / (time.perf_counter() - t0), times


def med(xs: list) -> str:
    xs = sorted(xs)
    return f"median {xs[len(xs) // 2]:.3f} s (min {xs[0]:.3f}, max {xs[-1]:.3f}, n={len(xs)})" if xs else "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    amqp, prom = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
        p = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(amqp), "--no-management",
                              "--prometheus-port", str(prom), "--data-dir", d], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    scrape(prom, "/metrics")
                    break
                except OSError:
                    time.sleep(0.2)
            conn = pika.BlockingConnection(pika.ConnectionParameters(port=amqp))
            ch = conn.channel()
            for i in range(a.queues):
                ch.queue_declare(f"bench-q-{i}", arguments={"x-max-length": 1000})
            conn.close()
            print(f"{a.queues} queues")
            for path in ("/metrics", "/metrics/per-object", DETAILED):
                cpus, walls = [], []
                for _ in range(5):
                    c0 = cpu(p.pid)
                    w, size = scrape(prom, path)
                    cpus.append(cpu(p.pid) - c0)
                    walls.append(w)
                print(f"  {path}: {size:,} bytes; idle broker: wall {med(walls)}; broker CPU {med(cpus)}")
            t = Traffic(amqp)
            t.start()
            time.sleep(2)
            for label, path in (("no scraping", None), ("/metrics every 1 s", "/metrics"),
                                ("/metrics/per-object every 1 s", "/metrics/per-object"), ("no scraping", None)):
                r, times = rate_while(t, a.seconds, prom, path)
                print(f"  deliveries/s with {label}: {r:,.0f}" + (f"; scrape wall {med(times)}" if times else ""))
            t.stop = True
            t.join(10)
        finally:
            p.terminate()
            p.wait(30)


if __name__ == "__main__":
    main()
