"""What the pytest plugin costs a test session: the session broker's start-up and a test's vhost.

    .venv/bin/python bench/plugin_startup.py [--runs 30] [--vhosts 500] [--rabbitmq-url URL] [--out F]
                                             [--no-bytecode] [--no-session]

Measured as the fixtures do it (leveret/testing/brokers.py), in one process:

* ``import``: importing ``leveret.testing.brokers`` (the broker, node, aiohttp), paid once per
  session by the first test that uses a fixture (loading the plugin itself imports none of it).
  Timed in a fresh interpreter, ``--runs`` times at most 10.
* ``start``: ``InProcessBroker().start()`` -- a thread, an event loop, the broker, a listener
  on a free port -- until it listens; then ``stop`` (clients none, thread joined). ``--runs`` times.
* ``vhost``: ``new_vhost`` + ``delete_vhost`` of the running broker, from the test's thread
  (two cross-thread calls), ``--vhosts`` times; the first AMQP connection to the new vhost is
  timed separately (``vhost+connect``, pika BlockingConnection open and close).
* ``session``: what a whole pytest session pays for using the fixtures, end to end: a fresh
  ``python -m pytest`` (the plugin loaded through its entry point) running one test that takes
  ``leveret_url`` and opens nothing, less the same session running one test that takes no
  fixture; the two alternate, ``--runs`` times at most 15, median of the differences. This is
  the import, the start, the vhost and the stop together, as a user's session sees them.
  ``session cpu`` is the same difference in CPU time (user + system of the pytest process),
  which other work on a busy machine hardly moves.
  Bytecode matters here: ``pip install`` compiles it, an editable install writes it at the
  first import -- unless ``PYTHONDONTWRITEBYTECODE`` is set (as in this sandbox), when every
  session compiles Leveret's sources again (``--no-bytecode`` measures that case).
* ``--rabbitmq-url``: the same per-test vhost on an external broker through its management API
  (``ExternalBroker``), for comparison.

Prints median / p90 / max in milliseconds; ``--out`` appends one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import pika

from leveret.testing.brokers import ExternalBroker, InProcessBroker


def summary(name: str, samples: list[float]) -> dict:
    ms = sorted(x * 1000 for x in samples)
    row = {"what": name, "n": len(ms), "median_ms": round(statistics.median(ms), 3),
           "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 3), "max_ms": round(ms[-1], 3)}
    print(f"{name:>16}: median {row['median_ms']:8.3f} ms   p90 {row['p90_ms']:8.3f} ms   "
          f"max {row['max_ms']:8.3f} ms   (n={row['n']})")
    return row


def time_import(runs: int) -> list[float]:
    code = ("import time; t = time.perf_counter(); import leveret.testing.brokers; "
            "print(time.perf_counter() - t)")
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(runs)]


SESSION_TESTS = {
    "bare": "def test_nothing():\n    pass\n",
    "fixtures": "def test_url(leveret_url):\n    assert leveret_url.startswith('amqp://')\n",
}


def time_sessions(runs: int, bytecode: bool) -> tuple[list[float], list[float]]:
    """Wall time and CPU time of a pytest session using the fixtures minus one using none, per
    alternating pair."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        import leveret
        compileall.compile_dir(os.path.dirname(leveret.__file__), quiet=1)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    diffs, cpu_diffs = [], []
    with tempfile.TemporaryDirectory() as d:
        for name, text in SESSION_TESTS.items():
            with open(os.path.join(d, f"test_{name}.py"), "w") as f:
                f.write(text)
        for i in range(runs + 1):
            took, cpu = {}, {}
            for name in SESSION_TESTS:
                t, c = time.perf_counter(), _children_cpu()
                subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                os.path.join(d, f"test_{name}.py")], cwd=d, env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                took[name], cpu[name] = time.perf_counter() - t, _children_cpu() - c
            if i:       # the first pair warms the disk cache (and writes the bytecode)
                diffs.append(took["fixtures"] - took["bare"])
                cpu_diffs.append(cpu["fixtures"] - cpu["bare"])
    return diffs, cpu_diffs


def _children_cpu() -> float:
    """CPU seconds (user + system, every thread) of the finished child processes so far: unlike
    wall time, hardly moved by other work on the machine."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_start_stop(runs: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        b = InProcessBroker().start()
        t1 = time.perf_counter()
        b.close()
        t2 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t2 - t1)
    return starts, stops


def time_vhosts(broker, n: int) -> tuple[list[float], list[float]]:
    cycle, connect = [], []
    for i in range(n):
        t0 = time.perf_counter()
        name = broker.new_vhost(f"bench_{i}")
        t1 = time.perf_counter()
        if i % 10 == 0:      # a connection to a tenth of them (pika's own cost dominates)
            c = pika.BlockingConnection(pika.URLParameters(broker.url_for(name)))
            c.close()
            connect.append(time.perf_counter() - t1)
        t2 = time.perf_counter()
        broker.delete_vhost(name)
        cycle.append((t1 - t0) + (time.perf_counter() - t2))
    return cycle, connect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--vhosts", type=int, default=500)
    ap.add_argument("--rabbitmq-url", default=None)
    ap.add_argument("--rabbitmq-mgmt-url", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-bytecode", action="store_true",
                    help="the session measurement with PYTHONDONTWRITEBYTECODE=1 (sources compiled every session)")
    ap.add_argument("--no-session", action="store_true", help="skip the whole-session measurement")
    args = ap.parse_args()
    rows = []
    if not args.no_session:
        wall, cpu = time_sessions(min(args.runs, 15), not args.no_bytecode)
        rows += [summary("session", wall), summary("session cpu", cpu)]
    rows.append(summary("import", time_import(min(args.runs, 10))))
    starts, stops = time_start_stop(args.runs)
    rows += [summary("start", starts), summary("stop", stops)]
    b = InProcessBroker().start()
    try:
        cycle, connect = time_vhosts(b, args.vhosts)
    finally:
        b.close()
    rows += [summary("vhost", cycle), summary("connect (pika)", connect)]
    if args.rabbitmq_url:
        ext = ExternalBroker(args.rabbitmq_url, args.rabbitmq_mgmt_url).start()
        if not ext.isolated:
            sys.exit(f"no per-test vhosts on {args.rabbitmq_url}: {ext.why_shared}")
        cycle, connect = time_vhosts(ext, min(args.vhosts, 50))
        rows += [summary("rabbitmq vhost", cycle), summary("rabbitmq connect", connect)]
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps({"bench": "plugin_startup", **r}) + "\n")


if __name__ == "__main__":
    main()
