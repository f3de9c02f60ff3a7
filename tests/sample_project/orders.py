"""A small order service, the kind of code the fixtures are for.

``OrderDesk`` (synchronous, pika) publishes ``order.placed`` to the ``shop`` topic exchange;
``Warehouse`` (asyncio, aio-pika) consumes ``warehouse.orders``, publishes ``order.shipped`` for
each order it can ship and rejects the others, which the queue dead-letters to
``warehouse.failed``. Nothing here knows about tests: it takes a broker URL.
"""
from __future__ import annotations

import json

import aio_pika
import pika

EXCHANGE = "shop"
ORDERS = "warehouse.orders"
FAILED = "warehouse.failed"


def declare(channel) -> None:
    """The topology, with pika (the warehouse declares the same with aio-pika)."""
    channel.exchange_declare(EXCHANGE, "topic", durable=True)
    channel.queue_declare(FAILED, durable=True)
    channel.queue_declare(ORDERS, durable=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": FAILED})
    channel.queue_bind(ORDERS, EXCHANGE, "order.placed")


class OrderDesk:
    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        declare(self.channel)
        self.channel.confirm_delivery()

    def place(self, order_id: str, items: dict[str, int]) -> None:
        self.channel.basic_publish(
            EXCHANGE, "order.placed", json.dumps({"id": order_id, "items": items}).encode(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=order_id),
            mandatory=True)

    def close(self) -> None:
        self.connection.close()


class Warehouse:
    def __init__(self, url: str, stock: dict[str, int]) -> None:
        self.url = url
        self.stock = dict(stock)
        self.shipped: list[str] = []

    async def run(self, count: int) -> None:
        """Handle ``count`` orders, then return."""
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1)
            exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            await channel.declare_queue(FAILED, durable=True)
            queue = await channel.declare_queue(ORDERS, durable=True, arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": FAILED})
            await queue.bind(exchange, "order.placed")
            handled = 0
            async with queue.iterator() as messages:
                async for message in messages:
                    order = json.loads(message.body)
                    if all(self.stock.get(item, 0) >= n for item, n in order["items"].items()):
                        for item, n in order["items"].items():
                            self.stock[item] -= n
                        await exchange.publish(aio_pika.Message(
                            json.dumps({"id": order["id"]}).encode(), content_type="application/json"),
                            routing_key="order.shipped")
                        await message.ack()
                        self.shipped.append(order["id"])
                    else:
                        await message.reject(requeue=False)     # dead-lettered to FAILED
                    handled += 1
                    if handled == count:
                        break
