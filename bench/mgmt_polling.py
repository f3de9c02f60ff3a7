"""Message throughput while the management API is polled, with 10,000 idle queues.

Starts ``leveret serve`` (own ports, a temporary data directory, statistics every 5 s as by
default), declares N idle queues, then runs ``../shared/bench/amqpbench.py`` (one publisher,
one consumer) again and again, alternating three modes:

* ``none``  -- nobody polls;
* ``ui``    -- every second, what a UI page shows: ``/api/overview``, one page of queues
  (``page=1&page_size=100``, sorted by name) and one page of connections;
* ``uiprom`` -- ``ui`` plus a Prometheus scrape of ``/metrics`` every second (the issue's
  "while the UI and Prometheus poll every second");
* ``full``  -- every second, the whole ``/api/queues`` listing (N items).

Reports per mode the median delivery rate and the broker's CPU per delivered message
(``broker_cores`` from amqpbench's ``--broker-pid``), which the other engineers' load on a
shared machine disturbs less than wall-clock rates, and the polls' latencies; then each mode
against the first one run in the same round (the median of those ratios: the load drifts
between rounds more than within one). It first
measures in process what one statistics sample of N queues costs and the longest stretch it
holds the loop, and with the broker serving no messages, its CPU per polling round of each
mode (twice, alternating).

    python bench/mgmt_polling.py [--queues 10000] [--rounds 3] [--time 10] [--scenario ack-prefetch100-1KB]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
AMQPBENCH = os.environ.get("AMQPBENCH", os.path.join(HERE, "..", "..", "shared", "bench", "amqpbench.py"))
sys.path.insert(0, SRC)
sys.path.insert(0, HERE)

from mgmt_listing import serve  # noqa: E402

UI = ["/api/overview", "/api/queues?page=1&page_size=100&sort=name", "/api/connections?page=1&page_size=100"]
# mode -> paths; a path starting "prometheus:" goes to the Prometheus port
POLLS = {"none": [], "ui": UI, "uiprom": UI + ["prometheus:/metrics"], "full": ["/api/queues"]}


def get(port: int, path: str) -> bytes:
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                               headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(r, timeout=120) as f:
        return f.read()


class Poller(threading.Thread):
    """GETs ``paths`` once a second (from the start of one round to the next)."""

    def __init__(self, port: int, paths: list[str], prometheus_port: int | None = None):
        super().__init__(daemon=True)
        self.port, self.paths, self.stop, self.latencies = port, paths, threading.Event(), []
        self.prometheus_port = prometheus_port

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            for p in self.paths:
                s = time.perf_counter()
                if p.startswith("prometheus:"):
                    get(self.prometheus_port, p[len("prometheus:"):])
                else:
                    get(self.port, p)
                self.latencies.append(time.perf_counter() - s)
            self.stop.wait(max(0.0, 1.0 - (time.perf_counter() - start)))


def sampler_cost(n: int) -> dict:
    """One statistics sample of ``n`` queues in process: CPU in all, and the longest run
    between two hand-backs of the loop."""
    from hotpath import open_conn
    from pamqp import commands as C
    from pamqp import frame as F
    from leveret import Broker
    b = Broker()
    c = open_conn(b)
    for i in range(n):
        c.receive_data(F.marshal(C.Queue.Declare(queue=f"bench-q-{i}"), 1))
    c.data_to_send()
    totals, longest = [], []
    for _ in range(7):
        cpu0, longest_run, t = time.process_time(), 0.0, time.perf_counter()
        for _ in b.stats.steps():
            now = time.perf_counter()
            longest_run, t = max(longest_run, now - t), now
        longest_run = max(longest_run, time.perf_counter() - t)
        totals.append(time.process_time() - cpu0)
        longest.append(longest_run)
    return {"queues": n, "sample_cpu_ms": round(statistics.median(totals) * 1000, 1),
            "longest_hold_ms": round(statistics.median(longest) * 1000, 1)}


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll_cpu(http: int, prometheus: int, pid: int, modes: list[str], rounds: int = 20) -> list:
    """The broker's CPU per polling round of each mode with no message traffic (a round every
    0.5 s; "none" is the idle broker: its sampler and timers), from /proc/<pid>/stat -- steadier
    than wall-clock rates on a loaded machine."""
    out = []
    for mode in modes:
        c0 = proc_cpu(pid)
        for _ in range(rounds):
            start = time.perf_counter()
            for path in POLLS[mode]:
                get(prometheus, path[len("prometheus:"):]) if path.startswith("prometheus:") else get(http, path)
            time.sleep(max(0.0, 0.5 - (time.perf_counter() - start)))
        out.append((mode, round((proc_cpu(pid) - c0) / rounds * 1000, 1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time", type=int, default=10)
    ap.add_argument("--scenario", default="ack-prefetch100-1KB")
    ap.add_argument("--modes", default="none,ui,uiprom,full")
    ap.add_argument("--out", help="append each run as a JSON line to this file")
    a = ap.parse_args()
    print(json.dumps({"sampler": sampler_cost(a.queues)}), flush=True)
    modes = a.modes.split(",")
    runs = []
    with serve(a.queues) as (amqp, http, p):
        time.sleep(6)       # (the first statistics sample)
        print(json.dumps({"poll_cpu_ms_per_round": poll_cpu(http, p.prometheus_port, p.pid, modes + modes)}),
              flush=True)
        for r in range(a.rounds):
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
                poller = Poller(http, POLLS[mode], p.prometheus_port)
                poller.start()
                out = subprocess.run([sys.executable, AMQPBENCH, "--scenario", a.scenario, "--time", str(a.time),
                                      "--uri", f"amqp://guest:guest@127.0.0.1:{amqp}/%2F", "--label", mode,
                                      "--broker-pid", str(p.pid)], capture_output=True, text=True, check=True)
                poller.stop.set()
                poller.join(120)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                rate, cpu = res["received_rate"], res.get("cpu", {})
                run = {"mode": mode, "round": r, "rate": rate, "broker_cores": cpu.get("broker_cores"),
                       "other_cores": cpu.get("other_cores"),
                       "poll_p50_ms": round(statistics.median(poller.latencies) * 1000, 1) if poller.latencies else None,
                       "poll_max_ms": round(max(poller.latencies) * 1000, 1) if poller.latencies else None}
                run["broker_us_per_msg"] = (round(run["broker_cores"] * 1e6 / rate, 2)
                                            if rate and run["broker_cores"] else None)
                runs.append(run)
                print(json.dumps(run), flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps({**run, "raw": res}) + "\n")
    base = None
    for mode in modes:
        rs = [x for x in runs if x["mode"] == mode]
        rate = statistics.median(x["rate"] for x in rs)
        cpu = statistics.median(x["broker_us_per_msg"] for x in rs if x["broker_us_per_msg"])
        base = base or (rate, cpu)
        print(f"{mode:5} rate median {rate:,.0f} msg/s ({rate / base[0] - 1:+.1%}); broker CPU {cpu:.2f} us/msg "
              f"({cpu / base[1] - 1:+.1%}); poll p50 {statistics.median(x['poll_p50_ms'] or 0 for x in rs)} ms")
    # the machine's load drifts between rounds: a mode against the first within each round
    for mode in modes[1:]:
        pairs = [(x, y) for x in runs if x["mode"] == mode for y in runs
                 if y["mode"] == modes[0] and y["round"] == x["round"]]
        rate = statistics.median(x["rate"] / y["rate"] for x, y in pairs)
        cpu = statistics.median(x["broker_us_per_msg"] / y["broker_us_per_msg"] for x, y in pairs
                                if x["broker_us_per_msg"] and y["broker_us_per_msg"])
        print(f"{mode:5} vs {modes[0]} in the same round, median of {len(pairs)}: rate {rate - 1:+.1%}, "
              f"broker CPU per message {cpu - 1:+.1%}")


if __name__ == "__main__":
    main()
