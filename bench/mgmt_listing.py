"""The management API listing /api/queues with many queues, while messages flow.

Starts ``leveret serve`` (own ports, a temporary data directory), declares N queues, runs a
pika publisher and consumer (one queue, transient messages) in a thread, and times
``GET /api/queues`` (the whole list) and one page (``?page=1&page_size=100``) several times;
reports the delivery rate in the seconds around the listings and without them.

With ``--objects``, also declares N exchanges (each bound to its queue: with the default
exchange's implicit bindings, 2N bindings) and opens ``--connections`` idle connections, and
times the whole list and one sorted page of ``/api/exchanges``, ``/api/bindings`` and
``/api/connections``. ``--src`` runs the broker of another source tree (a before/after in one
sitting: ``git worktree add /tmp/before <commit>``, then ``--src /tmp/before/src``).

    python bench/mgmt_listing.py [--queues 10000] [--runs 5] [--objects] [--connections 2000] [--src DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pika


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                               headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(r, timeout=300) as f:
        return json.loads(f.read())


class Traffic(threading.Thread):
    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.delivered, self.stop = port, 0, False

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.ConnectionParameters(port=self.port))
        ch = conn.channel()
        ch.queue_declare("bench-flow")

        def on(_ch, _m, _p, _b):
            self.delivered += 1
        ch.basic_consume("bench-flow", on, auto_ack=True)
        while not self.stop:
            for _ in range(50):
                ch.basic_publish("", "bench-flow", b"x" * 64)
            conn.process_data_events(0)
        conn.close()


@contextlib.contextmanager
def serve(queues: int, src: str | None = None, objects: bool = False):
    """A ``leveret serve`` of this tree (own ports, a temporary data directory) with ``queues``
    idle queues: yields (AMQP port, management port, process); the process's
    ``prometheus_port`` is where it serves Prometheus."""
    amqp, http, prom = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=src or os.path.join(os.path.dirname(__file__), "..", "src"))
        p = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(amqp), "--management-port",
                              str(http), "--prometheus-port", str(prom), "--data-dir", d], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.prometheus_port = prom
        try:
            for _ in range(150):
                try:
                    get(http, "/api/overview")
                    break
                except OSError:
                    time.sleep(0.2)
            conn = pika.BlockingConnection(pika.ConnectionParameters(port=amqp))
            ch = conn.channel()
            for i in range(queues):
                ch.queue_declare(f"bench-q-{i}", arguments={"x-max-length": 1000})
                if objects:
                    ch.exchange_declare(f"bench-x-{i}", "direct")
                    ch.queue_bind(f"bench-q-{i}", f"bench-x-{i}", routing_key=f"k{i}",
                                  arguments={"n": i} if i % 2 else None)
            conn.close()
            yield amqp, http, p
        finally:
            p.terminate()
            p.wait(30)


def timed(http: int, path: str, runs: int) -> float:
    """The median seconds of ``runs`` GETs of ``path``."""
    out = []
    for _ in range(runs):
        s = time.perf_counter()
        get(http, path)
        out.append(time.perf_counter() - s)
    return sorted(out)[len(out) // 2]


LISTINGS = [("/api/exchanges", "/api/exchanges?page=1&page_size=100&sort=name"),
            ("/api/bindings", "/api/bindings?page=1&page_size=100&sort=routing_key"),
            ("/api/connections", "/api/connections?page=1&page_size=100&sort=name")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--objects", action="store_true", help="also exchanges, bindings, connections")
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--src", help="the source tree whose broker to run (default: this one)")
    a = ap.parse_args()
    if a.objects:
        with serve(a.queues, a.src, objects=True) as (amqp, http, _proc):
            conns = [pika.BlockingConnection(pika.ConnectionParameters(port=amqp, heartbeat=0))
                     for _ in range(a.connections)]
            for full_path, page_path in LISTINGS:
                n = len(get(http, full_path))
                print(f"{full_path} ({n:,} items): whole list median {timed(http, full_path, a.runs):.3f} s; "
                      f"one sorted page of 100 median {timed(http, page_path, a.runs):.3f} s")
            for c in conns:
                c.close()
        return
    with serve(a.queues, a.src) as (amqp, http, _proc):
        t = Traffic(amqp)
        t.start()
        time.sleep(2)
        n0, t0 = t.delivered, time.perf_counter()
        time.sleep(3)
        idle_rate = (t.delivered - n0) / (time.perf_counter() - t0)
        full, page = [], []
        n0, t0 = t.delivered, time.perf_counter()
        for _ in range(a.runs):
            s = time.perf_counter()
            items = get(http, "/api/queues")
            full.append(time.perf_counter() - s)
            assert len(items) >= a.queues
            s = time.perf_counter()
            get(http, "/api/queues?page=1&page_size=100")
            page.append(time.perf_counter() - s)
        busy_rate = (t.delivered - n0) / (time.perf_counter() - t0)
        t.stop = True
        t.join(10)
        full.sort()
        page.sort()
        print(f"{a.queues} queues: GET /api/queues median {full[len(full) // 2]:.2f} s "
              f"(min {full[0]:.2f}, max {full[-1]:.2f}); one page of 100 median {page[len(page) // 2]:.2f} s; "
              f"deliveries/s while listing {busy_rate:,.0f} vs {idle_rate:,.0f} without")


if __name__ == "__main__":
    main()
