#!/usr/bin/env python
"""Process requests from 'api.requests' at no more than --rate per second; delay the rest.

A token bucket (``--rate`` tokens a second, at most ``--burst`` saved up) decides. A request
that finds a token is processed and acked. One that finds none is republished, with its
``x-retries`` header one higher, to 'api.requests.delay', whose ``x-message-ttl`` holds it for
``--retry-delay-ms`` before the broker dead-letters it back to 'api.requests'; after
``--max-retries`` such trips it is rejected and dead-lettered into 'api.requests.rejected'.
The limiter never sleeps and never holds a message while it waits: the broker keeps the
waiting requests.

One line per decision (``t`` is milliseconds since the limiter started, on its own clock):

  [>] req-1 processed (retries 0, expired 0x in api.requests.delay, t=3)
  [~] req-9 over the rate -> api.requests.delay for 250 ms (retry 1)
  [!] req-12 over the rate after 5 retries -> rejected into api.requests.rejected

Usage: limiter.py [--url URL] [--prefix P] [--rate 10] [--burst 5] [--retry-delay-ms 250]
                  [--max-retries 5] [--max-requests N] [--timeout S]
"""
import argparse
import json
import sys
import time

import pika

from topology import Topology, add_connection_options


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` of them saved; starts full."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def main() -> int:
    parser = add_connection_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    parser.add_argument("--burst", type=int, default=5, help="bucket size (default 5)")
    parser.add_argument("--retry-delay-ms", type=int, default=250, help="TTL of the delay queue (default 250)")
    parser.add_argument("--max-retries", type=int, default=5, help="trips through the delay queue before rejecting")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="exit after this many requests were processed or rejected")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    args = parser.parse_args()
    try:
        bucket = TokenBucket(args.rate, args.burst)
    except ValueError as exc:
        parser.error(str(exc))

    topology = Topology(args.prefix, args.retry_delay_ms)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    topology.declare(channel)
    channel.confirm_delivery()           # the delayed copy is confirmed before the original is acked
    channel.basic_qos(prefetch_count=50)
    started = time.monotonic()
    finished = 0

    def finish_one(ch) -> None:
        nonlocal finished
        finished += 1
        if args.max_requests is not None and finished >= args.max_requests:
            ch.stop_consuming()

    def on_request(ch, method, properties, body):
        headers = dict(properties.headers or {})
        retries = int(headers.get("x-retries", 0))
        try:
            request_id = json.loads(body)["id"]
        except (ValueError, KeyError, TypeError):
            print(f" [!] unreadable request {body[:60]!r} -> rejected into {topology.rejected}", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            finish_one(ch)
            return
        if bucket.take():
            t = int((time.monotonic() - started) * 1000)
            print(f" [>] {request_id} processed (retries {retries}, expired "
                  f"{topology.expired_in_delay(headers)}x in {topology.delay}, t={t})", flush=True)
            ch.basic_ack(method.delivery_tag)
            finish_one(ch)
        elif retries >= args.max_retries:
            print(f" [!] {request_id} over the rate after {retries} retries -> rejected into "
                  f"{topology.rejected}", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            finish_one(ch)
        else:
            headers["x-retries"] = retries + 1
            properties.headers = headers
            ch.basic_publish("", topology.delay, body, properties, mandatory=True)
            ch.basic_ack(method.delivery_tag)
            print(f" [~] {request_id} over the rate -> {topology.delay} for {args.retry_delay_ms} ms "
                  f"(retry {retries + 1})", flush=True)

    channel.basic_consume(topology.requests, on_request)
    print(f" [*] Waiting for requests on {topology.requests} (rate {args.rate:g}/s, burst {args.burst}, "
          f"retry delay {args.retry_delay_ms} ms, max retries {args.max_retries})", flush=True)
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
