#!/usr/bin/env python
"""Schedule reminders: publish them now, have the broker deliver them later.

Each reminder ``DELAY_MS:TEXT`` is published to the 'reminders' exchange, of type
``x-delayed-message`` (``x-delayed-type: direct``), with the header ``x-delay: DELAY_MS``.
The exchange holds the message for that long, then routes it like a direct exchange would.
A ``due-at-ms`` header (epoch milliseconds) lets the notifier report how late it arrived.

Usage: scheduler.py [--url URL] [--prefix P] [--key reminder] 1500:"stand up" 300:"drink water"
       (URL defaults to $AMQP_URL, P to $EXAMPLE_PREFIX)
"""
import argparse
import datetime
import os
import sys
import time
import uuid

import pika
from pika.exceptions import ConnectionClosedByBroker

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def declare_exchange(channel, name):
    """The delayed exchange; both programs declare it with the same arguments."""
    channel.exchange_declare(name, exchange_type="x-delayed-message", durable=True,
                             arguments={"x-delayed-type": "direct"})


def parse_reminder(spec):
    delay, sep, text = spec.partition(":")
    try:
        delay_ms = int(delay)
    except ValueError:
        delay_ms = -1
    if not sep or delay_ms < 0:
        raise argparse.ArgumentTypeError(f"expected DELAY_MS:TEXT with DELAY_MS >= 0, got {spec!r}")
    return delay_ms, text


def clock(epoch_ms):
    return datetime.datetime.fromtimestamp(epoch_ms / 1000).strftime("%H:%M:%S.%f")[:-3]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--key", default="reminder", help="routing key (default: %(default)s)")
    parser.add_argument("reminders", nargs="+", type=parse_reminder, metavar="DELAY_MS:TEXT")
    args = parser.parse_args()

    exchange = args.prefix + "reminders"
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    try:
        declare_exchange(channel, exchange)
    except ConnectionClosedByBroker as exc:
        print(f" [!] cannot declare {exchange!r}: {exc.reply_text} (on RabbitMQ: "
              "rabbitmq-plugins enable rabbitmq_delayed_message_exchange)", file=sys.stderr)
        return 2
    # Publisher confirms: once basic_publish returns, the broker has taken the reminder.
    # (No mandatory flag: the delayed exchange routes only when the delay is over, so it
    # cannot tell at publish time whether a queue will get the message.)
    channel.confirm_delivery()

    for delay_ms, text in args.reminders:
        due_ms = int(time.time() * 1000) + delay_ms
        channel.basic_publish(
            exchange=exchange,
            routing_key=args.key,
            body=text.encode(),
            properties=pika.BasicProperties(
                content_type="text/plain",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=str(uuid.uuid4()),
                headers={"x-delay": delay_ms, "due-at-ms": due_ms},
            ),
        )
        print(f" [x] Scheduled {text!r} in {delay_ms} ms (due {clock(due_ms)})", flush=True)

    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
