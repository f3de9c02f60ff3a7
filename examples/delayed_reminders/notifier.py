#!/usr/bin/env python
"""Print reminders when the delayed exchange releases them, with their lateness.

Declares the 'reminders' x-delayed-message exchange, a durable 'reminders' queue bound to it
with the routing key, and consumes that queue. For every reminder it prints its due time
(the scheduler's ``due-at-ms`` header) and how many milliseconds after it the reminder arrived:

  [!] Reminder 'drink water' due 12:00:00.300, lateness +4 ms

Usage: notifier.py [--url URL] [--prefix P] [--key reminder] [--max-messages N] [--timeout S]
"""
import argparse
import os
import sys
import time

import pika
from pika.exceptions import ConnectionClosedByBroker

from scheduler import DEFAULT_URL, clock, declare_exchange


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--key", default="reminder", help="routing key (default: %(default)s)")
    parser.add_argument("--max-messages", type=int, default=None,
                        help="exit after this many reminders (default: run forever)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="exit after this many seconds (default: run forever)")
    args = parser.parse_args()

    exchange = queue = args.prefix + "reminders"
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    try:
        declare_exchange(channel, exchange)
    except ConnectionClosedByBroker as exc:
        print(f" [!] cannot declare {exchange!r}: {exc.reply_text} (on RabbitMQ: "
              "rabbitmq-plugins enable rabbitmq_delayed_message_exchange)", file=sys.stderr)
        return 2
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange, routing_key=args.key)
    received = 0

    def on_reminder(ch, method, properties, body):
        nonlocal received
        now_ms = int(time.time() * 1000)
        due_ms = (properties.headers or {}).get("due-at-ms")
        if due_ms is None:
            when = "no due time"
        else:
            when = f"due {clock(int(due_ms))}, lateness {now_ms - int(due_ms):+d} ms"
        print(f" [!] Reminder {body.decode(errors='replace')!r} {when}", flush=True)
        ch.basic_ack(method.delivery_tag)
        received += 1
        if args.max_messages is not None and received >= args.max_messages:
            ch.stop_consuming()

    channel.basic_consume(queue, on_reminder)
    print(f" [*] Waiting for reminders on {queue}", flush=True)
    if args.timeout is not None:
        connection.call_later(args.timeout, channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
