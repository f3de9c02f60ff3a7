"""Shovel throughput: messages/s moved by a dynamic shovel, Leveret -> RabbitMQ, RabbitMQ ->
Leveret (both run by Leveret's shovel) and RabbitMQ -> RabbitMQ (RabbitMQ's own shovel between
two queues of the same node), same message count and size, in one sitting, alternating.

    .venv/bin/python bench/shovel.py [--count 20000] [--size 1024] [--rounds 3]
        [--ack-modes on-confirm,no-ack] [--persistent] [--prefetch 1000]
        [--rabbitmq-url amqp://guest:guest@127.0.0.1:5672/%2F] [--rabbitmq-api 127.0.0.1:15672]

A ``leveret serve`` is started on a free port with a fresh data directory (its own process,
as in production). Each run: fill the source queue with ``--count`` messages (a fresh, unique
durable queue; publisher confirms), create the shovel parameter through the source side's
management API (the shovel's node: Leveret for the first two, RabbitMQ for the third), and time
from the PUT until the destination queue's message count (a passive ``queue.declare``, polled)
reaches ``--count``, and the CPU time the Leveret process and RabbitMQ's ``beam.smp`` used
meanwhile (per message: steadier than the rate on a shared machine; RabbitMQ's includes
whatever else it serves). Then the parameter and both queues are deleted. Prints one JSON line
per run and a table of medians.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pika


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(host: str, method: str, path: str, body=None):
    r = urllib.request.Request(f"http://{host}{path}", method=method,
                               data=json.dumps(body).encode() if body is not None else None,
                               headers={"content-type": "application/json",
                                        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


class Leveret:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="leveret-bench-shovel-")
        self.port, self.mport = free_port(), free_port()
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(self.port),
                                      "--data-dir", os.path.join(self.dir, "data"), "--management-port",
                                      str(self.mport), "--no-prometheus", "--log-level", "warning"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.mport), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"leveret serve did not start (see {self.dir}/server.log)")
                time.sleep(0.1)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.api = f"127.0.0.1:{self.mport}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process so far (0 when it is unknown)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rabbitmq_pid() -> int | None:
    """The local RabbitMQ's ``beam.smp`` (for its CPU): the oldest one (``rabbitmqctl`` runs
    short-lived ones of its own); None when there is none."""
    pids = subprocess.run(["pgrep", "-o", "-x", "beam.smp"], capture_output=True, text=True).stdout.split()
    return int(pids[0]) if pids else None


def fill(url: str, queue: str, count: int, size: int, persistent: bool) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    body = os.urandom(size)
    props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    for _ in range(count):
        ch.basic_publish("", queue, body, props)
    while ch.queue_declare(queue, passive=True).method.message_count < count:
        time.sleep(0.05)
    conn.close()


def run(args, scenario: str, ack_mode: str, lev: Leveret) -> dict:
    tag = uuid.uuid4().hex[:8]
    src_q, dst_q, name = f"bench-shovel-src-{tag}", f"bench-shovel-dst-{tag}", f"bench-shovel-{tag}"
    r_url = args.rabbitmq_url
    src_url, dst_url, host_api, value = {
        "leveret->rabbitmq": (lev.url, r_url, lev.api, {"src-uri": "amqp://", "dest-uri": r_url}),
        "rabbitmq->leveret": (r_url, lev.url, lev.api, {"src-uri": r_url, "dest-uri": "amqp://"}),
        "rabbitmq->rabbitmq": (r_url, r_url, args.rabbitmq_api, {"src-uri": "amqp://", "dest-uri": "amqp://"}),
    }[scenario]
    value.update({"src-queue": src_q, "dest-queue": dst_q, "ack-mode": ack_mode})
    if ack_mode != "no-ack":
        value["src-prefetch-count"] = args.prefetch
    fill(src_url, src_q, args.count, args.size, args.persistent)
    dconn = pika.BlockingConnection(pika.URLParameters(dst_url))
    dch = dconn.channel()
    dch.queue_declare(dst_q, durable=True)
    try:
        beam = rabbitmq_pid()
        c0 = (cpu_seconds(lev.proc.pid), cpu_seconds(beam))
        t0 = time.perf_counter()
        assert api(host_api, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": value}) == 201
        deadline = time.monotonic() + 600
        while dch.queue_declare(dst_q, passive=True).method.message_count < args.count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{scenario}: the shovel did not move {args.count} messages in 600 s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        c1 = (cpu_seconds(lev.proc.pid), cpu_seconds(beam))
    finally:
        api(host_api, "DELETE", f"/api/parameters/shovel/%2F/{name}")
        time.sleep(0.5)          # (the shovel stops before its queues go)
        dch.queue_delete(dst_q)
        dconn.close()
        sconn = pika.BlockingConnection(pika.URLParameters(src_url))
        sconn.channel().queue_delete(src_q)
        sconn.close()
    return {"scenario": scenario, "ack_mode": ack_mode, "count": args.count, "size": args.size,
            "persistent": args.persistent, "prefetch": args.prefetch, "seconds": round(elapsed, 3),
            "msg_per_s": round(args.count / elapsed),
            "leveret_cpu_us_per_msg": round((c1[0] - c0[0]) / args.count * 1e6, 1),
            "rabbitmq_cpu_us_per_msg": round((c1[1] - c0[1]) / args.count * 1e6, 1) if beam else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ack-modes", default="on-confirm,no-ack")
    p.add_argument("--scenarios", default="leveret->rabbitmq,rabbitmq->leveret,rabbitmq->rabbitmq")
    p.add_argument("--persistent", action="store_true", help="delivery_mode 2 (default: transient)")
    p.add_argument("--prefetch", type=int, default=1000, help="src-prefetch-count (the default)")
    p.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--rabbitmq-api", default="127.0.0.1:15672")
    p.add_argument("--out", help="append the JSON lines to this file")
    args = p.parse_args()
    lev = Leveret()
    rows = []
    try:
        for r in range(args.rounds):
            for ack_mode in args.ack_modes.split(","):
                for scenario in args.scenarios.split(","):
                    row = {"round": r, **run(args, scenario, ack_mode, lev)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(json.dumps(row) + "\n")
    finally:
        lev.stop()
    print(f"\nmedians of {args.rounds} ({args.count} x {args.size} B, "
          f"{'persistent' if args.persistent else 'transient'}):")
    print("| ack-mode | scenario | msg/s | Leveret CPU µs/msg | RabbitMQ CPU µs/msg |")
    print("|---|---|---|---|---|")
    for ack_mode in args.ack_modes.split(","):
        for scenario in args.scenarios.split(","):
            these = [x for x in rows if x["scenario"] == scenario and x["ack_mode"] == ack_mode]
            med = {k: statistics.median([x[k] for x in these if x[k] is not None] or [0])
                   for k in ("msg_per_s", "leveret_cpu_us_per_msg", "rabbitmq_cpu_us_per_msg")}
            print(f"| {ack_mode} | {scenario} | {med['msg_per_s']:,.0f} | {med['leveret_cpu_us_per_msg']:.0f} "
                  f"| {med['rabbitmq_cpu_us_per_msg']:.0f} |")


if __name__ == "__main__":
    main()
