#!/usr/bin/env python
"""A service that reports metrics: one message per sample to the 'metrics' topic exchange.

Each sample is a persistent JSON message ``{"service": "api", "metric": "latency_ms",
"value": 12.5, "ts": 1712345678.9}`` with routing key ``metrics.<service>.<metric>``,
published with publisher confirms. ``--metric NAME=V1,V2,...`` gives the samples; with
``--interval`` they are sent that many seconds apart (interleaved across metrics).

Usage: service.py [--url URL] [--prefix P] --service api --metric latency_ms=12,15 [--metric ...]
                  [--interval 0]
"""
import argparse
import itertools
import json
import os
import sys
import time

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
EXCHANGE = "metrics"


def declare_exchange(channel, prefix: str) -> str:
    """The durable topic exchange metrics go to (dashboard.py declares the same)."""
    name = prefix + EXCHANGE
    channel.exchange_declare(name, "topic", durable=True)
    return name


def parse_metric(spec: str) -> tuple[str, list[float]]:
    name, sep, values = spec.partition("=")
    if not sep or not name or "." in name:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... (NAME without dots): {spec!r}")
    try:
        return name, [float(v) for v in values.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"values must be numbers: {spec!r}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--service", required=True, help="the reporting service's name (no dots)")
    parser.add_argument("--metric", action="append", type=parse_metric, required=True, metavar="NAME=V1,V2")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between samples")
    args = parser.parse_args()
    if "." in args.service:
        parser.error("--service must not contain dots (it is one word of the routing key)")

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    exchange = declare_exchange(channel, args.prefix)
    channel.confirm_delivery()
    samples = [(name, v) for round_ in itertools.zip_longest(
        *[[(name, v) for v in values] for name, values in args.metric]) for name, v in filter(None, round_)]
    for i, (name, value) in enumerate(samples):
        if i and args.interval:
            time.sleep(args.interval)
        body = {"service": args.service, "metric": name, "value": value, "ts": time.time()}
        channel.basic_publish(exchange, f"metrics.{args.service}.{name}", json.dumps(body),
                              pika.BasicProperties(content_type="application/json",
                                                   delivery_mode=pika.DeliveryMode.Persistent))
    print(f" [x] {args.service} sent {len(samples)} samples to {exchange}", flush=True)
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
