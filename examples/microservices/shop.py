"""Names and message formats shared by the shop's services (orders.py, inventory.py, notifier.py).

Every service publishes its events to the durable topic exchange 'shop' and consumes them
through its own durable queue, bound with the keys it cares about; no service calls another.
Every service also reports to the 'metrics' exchange of examples/metrics_dashboard, in that
example's format (``metrics.<service>.<metric>``, JSON ``{"service", "metric", "value", "ts"}``),
so its dashboard shows the whole system.

    event (routing key)  published by   body
    order.placed         orders         {"order", "item", "qty", "email"}
    stock.reserved       inventory      {... order.placed ..., "left": <stock after>}
    stock.rejected       inventory      {... order.placed ..., "reason": "..."}
    notification.sent    notifier       {"order", "kind": "confirmed" | "rejected", "file": "<outbox file>"}

``AMQP_URL`` / ``--url`` is the broker, ``EXAMPLE_PREFIX`` / ``--prefix`` is prepended to every
exchange and queue name.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
EXCHANGE = "shop"
METRICS = "metrics"


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL), help="broker URL")
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""), help="name prefix")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    return parser


def metric(service: str, name: str, value: float) -> tuple[str, bytes]:
    """(routing key, body) of a metrics sample in examples/metrics_dashboard's format."""
    body = {"service": service, "metric": name, "value": value, "ts": time.time()}
    return f"metrics.{service}.{name}", json.dumps(body).encode()


class Service:
    """A pika-based service: a channel with confirms, the two exchanges, its own queue."""

    def __init__(self, args, name: str, queue: str, keys: tuple[str, ...]):
        self.name = name
        self.exchange, self.metrics = args.prefix + EXCHANGE, args.prefix + METRICS
        self.queue = args.prefix + queue
        self.connection = pika.BlockingConnection(pika.URLParameters(args.url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(self.exchange, "topic", durable=True)
        self.channel.exchange_declare(self.metrics, "topic", durable=True)
        self.channel.queue_declare(self.queue, durable=True)
        for key in keys:
            self.channel.queue_bind(self.queue, self.exchange, key)
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=10)
        if args.timeout is not None:
            self.connection.call_later(args.timeout, self.channel.stop_consuming)

    def emit(self, key: str, event: dict, message_id: str) -> None:
        self.channel.basic_publish(self.exchange, key, json.dumps(event), pika.BasicProperties(
            content_type="application/json", message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent))

    def report(self, name: str, value: float) -> None:
        key, body = metric(self.name, name, value)
        self.channel.basic_publish(self.metrics, key, body, pika.BasicProperties(content_type="application/json"))

    def run(self, handler) -> None:
        """Consume the queue: ``handler(key, event)``; a message that is not a JSON object is rejected."""
        def on_message(ch, method, properties, body):
            try:
                event = json.loads(body)
                if not isinstance(event, dict):
                    raise TypeError("not a JSON object")
            except (ValueError, TypeError) as exc:
                print(f" [!] {self.name}: rejected {body[:60]!r} ({exc})", flush=True)
                ch.basic_reject(method.delivery_tag, requeue=False)
                return
            handler(method.routing_key, event)
            ch.basic_ack(method.delivery_tag)

        self.channel.basic_consume(self.queue, on_message)
        print(f" [*] {self.name} waiting for events on {self.queue}", flush=True)
        try:
            self.channel.start_consuming()
        except KeyboardInterrupt:  # Ctrl-C: stop quietly
            pass
        self.connection.close()
