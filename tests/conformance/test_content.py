"""Message bodies of every size cross the broker intact: empty, one frame, many frames
(split at frame_max on the way in and out), with a small negotiated frame_max too."""
from __future__ import annotations

import hashlib

import aio_pika
import pika
import pytest

SIZES = [0, 1, 4087, 4088, 4089, 131064, 131065, 1_000_003]


@pytest.mark.parametrize("frame_max", [131072, 4096])
def test_bodies_of_every_size_round_trip(broker_url, frame_max):
    """Empty, frame-boundary and multi-frame bodies arrive byte for byte, in order (pika)."""
    params = pika.URLParameters(broker_url)
    params.frame_max = frame_max
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        bodies = [bytes((i * 7 + n) % 256 for i in range(n)) for n in SIZES]
        for b in bodies:
            ch.basic_publish("", q, b)
        got = []
        for _ in bodies:
            m, _, body = ch.basic_get(q, auto_ack=True)
            assert m is not None
            got.append(body)
        assert [hashlib.sha1(b).hexdigest() for b in got] == [hashlib.sha1(b).hexdigest() for b in bodies]
    finally:
        conn.close()


async def test_large_body_delivered_to_consumer(broker_url):
    """A 5 MB message is delivered to a consumer intact (aio-pika)."""
    body = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    async with await aio_pika.connect(broker_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(body), routing_key=q.name)
        async with q.iterator() as it:
            async for m in it:
                async with m.process():
                    assert m.body == body
                break
