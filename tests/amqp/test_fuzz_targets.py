"""CI-sized run of the fuzz targets (``fuzz_targets.py``; long runs: ``fuzz/fuzz.py``).

Each target gets a few hundred generated inputs from a fixed seed (``LEVERET_FUZZ_INPUTS``
raises the count, ``LEVERET_FUZZ_SEED`` picks another seed), plus its seed corpus. The
allowed outcomes are success and the protocol's own errors; see ``fuzz_targets`` for each
target's invariants. The regression tests below pin what the targets found.
"""
from __future__ import annotations

import os
import random
import struct

import pytest
from fuzz_targets import TARGETS, SinkDriver, _deliver, deep_table, summary
from test_connection_fuzz import Driver, frame, handshake, mframe, parse_output

from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties, decode_table, decode_table_typed, encode_table
from leveret.amqp.errors import AMQPSyntaxError

INPUTS = int(os.environ.get("LEVERET_FUZZ_INPUTS", "0"))
SEED = int(os.environ.get("LEVERET_FUZZ_SEED", "20261207"))
COUNTS = {"tables": 600, "properties": 400, "frames": 150, "connection": 100}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target(name):
    """Generated inputs: every invariant holds (a failing input is printed for replay)."""
    target = TARGETS[name]
    rnd = random.Random(f"{SEED}-{name}")
    inputs = target.seeds() + [target.generate(rnd) for _ in range(INPUTS or COUNTS[name])]
    for data in inputs:
        try:
            target.check(data)
        except BaseException:
            print(f"failing {name} input: {data!r}")
            raise


def test_checks_can_fail():
    """The harness notices a broken invariant: a connection whose output is cut short, a
    decoder that disagrees with itself."""
    d = SinkDriver()
    d.feed(b"".join(handshake()))
    d.out = d.out[:-3]
    with pytest.raises(AssertionError):
        d.check()
    with pytest.raises(AssertionError):
        summary(b"\x01\x00\x00\x00\x00\x00\x05ab")


# ------------------------------------------------------------------ regressions


@pytest.mark.parametrize("depth", [10, 100, 350, 5000])
def test_deeply_nested_tables_round_trip(depth):
    """Tables and arrays nest without limit, as in RabbitMQ; each re-encodes to its bytes
    (deep levels are kept as their wire bytes: codec.Opaque)."""
    for tag in "FA":
        raw = deep_table(depth, tag)
        t, end = decode_table_typed(raw)
        assert end == len(raw) and encode_table(t) == raw
        decode_table(raw)


def _publish_deep_and_dead_letter(depth: int) -> list:
    d = Driver()
    props = struct.pack(">H", 0x2000) + deep_table(depth)
    d.feed(b"".join(handshake()) + mframe(1, spec.ChannelOpen())
           + mframe(1, spec.QueueDeclare(queue="dl"))
           + mframe(1, spec.QueueDeclare(queue="src", arguments={"x-dead-letter-exchange": "",
                                                                 "x-dead-letter-routing-key": "dl"}))
           + mframe(1, spec.BasicPublish(exchange="", routing_key="src"))
           + frame(2, 1, struct.pack(">HHQ", 60, 0, 1) + props) + frame(3, 1, b"x")
           + mframe(1, spec.BasicGet(queue="src"))
           + mframe(1, spec.BasicReject(delivery_tag=1, requeue=False))
           + mframe(1, spec.BasicGet(queue="dl", no_ack=True)))
    d.check()
    return [(spec.decode_method(p).NAME, getattr(spec.decode_method(p), "reply_code", None))
            for t, _, p in parse_output(bytes(d.out)) if t == 1][5:]


@pytest.mark.parametrize("depth", [100, 350, 5000])
def test_deeply_nested_headers_dead_letter(depth):
    """Regression (found by the tables target): headers nested ~350 levels deep were accepted
    at publish, then re-encoding them with x-death (dead-lettering) raised RecursionError -> 541.
    Any depth dead-letters now, as in RabbitMQ."""
    assert _publish_deep_and_dead_letter(depth) == [
        ("queue.declare-ok", None), ("basic.get-ok", None), ("basic.get-ok", None)]


def test_frames_reader_is_split_independent_after_errors():
    """Regression (found by the frames target): the same bytes fed whole and byte by byte
    give the same output after a connection error followed by a client connection.close."""
    data = (b"\x00" + frame(1, 0, b"\x00") + mframe(0, spec.ConnectionClose(reply_code=200, reply_text="")))
    stream = TARGETS["frames"].stream(data)
    outs = [_deliver(SinkDriver(), stream, how) for how in ("whole", "bytes", "chunks")]
    assert outs[0] == outs[1] == outs[2]
    assert [n for _, n, _ in summary(outs[0])][-2:] == ["connection.close", "connection.close-ok"]
