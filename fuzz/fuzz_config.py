#!/usr/bin/env python3
"""Long-running fuzzer for the rabbitmq.conf reader, ``leveret.config.parse`` (not run in CI).

The invariant is the CI test's, ``tests/config/test_config_fuzz.py`` (imported from there, so
both always check the same thing): whatever the bytes, ``parse`` returns a Settings and a list
of warning strings, or raises ``ConfigError`` -- never another exception.

* plain random loop (no atheris needed)::

      python fuzz/fuzz_config.py --plain --seconds 600 [--seed N]

  Inputs are generated files (real keys -- Leveret's and every RabbitMQ 3.10.8 key -- with
  plausible and wrong values, comments, includes, CRLF), then mutated with the frame fuzzer's
  mutations (bit flips, byte sets, insertions, deletions, truncations, duplications), and
  random bytes; every 8th input is also checked at each of its byte-by-byte prefixes.
  A failing input is written to ``fuzz/crashes/`` and the script exits 1.

* atheris (coverage-guided, libFuzzer)::

      python fuzz/fuzz_config.py -max_total_time=600 fuzz/config-corpus

Reproduce a crash file with ``python fuzz/fuzz_config.py --replay FILE``.
"""
from __future__ import annotations

import os
import random
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "config"))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, HERE)

from fuzz_frames import mutate, parse_args, save_crash  # noqa: E402  (the frame fuzzer's)


def _load(instrument: bool):
    if instrument:
        import atheris
        with atheris.instrument_imports(include=["leveret"]):
            import leveret.config  # noqa: F401
    import test_config_fuzz as checks
    return checks


def valid_input(checks, rnd: random.Random) -> bytes:
    keys = sorted(checks.HANDLERS) + sorted(checks.KEYS)
    lines = []
    for _ in range(rnd.randint(0, 16)):
        r = rnd.random()
        if r < 0.1:
            lines.append(rnd.choice(["", "# comment", "  \t", "include nothere/*.conf"]))
            continue
        key = checks._key(rnd.choice(keys), [rnd.choice(checks.SEGMENTS) for _ in range(2)])
        value = rnd.choice(checks.VALUES) if r < 0.9 else rnd.randbytes(rnd.randint(1, 8)).decode("latin-1")
        lines.append(f"{key}{rnd.choice([' = ', '=', ' =  '])}{value}{rnd.choice(['', ' # c', '  '])}")
    return rnd.choice(["\n", "\r\n"]).join(lines).encode("utf-8")


def random_input(checks, rnd: random.Random) -> bytes:
    r = rnd.random()
    if r < 0.6:
        return mutate(rnd, valid_input(checks, rnd))
    if r < 0.9:
        return valid_input(checks, rnd)
    return rnd.randbytes(rnd.randint(0, 400))


def run_one(checks, data: bytes, prefixes: bool) -> None:
    checks.check(data)
    if prefixes:
        for n in range(len(data)):
            checks.check(data[:n])


def plain_loop(seconds: float, seed: int | None) -> int:
    checks = _load(False)
    seed = random.randrange(2 ** 32) if seed is None else seed
    rnd = random.Random(seed)
    print(f"plain config fuzzing for {seconds:.0f}s, seed {seed}", flush=True)
    deadline = time.monotonic() + seconds
    n = parses = 0
    next_report = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = random_input(checks, rnd)
        prefixes = n % 8 == 0
        try:
            run_one(checks, data, prefixes)
        except BaseException as e:  # noqa: BLE001 - report everything, then stop
            if isinstance(e, KeyboardInterrupt):
                break
            path = save_crash(data)
            traceback.print_exc()
            print(f"FAILED after {n} inputs; input saved to {path} "
                  f"(replay: python fuzz/fuzz_config.py --replay {path})", flush=True)
            return 1
        n += 1
        parses += 1 + (len(data) if prefixes else 0)
        if time.monotonic() >= next_report:
            print(f"  {n} inputs ({parses} parses)", flush=True)
            next_report += 30
    print(f"OK: {n} inputs ({parses} parses counting prefixes) in {seconds:.0f}s, "
          f"no invariant broken (seed {seed})", flush=True)
    return 0


def main() -> int:
    args, rest = parse_args()
    if args.help:
        print(__doc__)
        return 0
    if args.replay:
        with open(args.replay, "rb") as f:
            run_one(_load(False), f.read(), prefixes=True)
        print("replay: invariant holds")
        return 0
    if not args.plain:
        try:
            import atheris
        except ImportError:
            print("atheris is not installed (pip install atheris); running the plain loop instead", file=sys.stderr)
        else:
            checks = _load(True)
            atheris.Setup([sys.argv[0]] + rest, lambda data: checks.check(data))
            atheris.Fuzz()
            return 0
    return plain_loop(args.seconds, args.seed)


if __name__ == "__main__":
    sys.exit(main())
