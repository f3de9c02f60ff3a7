"""The topology, event publishing, retries and the consume loop shared by the saga's services.

Events are persistent JSON messages on the durable topic exchange ``shop.events``; the routing
key and the AMQP ``type`` property are the event name (``order.placed``, ``inventory.reserved``,
...). Services dispatch on ``type``, not on the routing key, because a retried message comes
back from its retry queue by the default exchange with the queue's name as routing key.

Retries: a service with a transient failure republishes the message, unchanged but for a
``retries`` header counting the retries, to its retry queue ``<service>.retry``. Nobody
consumes a retry queue: after its ``x-message-ttl`` the broker dead-letters the message (through
the default exchange) back into the service's queue. The count is kept in a header of our own
rather than read from ``x-death``, which RabbitMQ 4 no longer extends for republished messages.

Options every program takes: ``--url`` / ``AMQP_URL`` (default
``amqp://guest:guest@localhost:5672/%2F``), ``--prefix`` / ``EXAMPLE_PREFIX`` (prepended to
every exchange and queue name), ``--timeout S`` for the services.
"""
from __future__ import annotations

import argparse
import json
import os

import pika

EXCHANGE = "shop.events"
RETRY_DELAY_MS = 100
# service queue -> binding keys on shop.events
BINDINGS = {
    "inventory": ("order.placed", "payment.failed", "payment.succeeded"),
    "payment": ("inventory.reserved",),
    "orders": ("#",),  # the order service follows the whole saga
}
RETRYING = ("inventory", "payment")  # services with a retry queue


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    return p


def declare(channel, prefix: str) -> None:
    """Every program declares the whole (small) topology: declarations are idempotent."""
    channel.exchange_declare(prefix + EXCHANGE, "topic", durable=True)
    for service, keys in BINDINGS.items():
        channel.queue_declare(prefix + service, durable=True)
        for key in keys:
            channel.queue_bind(prefix + service, prefix + EXCHANGE, key)
    for service in RETRYING:
        channel.queue_declare(f"{prefix}{service}.retry", durable=True, arguments={
            "x-message-ttl": RETRY_DELAY_MS,
            "x-dead-letter-exchange": "",                  # the default exchange ...
            "x-dead-letter-routing-key": prefix + service,  # ... routes to the service's queue
        })


def publish(channel, prefix: str, event_type: str, event: dict) -> None:
    """Publish one event (the channel is in confirm mode: returns once the broker has it)."""
    channel.basic_publish(prefix + EXCHANGE, event_type, json.dumps(event).encode(), pika.BasicProperties(
        type=event_type, content_type="application/json", delivery_mode=2, message_id=event["order_id"]),
        mandatory=True)


def attempt(properties) -> int:
    return 1 + int((properties.headers or {}).get("retries", 0))


class Service:
    """Consumes ``<prefix><name>`` and calls ``handlers[properties.type](event, properties, body)``.

    The message is acked after the handler returned (so after every event it published was
    confirmed); a handler returning True stops the service. A message that is not JSON or has
    an unknown type is rejected without requeue.
    """

    def __init__(self, args, name: str):
        self.prefix, self.name = args.prefix, name
        self.connection = pika.BlockingConnection(pika.URLParameters(args.url))
        self.channel = self.connection.channel()
        declare(self.channel, self.prefix)
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=1)
        self.timeout = getattr(args, "timeout", None)

    def publish(self, event_type: str, event: dict) -> None:
        publish(self.channel, self.prefix, event_type, event)

    def retry_later(self, properties, body: bytes) -> None:
        """Send the message through this service's retry queue; it is back in RETRY_DELAY_MS."""
        properties.headers = {**(properties.headers or {}), "retries": attempt(properties)}
        self.channel.basic_publish("", f"{self.prefix}{self.name}.retry", body, properties, mandatory=True)

    def run(self, handlers: dict) -> None:
        def on_message(ch, method, properties, body):
            handler = handlers.get(properties.type)
            try:
                event = json.loads(body)
                event["order_id"]
            except (ValueError, KeyError, TypeError):
                handler = None
            if handler is None:
                print(f" [{self.name}] unexpected message (type {properties.type!r}): {body[:60]!r} dropped",
                      flush=True)
                ch.basic_reject(method.delivery_tag, requeue=False)
                return
            stop = handler(event, properties, body)
            ch.basic_ack(method.delivery_tag)
            if stop:
                ch.stop_consuming()

        queue = self.prefix + self.name
        self.channel.basic_consume(queue, on_message)
        print(f" [*] {self.name} service: Waiting for events on {queue}", flush=True)
        if self.timeout is not None:
            self.connection.call_later(self.timeout, self.channel.stop_consuming)
        self.channel.start_consuming()
        self.connection.close()
