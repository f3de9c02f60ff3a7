"""`--rabbitmq4` / Settings(ignore_global_qos, refuse_transient_queues, last_death_headers,
exchange_type_precondition): RabbitMQ 4.x defaults."""
from __future__ import annotations

import asyncio

import pytest

from leveret import Broker, Settings
from leveret.settings import RABBITMQ4

pytestmark = pytest.mark.leveret_only


@pytest.fixture
async def broker4():
    async with Broker(Settings(port=0, **RABBITMQ4)) as b:
        yield b


def _url(b):
    return f"amqp://guest:guest@127.0.0.1:{b.port}/%2F"


async def test_transient_non_exclusive_queue_refused_with_541(broker4):
    """4.x denies transient non-exclusive classic queues: connection.close 541 INTERNAL_ERROR."""
    import aio_pika
    conn = await aio_pika.connect(_url(broker4))
    ch = await conn.channel()
    import aiormq
    with pytest.raises(aiormq.exceptions.ConnectionInternalError) as ei:   # aiormq's class for 541
        await ch.declare_queue("transient-q", durable=False)
    text = ei.value.args[0]
    assert text.startswith("INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.")
    assert len(text.encode()) <= 255


async def test_durable_and_exclusive_queues_still_allowed(broker4):
    """Durable queues and exclusive transient queues are not affected by the 4.x switch."""
    import aio_pika
    async with await aio_pika.connect(_url(broker4)) as conn:
        ch = await conn.channel()
        q1 = await ch.declare_queue("durable-q", durable=True)
        q2 = await ch.declare_queue("", exclusive=True)
        assert q2.name.startswith("amq.gen-")
        await q1.delete()


async def test_global_qos_ignored(broker4):
    """4.x ignores basic.qos(global=True): a channel-wide limit of 1 does not hold deliveries back."""
    import aio_pika
    async with await aio_pika.connect(_url(broker4)) as conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1, global_=True)
        q = await ch.declare_queue("", exclusive=True)
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=q.name)
        got = []
        async with q.iterator() as it:
            async for m in it:
                got.append(m.body)       # never acked
                if len(got) == 5:
                    break
        assert got == [b"0", b"1", b"2", b"3", b"4"]


async def test_default_mode_keeps_313_behaviour():
    """Without the switch, global qos limits the channel and transient queues are accepted."""
    import asyncio

    import aio_pika
    async with Broker(Settings(port=0)) as b:
        async with await aio_pika.connect(_url(b)) as conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1, global_=True)
            q = await ch.declare_queue("transient-ok", durable=False)
            for i in range(3):
                await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=q.name)
            got = []

            async def on_msg(m):
                got.append(m.body)
            await q.consume(on_msg)
            await asyncio.sleep(0.3)
            assert got == [b"0"]


async def test_dead_letters_carry_x_last_death_headers(broker4):
    """3.13+ (so 4.x) sets x-last-death-{reason,queue,exchange} on every dead-lettering; the
    default (3.10) mode does not (tests/conformance/test_dead_letter.py)."""
    import aio_pika
    async with await aio_pika.connect(_url(broker4)) as conn:
        ch = await conn.channel()
        sink = await ch.declare_queue("", exclusive=True)
        q = await ch.declare_queue("", exclusive=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink.name})
        await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q.name)
        m = await q.get(timeout=5)
        await m.reject(requeue=False)
        for _ in range(100):
            d = await sink.get(fail=False)
            if d is not None:
                break
            await asyncio.sleep(0.05)
        assert d is not None
        assert {k: v for k, v in d.headers.items() if k.startswith("x-last-death-")} == {
            "x-last-death-reason": "rejected", "x-last-death-queue": q.name, "x-last-death-exchange": ""}


async def test_unknown_exchange_type_closes_only_the_channel(broker4):
    """Since rabbitmq-server#11214 (3.12.x, 3.13.x, 4.x) an unknown exchange type is a channel's
    406 PRECONDITION_FAILED; the connection and its other channels go on. (3.10: 503 closing the
    connection, tests/conformance/test_connection.py.)"""
    import aio_pika
    import aiormq
    async with await aio_pika.connect(_url(broker4)) as conn:
        bad, good = await conn.channel(), await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as ei:
            await bad.declare_exchange("x-bogus-type", type="bogus")
        assert ei.value.args[0] == "PRECONDITION_FAILED - unknown exchange type 'bogus'"
        q = await good.declare_queue("", exclusive=True)
        await good.default_exchange.publish(aio_pika.Message(b"still here"), routing_key=q.name)
        assert (await q.get(timeout=5)).body == b"still here"
