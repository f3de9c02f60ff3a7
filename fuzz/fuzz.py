#!/usr/bin/env python3
"""Long fuzz runs of every protocol target (the CI-sized run is tests/amqp/test_fuzz_targets.py).

Targets (``tests/amqp/fuzz_targets.py``, plus ``session`` from ``fuzz_frames.py``): ``tables``,
``properties``, ``frames``, ``connection``, ``session``. A plain random loop per target and
worker process; an input that breaks an invariant (an exception other than the protocol's
errors, a call not returning within the bound, unparsable output) is saved under
``fuzz/crashes/<target>-...bin`` and counted, and the run goes on. A hang is a failure whose
exception is ``Hang``. At the end one JSON line per target: inputs, crashes, hangs, seconds.

    python fuzz/fuzz.py --seconds 60                           # every target, 60 s each per worker
    nice -n 10 python fuzz/fuzz.py --jobs 2 --total-seconds 2400 --fast-splits --out fuzz/runs.jsonl
    nice -n 10 python fuzz/fuzz.py --jobs 2 --seconds 900 --target tables --target properties
    python fuzz/fuzz.py --replay fuzz/crashes/frames-....bin   # target taken from the name
    python fuzz/fuzz.py --atheris --target tables -max_total_time=600 fuzz/corpus-tables
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "amqp"))
sys.path.insert(0, os.path.join(ROOT, "src"))

logging.disable(logging.CRITICAL)   # the broker logs refused logins, missed heartbeats ...

ORDER = ("tables", "properties", "frames", "connection", "session")


class SessionTarget:
    """fuzz_frames.py's whole-session mutations, as a target."""

    name = "session"

    def __init__(self):
        import fuzz_frames
        self._ff = fuzz_frames
        self._checks = fuzz_frames._load(False)

    def generate(self, rnd):
        return self._ff.random_input(self._checks, rnd)

    def check(self, data):
        self._ff.run_one(self._checks, data)

    def seeds(self):
        rnd = random.Random(1234)
        return [self._ff.valid_input(self._checks, rnd) for _ in range(32)]


def targets() -> dict:
    from fuzz_targets import TARGETS
    return {**TARGETS, "session": SessionTarget()}


def save_crash(name: str, data: bytes) -> str:
    d = os.path.join(HERE, "crashes")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{name}-{int(time.time())}-{os.getpid()}-{random.randrange(1 << 30)}.bin")
    with open(path, "wb") as f:
        f.write(data)
    return path


# --total-seconds splits a worker's time between the targets by these weights: the decoders
# take ~0.2 ms an input, a whole connection fed three ways ~10 ms
WEIGHTS = {"tables": 0.38, "properties": 0.32, "frames": 0.12, "connection": 0.10, "session": 0.08}


def worker(job: tuple[str, int, float, bool]) -> dict:
    """Run one target for ``seconds`` from ``seed``: counts of inputs, crashes and hangs."""
    name, seed, seconds, fast_splits = job
    import fuzz_targets
    from test_connection_fuzz import Hang
    if fast_splits:
        fuzz_targets.SPLIT_EVERY, fuzz_targets.SPLIT_SAMPLE = 8, 1
    target = targets()[name]
    rnd = random.Random(seed)
    n = crashes = hangs = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    first = []
    while time.monotonic() < deadline:
        for _ in range(20):
            data = target.generate(rnd)
            try:
                target.check(data)
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001 - every other outcome is a finding
                if isinstance(e, Hang):
                    hangs += 1
                else:
                    crashes += 1
                path = save_crash(name, data)
                if len(first) < 3:
                    first.append(f"{path}: {traceback.format_exc(limit=6)}")
            n += 1
    return {"target": name, "seed": seed, "inputs": n, "crashes": crashes, "hangs": hangs,
            "seconds": round(time.monotonic() - t0, 1), "failures": first}


def run(names: list[str], jobs: int, seconds: dict, seed: int, out: str | None, fast_splits: bool) -> int:
    tasks = [(name, seed + i, seconds[name], fast_splits) for name in names for i in range(jobs)]
    print(f"fuzzing {jobs} worker(s), seconds per target and worker {seconds}, seed {seed}", flush=True)
    t0 = time.monotonic()
    totals: dict[str, dict] = {}
    with multiprocessing.Pool(jobs) as pool:
        for r in pool.imap_unordered(worker, tasks):
            t = totals.setdefault(r["target"], {"target": r["target"], "inputs": 0, "crashes": 0, "hangs": 0,
                                                "cpu_seconds": 0.0})
            for k in ("inputs", "crashes", "hangs"):
                t[k] += r[k]
            t["cpu_seconds"] += r["seconds"]
            for f in r["failures"]:
                print(f, flush=True)
            print(f"  {r['target']} seed {r['seed']}: {r['inputs']} inputs, {r['crashes']} crashes, "
                  f"{r['hangs']} hangs in {r['seconds']} s", flush=True)
    wall = round(time.monotonic() - t0, 1)
    summary = {"seed": seed, "jobs": jobs, "fast_splits": fast_splits, "wall_seconds": wall,
               "inputs": sum(t["inputs"] for t in totals.values()),
               "crashes": sum(t["crashes"] for t in totals.values()),
               "hangs": sum(t["hangs"] for t in totals.values()),
               "targets": [totals[n] for n in names if n in totals]}
    line = json.dumps(summary)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
    return 1 if summary["crashes"] or summary["hangs"] else 0


def replay(path: str, name: str | None) -> int:
    name = name or os.path.basename(path).split("-")[0]
    with open(path, "rb") as f:
        targets()[name].check(f.read())
    print(f"replay ({name}): invariants hold")
    return 0


def atheris_main(name: str, argv: list[str]) -> None:
    import atheris
    with atheris.instrument_imports(include=["leveret"]):
        import leveret.amqp.codec  # noqa: F401
        import leveret.amqp.connection  # noqa: F401
        import leveret.broker.connection  # noqa: F401
    import contextlib

    import fuzz_targets
    import test_connection_fuzz
    # libFuzzer's own -timeout uses SIGALRM: do not arm ours under atheris
    test_connection_fuzz.wall_clock = fuzz_targets.wall_clock = lambda seconds: contextlib.nullcontext()
    target = targets()[name]
    atheris.Setup(argv, target.check)
    atheris.Fuzz()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", choices=ORDER, help="repeatable; default: all")
    ap.add_argument("--seconds", type=float, default=60.0, help="per target and worker")
    ap.add_argument("--total-seconds", type=float, help="per worker, split between the targets by WEIGHTS")
    ap.add_argument("--fast-splits", action="store_true",
                    help="decoder targets split each input at 1 sampled byte boundary (all of <= 8 bytes)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out", help="append the JSON summary line to this file")
    ap.add_argument("--replay")
    ap.add_argument("--atheris", action="store_true", help="coverage-guided (one --target); rest: libFuzzer flags")
    args, rest = ap.parse_known_args()
    if args.replay:
        return replay(args.replay, args.target[0] if args.target else None)
    if args.atheris:
        atheris_main((args.target or ["tables"])[0], [sys.argv[0]] + rest)
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    names = list(args.target or ORDER)
    if args.total_seconds:
        w = sum(WEIGHTS[n] for n in names)
        seconds = {n: round(args.total_seconds * WEIGHTS[n] / w) for n in names}
    else:
        seconds = {n: args.seconds for n in names}
    return run(names, args.jobs, seconds, seed, args.out, args.fast_splits)


if __name__ == "__main__":
    sys.exit(main())
