#!/usr/bin/env python
"""A notification service (email, SMS or log): its own durable queue bound to the fanout.

Every service declares ``notifications.<kind>`` (durable) and binds it to the
``notifications`` fanout exchange, so each service receives a copy of every notification,
also those sent while it was not running (the queue keeps them). That is the difference from
a subscriber with an exclusive server-named queue (tutorial 3), which misses what was
published while it was away.

The delivery channels are stand-ins writing to ``--outbox`` (default ./outbox):

* email: ``outbox/email.txt``, one line ``To: USER@example.com | Subject: ... | TEXT``
* sms:   ``outbox/sms.txt``, one line ``USER: TEXT`` cut to 160 characters (an SMS)
* log:   ``outbox/log.jsonl``, the notification as received, one JSON object a line

and the message is acked after the line is written. Each delivery prints one line:

  [email] #3 for alice: Your order shipped

Usage: service.py --kind email|sms|log [--url URL] [--prefix P] [--outbox DIR] [--max-messages N] [--timeout S]
"""
import json
import sys
from pathlib import Path

import pika

from common import KINDS, declare_exchange, parser, queue_of

SMS_LIMIT = 160


def render(kind: str, notification: dict) -> str:
    user, text = notification["user"], notification["text"]
    if kind == "email":
        return f"To: {user}@example.com | Subject: {text[:40]} | {text}"
    if kind == "sms":
        line = f"{user}: {text}"
        return line if len(line) <= SMS_LIMIT else line[:SMS_LIMIT - 3] + "..."
    return json.dumps(notification, sort_keys=True)


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--outbox", default="outbox")
    p.add_argument("--max-messages", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None)
    args = p.parse_args()
    outbox = Path(args.outbox)
    outbox.mkdir(parents=True, exist_ok=True)
    target = outbox / ("log.jsonl" if args.kind == "log" else f"{args.kind}.txt")

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    exchange = declare_exchange(channel, args.prefix)
    queue = queue_of(args.prefix, args.kind)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange)   # a fanout ignores the binding key
    channel.basic_qos(prefetch_count=20)
    handled = 0

    def on_message(ch, method, properties, body):
        nonlocal handled
        try:
            notification = json.loads(body)
            line = render(args.kind, notification)
        except (ValueError, KeyError, TypeError) as exc:
            print(f" [{args.kind}] not a notification ({exc!r}): dropped", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        with target.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        ch.basic_ack(method.delivery_tag)
        print(f" [{args.kind}] #{notification.get('id')} for {notification['user']}: {notification['text']}",
              flush=True)
        handled += 1
        if args.max_messages is not None and handled >= args.max_messages:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    print(f" [*] {args.kind} service: Waiting for notifications on {queue} -> {target}", flush=True)
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
