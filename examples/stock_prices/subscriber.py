#!/usr/bin/env python
"""Subscribe to price ticks by routing-key pattern: ``stock.<market>.<symbol>``.

Declares the 'prices' topic exchange (durable) and a server-named, exclusive queue bound with
each PATTERN (``*`` is one word, ``#`` any number), and prints every tick:

  [x] nasdaq.AAPL 190.85 (#3, key stock.nasdaq.AAPL)

Usage: subscriber.py [--url URL] [--prefix P] [--max-messages N] [--timeout S] PATTERN [PATTERN ...]
e.g.   subscriber.py 'stock.nasdaq.*'            subscriber.py 'stock.*.IBM' 'stock.xetra.#'
"""
import argparse
import json
import os
import sys

import pika


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--max-messages", type=int, default=None, help="exit after this many ticks")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    parser.add_argument("patterns", nargs="+", metavar="PATTERN")
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    exchange = args.prefix + "prices"
    channel.exchange_declare(exchange, "topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    for pattern in args.patterns:
        channel.queue_bind(queue, exchange, routing_key=pattern)
    received = 0

    def on_tick(ch, method, properties, body):
        nonlocal received
        tick = json.loads(body)
        print(f" [x] {tick['market']}.{tick['symbol']} {tick['price']:.2f} (#{tick['seq']}, "
              f"key {method.routing_key})", flush=True)
        received += 1
        if args.max_messages is not None and received >= args.max_messages:
            ch.stop_consuming()

    channel.basic_consume(queue, on_tick, auto_ack=True)
    print(f" [*] Waiting for ticks matching {' '.join(args.patterns)} on {exchange}", flush=True)
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
