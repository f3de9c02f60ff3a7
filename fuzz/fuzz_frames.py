#!/usr/bin/env python3
"""Long-running fuzzer for the AMQP connection state machine (not run in CI).

Feeds bytes to a fresh ``BrokerConnection`` on a real ``Broker`` (no sockets) and
checks the invariants of ``tests/amqp/test_connection_fuzz.py`` (they are imported
from there, so CI and this target always check the same thing): nothing escapes
``receive_data``/``data_to_send``/``tick``, the output is the protocol header or
well-formed frames, a server connection.close carries a hard-error code (541 =
an exception inside the broker = a bug), nothing but close-ok follows it, and the
final state is consistent.

Two engines:

* atheris (coverage-guided, libFuzzer)::

      pip install atheris
      python fuzz/fuzz_frames.py -max_total_time=600 -timeout=10 fuzz/corpus

  Any libFuzzer flag works (``-jobs``, ``-dict``, ``-runs`` ...). Give a corpus
  directory to keep what it learns; ``--seed-corpus DIR`` writes starting inputs
  (valid handshakes, publishes, consumes) into DIR first.

* plain random loop (no atheris needed)::

      python fuzz/fuzz_frames.py --plain --seconds 60 [--seed N]

  Random mutations of generated valid streams plus random bytes. A failing input
  is written to ``fuzz/crashes/`` and the script exits 1.

Reproduce a crash file with ``python fuzz/fuzz_frames.py --replay FILE``.

Input layout (both engines): byte 0 picks a prefix (0: none, 1: protocol header
+ handshake, 2: handshake + channel.open) and bit 2 of it byte-at-a-time
delivery; bytes 1..2 pick chunk sizes; the rest is the stream.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import struct
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "amqp"))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, HERE)

logging.disable(logging.CRITICAL)   # broker warnings (missed heartbeats, refused logins) are expected


def _load(instrument: bool):
    """Import the broker (instrumented for coverage under atheris) and the shared checker."""
    if instrument:
        import atheris
        with atheris.instrument_imports(include=["leveret"]):
            import leveret.amqp.codec  # noqa: F401
            import leveret.amqp.connection  # noqa: F401
            import leveret.amqp.spec  # noqa: F401
            import leveret.broker.connection  # noqa: F401
            import leveret.broker.channel  # noqa: F401
    import test_connection_fuzz as checks
    # libFuzzer's own -timeout uses SIGALRM: do not arm ours under atheris
    if instrument:
        checks.wall_clock = lambda seconds: contextlib.nullcontext()
    return checks


def prefix_for(checks, mode: int) -> bytes:
    from leveret.amqp import spec
    if mode == 1:
        return b"".join(checks.handshake())
    if mode == 2:
        return b"".join(checks.handshake()) + checks.mframe(1, spec.ChannelOpen())
    return b""


def run_one(checks, data: bytes) -> None:
    """One fuzz input -> one or two connections, invariants asserted."""
    if len(data) < 3:
        checks.run_whole(data)
        return
    mode, c1, c2 = data[0], data[1], data[2]
    stream = prefix_for(checks, mode % 3) + data[3:]
    if mode & 4:
        checks.run_bytewise(stream[:4000])
    else:
        cuts, pos = [], 0
        for step in (c1 * 7 + 1, c2 * 13 + 1) * 8:
            pos += step
            cuts.append(pos)
        checks.run_chunked(stream, cuts)


# ------------------------------------------------------------------ seeds / plain generator


def _ops(checks, rnd: random.Random, ch: int) -> list[bytes]:
    from leveret.amqp import spec
    from leveret.amqp.codec import BasicProperties
    out = checks.channel_setup(ch) if rnd.random() < 0.8 else []
    for _ in range(rnd.randint(1, 12)):
        k = rnd.choice(["pub", "pub", "pub", "get", "get", "consume", "ack", "nack", "qos", "confirm", "tx",
                        "declare", "purge", "delete", "cancel", "close", "hb", "recover"])
        q = rnd.choice(["q1", "q2", "", "amq.gen-x"])
        if k == "pub":
            body = rnd.randbytes(rnd.choice([0, 1, 10, 100, 5000]))
            props = BasicProperties(delivery_mode=rnd.choice([None, 1, 2]), priority=rnd.choice([None, 0, 5]),
                                    headers=rnd.choice([None, {"a": 1, "x-match": "any"}]),
                                    user_id=rnd.choice([None, "guest", "bob"]))
            out.append(checks.mframe(ch, spec.BasicPublish(exchange=rnd.choice(["", "", "amq.topic", "ex1"]),
                                                           routing_key=q, mandatory=rnd.random() < 0.3)))
            out.append(checks.content(ch, body, props, chunk=rnd.choice([100, 4088])))
        elif k == "get":
            out.append(checks.mframe(ch, spec.BasicGet(queue=q, no_ack=rnd.random() < 0.5)))
        elif k == "consume":
            out.append(checks.mframe(ch, spec.BasicConsume(queue=q, consumer_tag=rnd.choice(["", "c1"]),
                                                           no_ack=rnd.random() < 0.5)))
        elif k == "ack":
            out.append(checks.mframe(ch, spec.BasicAck(delivery_tag=rnd.randint(0, 3), multiple=rnd.random() < .5)))
        elif k == "nack":
            out.append(checks.mframe(ch, spec.BasicNack(delivery_tag=rnd.randint(0, 3), requeue=rnd.random() < .5)))
        elif k == "qos":
            out.append(checks.mframe(ch, spec.BasicQos(prefetch_count=rnd.randint(0, 3))))
        elif k == "confirm":
            out.append(checks.mframe(ch, spec.ConfirmSelect()))
        elif k == "tx":
            out.append(checks.mframe(ch, rnd.choice([spec.TxSelect(), spec.TxCommit(), spec.TxRollback()])))
        elif k == "declare":
            out.append(checks.mframe(ch, spec.QueueDeclare(queue=q, exclusive=rnd.random() < .2,
                                                           arguments=rnd.choice([{}, {"x-max-length": 1}]))))
        elif k == "purge":
            out.append(checks.mframe(ch, spec.QueuePurge(queue=q)))
        elif k == "delete":
            out.append(checks.mframe(ch, spec.QueueDelete(queue=q)))
        elif k == "cancel":
            out.append(checks.mframe(ch, spec.BasicCancel(consumer_tag="c1")))
        elif k == "recover":
            out.append(checks.mframe(ch, spec.BasicRecover(requeue=True)))
        elif k == "hb":
            out.append(b"\x08\x00\x00\x00\x00\x00\x00\xce")
        elif k == "close":
            out.append(checks.mframe(ch, spec.ChannelClose(reply_code=200, reply_text="")))
            out.append(checks.mframe(ch, spec.ChannelOpen()))
    return out


def valid_input(checks, rnd: random.Random) -> bytes:
    """A fuzz input (mode byte 0 = no prefix) holding a complete valid session."""
    from leveret.amqp import spec
    parts = checks.handshake(frame_max=rnd.choice([4096, 131072]), heartbeat=rnd.choice([0, 0, 3]))
    parts.append(checks.mframe(1, spec.ChannelOpen()))
    parts += _ops(checks, rnd, 1)
    if rnd.random() < 0.5:
        parts.append(checks.mframe(2, spec.ChannelOpen()))
        parts += _ops(checks, rnd, 2)
    if rnd.random() < 0.3:
        parts.append(checks.mframe(0, spec.ConnectionClose(reply_code=200, reply_text="bye")))
    return bytes((rnd.choice([0, 4]), rnd.randrange(256), rnd.randrange(256))) + b"".join(parts)


def mutate(rnd: random.Random, data: bytes) -> bytes:
    from fuzz_targets import mutate as shared
    return shared(rnd, data)


def random_input(checks, rnd: random.Random) -> bytes:
    r = rnd.random()
    if r < 0.7:
        return mutate(rnd, valid_input(checks, rnd))
    if r < 0.8:
        return valid_input(checks, rnd)
    return bytes((rnd.randrange(8),)) + rnd.randbytes(rnd.randint(0, 400))


def save_crash(data: bytes) -> str:
    from fuzz import save_crash as shared
    return shared("session", data)


def plain_loop(seconds: float, seed: int | None) -> int:
    checks = _load(False)
    seed = random.randrange(2 ** 32) if seed is None else seed
    rnd = random.Random(seed)
    print(f"plain fuzzing for {seconds:.0f}s, seed {seed}", flush=True)
    deadline = time.monotonic() + seconds
    n = 0
    next_report = time.monotonic() + 10
    while time.monotonic() < deadline:
        data = random_input(checks, rnd)
        try:
            run_one(checks, data)
        except BaseException as e:  # noqa: BLE001 - report everything, then stop
            if isinstance(e, KeyboardInterrupt):
                break
            path = save_crash(data)
            traceback.print_exc()
            print(f"FAILED after {n} inputs; input saved to {path} "
                  f"(replay: python fuzz/fuzz_frames.py --replay {path})", flush=True)
            return 1
        n += 1
        if time.monotonic() >= next_report:
            print(f"  {n} inputs", flush=True)
            next_report += 10
    print(f"OK: {n} inputs in {seconds:.0f}s, no invariant broken (seed {seed})", flush=True)
    return 0


def write_seeds(directory: str, count: int = 64) -> None:
    checks = _load(False)
    os.makedirs(directory, exist_ok=True)
    rnd = random.Random(1234)
    for i in range(count):
        with open(os.path.join(directory, f"seed-{i:03d}"), "wb") as f:
            f.write(valid_input(checks, rnd))
    # the three prefixes with a little tail
    for mode in range(3):
        with open(os.path.join(directory, f"seed-mode{mode}"), "wb") as f:
            f.write(bytes((mode, 1, 1)) + struct.pack(">BHI", 1, 1, 0) + b"\xce")


def atheris_main(argv: list[str]) -> None:
    import atheris
    checks = _load(True)

    def test_one_input(data: bytes) -> None:
        run_one(checks, data)

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def parse_args(*extra: str):
    """The options both fuzz targets share (and ``extra`` ones taking a value); the rest is
    left for libFuzzer."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--replay")
    for option in extra:
        ap.add_argument(option)
    ap.add_argument("-h", "--help", action="store_true")
    return ap.parse_known_args()


def main() -> int:
    args, rest = parse_args("--seed-corpus")
    if args.help:
        print(__doc__)
        return 0
    if args.replay:
        checks = _load(False)
        with open(args.replay, "rb") as f:
            run_one(checks, f.read())
        print("replay: invariants hold")
        return 0
    if args.seed_corpus:
        write_seeds(args.seed_corpus)
        if not rest and not args.plain:
            return 0
    if args.plain:
        return plain_loop(args.seconds, args.seed)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris); running the plain loop instead", file=sys.stderr)
        return plain_loop(args.seconds, args.seed)
    atheris_main([sys.argv[0]] + rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
