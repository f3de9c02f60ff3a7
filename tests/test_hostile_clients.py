"""Hostile clients beside a good publisher and consumer (CI size of bench/hostile.py).

A private ``leveret serve`` (the attack must not disturb the session broker) gets 200 hostile
connections at once -- random bytes, a valid header then garbage, truncated handshakes,
oversized frames, slowloris handshakes, consumers with prefetch 10000 that never read their
socket, publishers that never read, connection storms -- while a publisher and a consumer in
their own process exchange 500 messages. Asserted (correctness only, no timing):

* the good pair loses nothing and receives every message in publish order;
* the broker closes every hostile socket by itself: bad headers and frames at once or after
  RabbitMQ's 3 s, stalled handshakes at handshake_timeout (10 s), never-reading clients
  through missed heartbeats (they negotiated 6 s) -- each read until EOF, with a bound of
  handshake_timeout + 10 s (``bench/hostile.py``'s ``_until_closed``), so a socket the broker
  keeps open counts as ``not_closed``;
* the broker still accepts and serves a new connection afterwards.
"""
from __future__ import annotations

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import hostile  # noqa: E402
from memory import AsyncConn, Leveret, queue_declare, raise_nofile  # noqa: E402

pytestmark = pytest.mark.leveret_only


def test_hostile_clients_do_not_hurt_the_good_pair():
    raise_nofile(2048)
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")}
    with Leveret(env=env) as broker:
        proc, pipe = hostile.start_good_pair(broker.port, 500, 50.0, "good")
        kinds = asyncio.run(hostile.run_attack(broker.port, 200, 12.0))
        good = pipe.recv()
        proc.join(30)

        async def still_serves() -> bytes:
            c = await AsyncConn.open("127.0.0.1", broker.port)
            c.writer.write(queue_declare(1, "after-attack", auto_delete=True))
            p = await c.expect(50, 11)
            await c.aclose()
            return p

        assert b"after-attack" in asyncio.run(still_serves())

    assert good["lost"] == 0 and good["received"] == 500, good
    assert good["in_order"], good
    for kind, k in kinds.items():
        assert k["connections"] > 0, kind
        assert k["not_closed"] == 0, (kind, k)
        if kind != "storm":              # a storm closes its own sockets
            assert k["closed_by_broker"] + k["errors"] == k["connections"], (kind, k)


def _established(local_port: int) -> bool:
    """Is the TCP socket bound to 127.0.0.1:``local_port`` still ESTABLISHED (/proc/net/tcp)?"""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, _remote, state = line.split()[1:4]
            if int(local.split(":")[1], 16) == local_port and state == "01":
                return True
    return False


def test_never_reading_consumer_is_dropped_after_missed_heartbeats():
    """Regression: a consumer that never reads its socket, closed for missed heartbeats, kept
    its socket (and megabytes of buffered deliveries) for ever -- ``transport.close()`` waits
    to flush what the peer never takes. The broker now drops it (SO_LINGER 0, as RabbitMQ's
    sockets), so the client's socket stops being ESTABLISHED without it reading anything."""
    import time

    from memory import basic_consume, basic_publish, basic_qos

    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")}
    with Leveret(env=env) as broker:
        async def scenario() -> bool:
            r, w = await hostile._open(broker.port)
            await hostile._handshake(r, w, 1)                 # heartbeat 1 s
            w.write(queue_declare(1, "noread") + basic_qos(1, 0) + basic_consume(1, "noread", tag="x"))
            local_port = w.get_extra_info("sockname")[1]
            pub = await AsyncConn.open("127.0.0.1", broker.port)
            for _ in range(8000):                             # ~8 MB: more than the broker buffers
                pub.writer.write(basic_publish(1, "", "noread", b"x" * 1024))
            await pub.writer.drain()
            deadline = time.monotonic() + 30                  # 2 heartbeats + slack, bounded
            while _established(local_port) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)                      # never read, never write
            gone = not _established(local_port)
            w.transport.abort()
            await pub.aclose()
            return gone

        assert asyncio.run(scenario())
