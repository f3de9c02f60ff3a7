"""Leveret start-up time (exec to first connection.open-ok) and what its imports cost.

    .venv/bin/python bench/startup.py --broker leveret [--runs 10] [--top 15] [--bytecode both] [--out F]
    .venv/bin/python bench/startup.py --broker rabbitmq

Leveret: ``--runs`` times, start ``python -m leveret serve`` on a free port with an empty data
directory and time from just before the exec until a raw AMQP handshake (bench/memory.py's
client, polling connect every 5 ms) gets connection.open-ok; report median/min/max. Then one
more start under ``python -X importtime`` (stopped once it answers) and report the top ``--top``
modules by cumulative import time, import time summed by top-level package (self times), and
the bare interpreter start (``python -c pass``) for reference.

Bytecode matters: this environment sets PYTHONDONTWRITEBYTECODE=1 and src/ has no __pycache__,
so every start compiles Leveret's modules from source. ``--bytecode none`` measures that (the
inherited environment, as run here); ``--bytecode warm`` unsets it and points
PYTHONPYCACHEPREFIX at a temporary directory (nothing is written into the repository), warmed by
one untimed start, as an installed package with compiled .pyc files would run; ``both`` (default)
does the two.

RabbitMQ is never restarted by this script: ``--broker rabbitmq`` only prints the empty boot
recorded in BENCHMARKS.md (about 8 s, from bench/recovery.py).
With ``--out FILE`` appends one JSON line per run (kind "run"), a summary and the import profile
for each bytecode mode.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

from memory import Leveret, append_json

RABBIT_EMPTY_BOOT_S = 8.2  # BENCHMARKS.md, recovery table: "~8.2 s is an empty boot"


def child_env(mode: str, cache_dir: str) -> dict:
    env = dict(os.environ)
    if mode == "warm":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def time_starts(runs: int, env: dict, mode: str, out: str | None) -> list[float]:
    times = []
    for i in range(runs):
        b = Leveret(stderr=subprocess.DEVNULL, env=env)
        try:
            t = b.start()
        finally:
            b.stop()
        times.append(t)
        append_json(out, {"broker": "leveret", "kind": "run", "bytecode": mode, "run": i + 1,
                          "exec_to_open_ok_s": round(t, 4), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        time.sleep(0.3)
    return times


def parse_importtime(text: str) -> list[tuple[str, int, int, int]]:
    """(module, self_us, cumulative_us, depth) for each ``import time:`` line; depth 0 = top level."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, rest = line.split(":", 1)
        self_us, cum_us, name = rest.split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), int(self_us), int(cum_us), depth))
    return rows


def import_profile(env: dict, top: int) -> dict:
    with tempfile.TemporaryFile("w+") as err:
        b = Leveret(stderr=err, python_args=("-X", "importtime"), env=env)
        try:
            t = b.start()
        finally:
            b.stop()
        err.seek(0)
        rows = parse_importtime(err.read())
    total_self = sum(r[1] for r in rows)
    by_pkg: dict[str, int] = defaultdict(int)
    for name, self_us, _cum, _d in rows:
        by_pkg[name.split(".")[0]] += self_us
    top_cum = sorted(rows, key=lambda r: -r[2])[:top]
    bare = []
    for _ in range(5):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        bare.append(time.monotonic() - t0)
    return {"exec_to_open_ok_under_importtime_s": round(t, 4), "modules": len(rows),
            "import_total_self_ms": round(total_self / 1000, 1),
            "top_cumulative": [{"module": n, "cumulative_ms": round(c / 1000, 1), "self_ms": round(s / 1000, 2),
                                "depth": d} for n, s, c, d in top_cum],
            "by_package_self_ms": {k: round(v / 1000, 1) for k, v in
                                   sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]},
            "python_c_pass_s": round(statistics.median(bare), 4)}


def run_mode(mode: str, a) -> None:
    cache_dir = tempfile.mkdtemp(prefix="leveret-pycache-")
    try:
        env = child_env(mode, cache_dir)
        if mode == "warm":  # fill the bytecode cache
            b = Leveret(stderr=subprocess.DEVNULL, env=env)
            try:
                b.start()
            finally:
                b.stop()
        times = time_starts(a.runs, env, mode, a.out)
        prof = import_profile(env, a.top)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    summary = {"broker": "leveret", "kind": "summary", "bytecode": mode, "runs": a.runs,
               "median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
               "max_s": round(max(times), 4), "loadavg_1m": os.getloadavg()[0]}
    append_json(a.out, summary)
    append_json(a.out, {"broker": "leveret", "kind": "importtime", "bytecode": mode, **prof})
    label = {"none": "no bytecode cache (PYTHONDONTWRITEBYTECODE=1, as in this environment)",
             "warm": "warm bytecode cache (.pyc in PYTHONPYCACHEPREFIX)"}[mode]
    print(f"\nleveret, {label}: exec -> connection.open-ok, empty data dir, {a.runs} runs")
    print(f"  median {summary['median_s']:.3f} s   min {summary['min_s']:.3f} s   max {summary['max_s']:.3f} s"
          f"   (load average {summary['loadavg_1m']:.2f})")
    print("  runs: " + " ".join(f"{t:.3f}" for t in times))
    print(f"  bare interpreter (python -c pass): {prof['python_c_pass_s']:.3f} s; "
          f"under -X importtime exec->open-ok {prof['exec_to_open_ok_under_importtime_s']:.3f} s; "
          f"{prof['modules']} modules, {prof['import_total_self_ms']} ms import time in all")
    print(f"\n  top {a.top} modules by cumulative import time")
    print(f"  {'cumulative ms':>13} {'self ms':>8}  module")
    for r in prof["top_cumulative"]:
        print(f"  {r['cumulative_ms']:>13.1f} {r['self_ms']:>8.2f}  {'  ' * r['depth']}{r['module']}")
    print("\n  import time by top-level package (sum of self times)")
    for k, v in prof["by_package_self_ms"].items():
        print(f"  {v:>13.1f}  {k}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=("leveret", "rabbitmq"), required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--bytecode", choices=("none", "warm", "both"), default="both")
    ap.add_argument("--out", help="append JSON lines here")
    a = ap.parse_args()
    if a.broker == "rabbitmq":
        print(f"rabbitmq: not restarted by this script; empty boot ~{RABBIT_EMPTY_BOOT_S} s (BENCHMARKS.md)")
        append_json(a.out, {"broker": "rabbitmq", "kind": "cited", "empty_boot_s": RABBIT_EMPTY_BOOT_S,
                            "source": "BENCHMARKS.md (bench/recovery.py)"})
        return
    for mode in (("none", "warm") if a.bytecode == "both" else (a.bytecode,)):
        run_mode(mode, a)


if __name__ == "__main__":
    main()
