#!/usr/bin/env python
"""RPC server: answer fib(n) requests from the 'rpc.fib' queue.

A request's body is n; the reply goes to the default exchange with the request's
``reply_to`` as routing key and its ``correlation_id``. With direct reply-to that
``reply_to`` is a pseudo-queue name ``amq.rabbitmq.reply-to.<opaque>`` that the broker
made up for the client's channel: the server needs to know nothing about it.

The reply body is JSON: {"n": 30, "result": 832040} or {"n": ..., "error": "..."}.

Usage: server.py [--url URL] [--prefix P] [--max-messages N] [--timeout S]
       (URL defaults to $AMQP_URL, P to $EXAMPLE_PREFIX)
"""
import argparse
import json
import os
import sys

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def fib(n):
    # Deliberately the slow, recursive definition: it stands for real work, and makes a
    # big n take long enough for replies to come back out of order.
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def answer(body):
    try:
        n = int(body)
    except ValueError:
        return None, {"error": f"not a number: {body[:40]!r}"}
    if not 0 <= n <= 35:
        return n, {"n": n, "error": "n must be between 0 and 35"}
    return n, {"n": n, "result": fib(n)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--max-messages", type=int, default=None,
                        help="exit after answering this many requests (default: run forever)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="exit after this many seconds (default: run forever)")
    args = parser.parse_args()

    queue = args.prefix + "rpc.fib"
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    handled = 0

    def on_request(ch, method, props, body):
        nonlocal handled
        n, reply = answer(body)
        if props.reply_to:
            print(f" [.] fib({n}) for {props.reply_to} corr {props.correlation_id}", flush=True)
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                properties=pika.BasicProperties(correlation_id=props.correlation_id,
                                                content_type="application/json"),
                body=json.dumps(reply),
            )
        else:
            print(f" [!] request without reply_to dropped (corr {props.correlation_id})", flush=True)
        ch.basic_ack(method.delivery_tag)
        handled += 1
        if args.max_messages is not None and handled >= args.max_messages:
            ch.stop_consuming()

    # One request at a time per server: run several servers to answer in parallel.
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue, on_request)
    print(f" [x] Awaiting RPC requests on {queue}", flush=True)
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
