#!/usr/bin/env python
"""The order service: an HTTP API that places orders as events and follows them to the end.

* ``POST /orders`` with JSON ``{"item": "widget", "qty": 2, "email": "alice@example.com"}``
  answers 202 ``{"order": "o-1", "status": "placed"}`` once the 'order.placed' event is confirmed
  by the broker (400 with ``{"error": ...}`` for a bad order).
* ``GET /orders/o-1`` answers ``{"order": "o-1", "status": "placed" | "confirmed" | "rejected",
  "reason"?, "notified": true | false, ...}``; ``GET /orders`` lists them all.

The service learns what happened from events, through its queue 'orders.updates' bound to
'stock.reserved', 'stock.rejected' and 'notification.sent'; it never calls the other services.
It reports ``placed`` (1 per order) to the metrics exchange. Orders live in memory (aio-pika,
aiohttp).

Usage: orders.py [--url URL] [--prefix P] [--host 127.0.0.1] [--port 8081] [--timeout S]
"""
import argparse
import asyncio
import itertools
import json
import sys

import aio_pika
from aiohttp import web

from shop import EXCHANGE, METRICS, add_options, metric


class Orders:
    def __init__(self, exchange: aio_pika.abc.AbstractExchange, metrics: aio_pika.abc.AbstractExchange):
        self.exchange, self.metrics = exchange, metrics
        self.orders: dict[str, dict] = {}
        self.ids = (f"o-{n}" for n in itertools.count(1))

    async def place(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            item, qty, email = body["item"], body["qty"], body["email"]
            if not (isinstance(item, str) and item and isinstance(qty, int) and qty > 0
                    and isinstance(email, str) and "@" in email):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"item": str, "qty": int > 0, "email": str}'},
                                     status=400)
        order_id = next(self.ids)
        event = {"order": order_id, "item": item, "qty": qty, "email": email}
        self.orders[order_id] = {**event, "status": "placed", "notified": False}
        # publisher confirms (aio-pika's default): 202 only once the broker has the event
        await self.exchange.publish(aio_pika.Message(json.dumps(event).encode(), content_type="application/json",
                                                     message_id=order_id,
                                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                    routing_key="order.placed")
        key, sample = metric("orders", "placed", 1)
        await self.metrics.publish(aio_pika.Message(sample, content_type="application/json"), routing_key=key)
        print(f" [x] {order_id}: {qty} x {item} for {email} placed", flush=True)
        return web.json_response({"order": order_id, "status": "placed"}, status=202)

    async def show(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order"])
        if order is None:
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response(order)

    async def list(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.orders.values()))

    async def on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):  # acked at the end, rejected if this raises
            try:
                event = json.loads(message.body)
                event.get("order")
            except (ValueError, AttributeError):
                print(f" [!] orders: ignored {message.body[:60]!r} (not a JSON object)", flush=True)
                return
            order = self.orders.get(event.get("order"))
            if order is None:
                return  # not one of ours (another orders instance, or from before a restart)
            if message.routing_key == "stock.reserved":
                order["status"] = "confirmed"
            elif message.routing_key == "stock.rejected":
                order.update(status="rejected", reason=event.get("reason"))
            elif message.routing_key == "notification.sent":
                order["notified"] = True
            print(f" [.] {order['order']}: {message.routing_key} -> {order['status']}", flush=True)


async def run(args) -> None:
    connection = await aio_pika.connect_robust(args.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(args.prefix + EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        metrics = await channel.declare_exchange(args.prefix + METRICS, aio_pika.ExchangeType.TOPIC, durable=True)
        orders = Orders(exchange, metrics)
        queue = await channel.declare_queue(args.prefix + "orders.updates", durable=True)
        for key in ("stock.reserved", "stock.rejected", "notification.sent"):
            await queue.bind(exchange, key)
        await queue.consume(orders.on_event)
        app = web.Application()
        app.add_routes([web.post("/orders", orders.place), web.get("/orders", orders.list),
                        web.get("/orders/{order}", orders.show)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        print(f" [*] orders API on http://{args.host}:{runner.addresses[0][1]}/orders "
              f"(events on {exchange.name})", flush=True)
        try:
            await asyncio.sleep(args.timeout if args.timeout is not None else float("inf"))
        finally:
            await runner.cleanup()


def main() -> int:
    parser = add_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="HTTP port (0: any free port)")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
