#!/usr/bin/env python
"""List the dead-lettered invoice jobs, or replay them into the work queue.

Listing takes every message of ``invoices.dead`` without acking it and prints why and when it
died (from the ``x-death`` header the broker added), then closes the channel: the broker puts
the unacked messages back, so listing changes nothing.

  [dead] INV-003: rejected from invoices (count 1, at 2026-01-01 12:00:00+00:00): {"invoice_no": ...

``--replay`` (after fixing what made the jobs fail, e.g. restarting the renderer with another
``--currencies``) republishes each one to ``invoices`` with publisher confirms, then acks it.

Usage: dead_letters.py [--url URL] [--prefix P] [--replay]
"""
import sys

import pika

from common import declare, parser


def describe(properties) -> str:
    deaths = (properties.headers or {}).get("x-death") or []
    if not deaths:
        return "no x-death header"
    last = deaths[0]  # most recent first
    return f"{last.get('reason')} from {last.get('queue')} (count {last.get('count')}, at {last.get('time')})"


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--replay", action="store_true", help="move every dead letter back to the work queue")
    args = p.parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    jobs, dead = declare(channel, args.prefix)
    if args.replay:
        channel.confirm_delivery()
    count = channel.queue_declare(dead, passive=True).method.message_count
    for _ in range(count):
        method, properties, body = channel.basic_get(dead, auto_ack=False)
        if method is None:
            break
        name = properties.message_id or "?"
        print(f" [dead] {name}: {describe(properties)}: {body[:60].decode(errors='replace')}", flush=True)
        if args.replay:
            # Keep the headers: x-death then shows the job's whole history if it dies again.
            channel.basic_publish("", jobs, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            print(f" [>] {name}: replayed to {jobs}", flush=True)
    print(f" [=] {count} dead letter(s) in {dead}" + (", replayed" if args.replay and count else ""), flush=True)
    connection.close()  # unacked (listed) messages go back to the queue
    return 0


if __name__ == "__main__":
    sys.exit(main())
