#!/usr/bin/env python3
"""Record, replay and minimise a sequence of ``tests/test_differential.py``.

A failing differential seed is a random sequence of up to a few hundred operations; this finds
the few that matter. It uses the test module's own machinery (``Side``, ``run_op``, ``settle``,
and the lifecycle generator's ``pause_after``: a publish with a short expiration is observed
only once its deadline has passed), so a replay compares exactly what the test compares, after
every step.

    # a Leveret to compare (any running one), and the RabbitMQ
    export LEVERET_URL=amqp://guest:guest@127.0.0.1:5673/%2F
    export LEVERET_DIFF_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2F
    python3 tools/diff_minimise.py record lifecycle 10335 100 /tmp/10335.ops
    python3 tools/diff_minimise.py replay /tmp/10335.ops [-v]
    python3 tools/diff_minimise.py minimise /tmp/10335.ops      # writes /tmp/10335.ops.min

``record`` runs the generator (``routing`` or ``lifecycle``) for the seed and writes the
operations it ran, one Python literal a line, up to the first difference. ``replay`` runs such a
file (operations that name delivery tags name them as numbers, so a shortened sequence may settle
other messages: that is fine, it only has to fail the same way). ``minimise`` removes chunks of
operations, halving the chunk size when none can go, while the sequence still fails at an
operation of the same kind in the same way ("different results" or "different after settle");
it keeps the operations up to that failure. RabbitMQ's scheduling can make a failure come and go,
so replay the result a few times.
"""
from __future__ import annotations

import ast
import contextlib
import os
import random
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import pika.spec  # noqa: E402

import test_differential as T  # noqa: E402

LEVERET = os.environ.get("LEVERET_URL", "")
GENERATORS = {"routing": T.RoutingGen, "lifecycle": T.LifecycleGen}


def run(source, steps: int = 0, verbose: bool = False) -> tuple[int | None, list, str]:
    """Run a generator (with ``steps``) or a list of operations on both brokers. Returns the
    index of the first operation after which they differ (None: none), the operations run and
    a description of the difference."""
    prefix = f"diff.min{uuid.uuid4().hex[:8]}."
    gen = source if isinstance(source, T.Tracker) else None
    # as the test: observe only once a short expiration's deadline has passed (pause_after
    # looks at the operation alone, so a replayed lifecycle operation gets the same wait)
    pauser = gen if gen is not None else T.LifecycleGen(random.Random(0))
    ops_in = iter(()) if gen is not None else iter(source)
    ops: list = []
    ready: list = []
    with contextlib.ExitStack() as stack:
        lev_named: set = set()
        rab_named: set = set()
        stack.callback(T.cleanup, T.RABBIT, prefix, rab_named)
        stack.callback(T.cleanup, LEVERET, prefix, lev_named)
        lev = T.Side(LEVERET, prefix, lev_named)
        stack.callback(lev.close)
        rab = T.Side(T.RABBIT, prefix, rab_named)
        stack.callback(rab.close)
        while True:
            if gen is not None:
                if len(ops) >= steps:
                    break
                op = gen.next(ready)
            else:
                op = next(ops_in, None)
                if op is None:
                    break
            ops.append(op)
            a, b = T.run_op(lev, op, prefix), T.run_op(rab, op, prefix)
            if verbose:
                print(len(ops) - 1, op, "->", b)
            if a != b:
                return len(ops) - 1, ops, f"different results\n  leveret:  {a}\n  rabbitmq: {b}"
            pause = pauser.pause_after(op)
            if pause:
                time.sleep(pause)
            seen_lev, seen_rab = T.settle(lev, rab)
            if verbose:
                print("   ", seen_rab)
            if seen_lev != seen_rab:
                return len(ops) - 1, ops, (f"different after settle\n  leveret:  {seen_lev}\n"
                                           f"  rabbitmq: {seen_rab}")
            ready = [s[0] if isinstance(s, tuple) else s for s in seen_rab[1]]
            if gen is not None:
                gen.track(op, b, seen_rab[0])
            if b[0] == "connection-closed":
                break
    return None, ops, "same"


def load(path: str) -> list:
    with open(path) as f:
        return [ast.literal_eval(line) for line in f if line.strip()]


def save(path: str, ops: list) -> None:
    with open(path, "w") as f:
        f.write("".join(f"{op!r}\n" for op in ops))


def minimise(ops: list) -> list:
    idx, _, why = run(ops)
    if idx is None:
        raise SystemExit("the sequence does not fail")
    ops = ops[:idx + 1]
    want = (ops[-1][0], why.split("\n")[0])

    def fails(cand: list) -> int | None:
        i, _, w = run(cand)
        return i if i is not None and (cand[i][0], w.split("\n")[0]) == want else None

    chunk = max(1, len(ops) // 2)
    while True:
        i, removed = 0, False
        while i < len(ops):
            cand = ops[:i] + ops[i + chunk:]
            j = fails(cand) if cand else None
            if j is None:
                i += chunk
            else:
                ops, removed = cand[:j + 1], True
                print(f"{len(ops)} operations", flush=True)
        if not removed:
            if chunk == 1:
                return ops
            chunk //= 2
        chunk = min(chunk, max(1, len(ops) // 2))


def main(argv: list[str]) -> None:
    if not (LEVERET and T.RABBIT):
        raise SystemExit("set LEVERET_URL and LEVERET_DIFF_RABBITMQ_URL")
    # keep the raw content headers: the test compares typed header tables
    pika.spec.BasicProperties.decode = T._patched_decode(pika.spec.BasicProperties.decode)
    cmd = argv[0] if argv else ""
    if cmd == "record" and len(argv) == 5:
        name, seed, steps, path = argv[1], int(argv[2]), int(argv[3]), argv[4]
        idx, ops, why = run(GENERATORS[name](random.Random(seed)), steps)
        save(path, ops)
        print(f"{len(ops)} operations written to {path}; " +
              ("no difference" if idx is None else f"operation {idx}: {why}"))
    elif cmd == "replay" and len(argv) in (2, 3):
        idx, ops, why = run(load(argv[1]), verbose="-v" in argv[2:])
        print("no difference" if idx is None else f"operation {idx}: {ops[idx]!r}\n{why}")
    elif cmd == "minimise" and len(argv) == 2:
        ops = minimise(load(argv[1]))
        save(argv[1] + ".min", ops)
        print(f"{len(ops)} operations written to {argv[1]}.min")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
