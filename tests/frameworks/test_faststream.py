"""FastStream (RabbitBroker on aio-pika) with a real ``faststream run`` worker process:
a subscriber/publisher pipeline, a topic-exchange subscriber, and request/reply (FastStream's
``broker.request`` consumes from RabbitMQ's direct reply-to pseudo-queue
``amq.rabbitmq.reply-to``; the worker publishes the handler's return value to the request's
``reply_to`` with its correlation id)."""
from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange

TIMEOUT = 20  # a safety net for each wait, not a speed assertion


@pytest.fixture(scope="module")
def setup(fw_vhost, workers):
    prefix = f"fw.{uuid.uuid4().hex[:6]}."
    worker = workers(["faststream", "run", "faststream_app:app"],
                     {"LEVERET_FW_URL": fw_vhost, "LEVERET_FW_PREFIX": prefix}, name="faststream")
    worker.expect("started successfully", timeout=60)
    return {"prefix": prefix, "url": fw_vhost}


@pytest.fixture
async def out_queue(setup):
    """The pipeline's last queue, declared by the test (publishers do not declare queues)."""
    connection = await aio_pika.connect(setup["url"])
    channel = await connection.channel()
    queue = await channel.declare_queue(f"{setup['prefix']}out")
    yield queue
    await connection.close()


async def next_message(queue) -> aio_pika.abc.AbstractIncomingMessage:
    async with asyncio.timeout(TIMEOUT):
        async with queue.iterator() as it:
            async for message in it:
                await message.ack()
                return message


async def test_pipeline_through_two_stages(setup, out_queue):
    async with RabbitBroker(setup["url"]) as broker:
        await broker.publish({"items": [1, 2, 3]}, queue=f"{setup['prefix']}in",
                             correlation_id="pipe-1")
    message = await next_message(out_queue)
    assert json.loads(message.body) == {"items": [1, 2, 3], "stages": ["parse", "enrich"], "total": 6}
    assert message.correlation_id == "pipe-1"
    assert message.content_type == "application/json"


async def test_topic_exchange_subscriber(setup, out_queue):
    exchange = RabbitExchange(f"{setup['prefix']}events", type=ExchangeType.TOPIC)
    async with RabbitBroker(setup["url"]) as broker:
        await broker.publish({"id": "u1"}, exchange=exchange, routing_key="user.created")
        await broker.publish({"id": "o1"}, exchange=exchange, routing_key="order.created")
    message = await next_message(out_queue)
    assert json.loads(message.body) == {"id": "o1", "stages": ["order-event"]}
    assert await out_queue.get(fail=False) is None  # the user event matched no binding


async def test_request_reply(setup):
    async with RabbitBroker(setup["url"]) as broker:
        replies = [await broker.request({"n": n}, queue=f"{setup['prefix']}rpc", timeout=TIMEOUT)
                   for n in (3, 12)]
        assert [await r.decode() for r in replies] == [{"square": 9}, {"square": 144}]
