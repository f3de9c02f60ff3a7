#!/usr/bin/env python
"""Publish notifications to the 'notifications' fanout exchange: every service gets each one.

Each argument is ``USER:TEXT``; each notification is a persistent JSON message
``{"id": N, "user": USER, "text": TEXT}`` published with publisher confirms and ``mandatory``.
The publisher knows nothing of the services: a fanout exchange ignores the routing key and
copies the message to every queue bound to it. If no service ever subscribed (no queue is
bound) the broker returns the message and notify.py says so and exits 1.

Usage: notify.py [--url URL] [--prefix P] [--first-id N] USER:TEXT [USER:TEXT ...]
"""
import json
import sys

import pika
import pika.exceptions

from common import declare_exchange, parser


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--first-id", type=int, default=1, help="id of the first notification (default 1)")
    p.add_argument("notifications", nargs="+", metavar="USER:TEXT")
    args = p.parse_args()
    parsed = []
    for arg in args.notifications:
        user, sep, text = arg.partition(":")
        if not sep or not user or not text:
            p.error(f"expected USER:TEXT, got {arg!r}")
        parsed.append((user, text))

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    exchange = declare_exchange(channel, args.prefix)
    channel.confirm_delivery()
    try:
        for number, (user, text) in enumerate(parsed, start=args.first_id):
            body = json.dumps({"id": number, "user": user, "text": text}).encode()
            try:
                channel.basic_publish(exchange, "", body, pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, message_id=str(number)),
                    mandatory=True)
            except pika.exceptions.UnroutableError:
                print(f" [!] #{number} returned: no service is subscribed to {exchange}", flush=True)
                return 1
            print(f" [x] Sent #{number} for {user}: {text}", flush=True)
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
