"""Publisher flow control: a queue that is being drained slowly slows its publishers down
instead of growing without bound; a queue nobody drains never blocks them (RabbitMQ accepts);
a connection that consumes is never held (its acks are what drains the queue)."""
from __future__ import annotations

import asyncio

import aio_pika
import pytest
from pamqp import body as B
from pamqp import commands as C
from pamqp import frame as F
from pamqp import header as H

from leveret import Broker, Settings

pytestmark = pytest.mark.leveret_only


async def raw_publisher(port: int, queue: str, count: int, size: int = 100):
    """A publish-only connection writing ``count`` messages as fast as the socket takes them."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"AMQP\x00\x00\x09\x01")
    await r.read(4096)
    w.write(F.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                           response="\0guest\0guest"), 0))
    await r.read(4096)
    w.write(F.marshal(C.Connection.TuneOk(channel_max=10, frame_max=131072, heartbeat=0), 0))
    w.write(F.marshal(C.Connection.Open(virtual_host="/"), 0))
    w.write(F.marshal(C.Channel.Open(), 1))
    body = b"x" * size
    one = (F.marshal(C.Basic.Publish(exchange="", routing_key=queue), 1)
           + F.marshal(H.ContentHeader(0, len(body), C.Basic.Properties()), 1)
           + F.marshal(B.ContentBody(body), 1))
    for i in range(0, count, 500):
        w.write(one * min(500, count - i))
        await w.drain()
    return r, w


async def test_slowly_drained_queue_slows_the_publisher():
    """With a consumer taking ~2k msg/s, a 60k-message flood never builds a backlog of 60k."""
    async with Broker(Settings(port=0)) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=20)
        q = await ch.declare_queue("", exclusive=True)
        received = 0

        async def on_msg(m):
            nonlocal received
            received += 1
            if received % 20 == 0:
                await asyncio.sleep(0.01)      # a slow worker
            await m.ack()
        await q.consume(on_msg)
        queue = broker.vhosts["/"].queues[q.name]
        pub = asyncio.ensure_future(raw_publisher(broker.port, q.name, 60_000))
        peak = 0
        for _ in range(40):                     # 2 s of observation
            await asyncio.sleep(0.05)
            peak = max(peak, len(queue.ready))
        assert received > 0
        assert peak < 10_000, peak              # held back (without flow control: ~60k)
        assert peak > 1000                      # (the flood did reach the queue)
        pub.cancel()
        await conn.close()


async def test_undrained_queue_never_blocks_publishers():
    """No consumer (or a stuck one): every published message is accepted, as in RabbitMQ."""
    async with Broker(Settings(port=0)) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=5)
        q = await ch.declare_queue("", exclusive=True)
        async def never_ack(m):
            pass
        await q.consume(never_ack)              # takes 5, never acks
        queue = broker.vhosts["/"].queues[q.name]
        _, w = await asyncio.wait_for(raw_publisher(broker.port, q.name, 30_000), 20)
        for _ in range(100):
            if len(queue.ready) == 30_000 - 5:
                break
            await asyncio.sleep(0.05)
        assert len(queue.ready) == 30_000 - 5
        w.close()
        await conn.close()


async def test_connection_that_consumes_is_never_held():
    """Publishing and consuming with manual acks on one connection cannot deadlock."""
    async with Broker(Settings(port=0)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            pch = await conn.channel()
            cch = await conn.channel()
            await cch.set_qos(prefetch_count=10)
            q = await cch.declare_queue("", exclusive=True)
            done = asyncio.Event()
            got = 0

            async def on_msg(m):
                nonlocal got
                got += 1
                await m.ack()
                if got == 5_000:
                    done.set()
            await q.consume(on_msg)
            msg = aio_pika.Message(b"y" * 100)
            for _ in range(5_000):
                await pch.default_exchange.publish(msg, routing_key=q.name, mandatory=False)
            await asyncio.wait_for(done.wait(), 60)
            assert got == 5_000
