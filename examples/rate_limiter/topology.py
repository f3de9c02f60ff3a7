"""Queues of the rate limiter, shared by client.py and limiter.py.

    client ──> [api.requests] ──limiter: token available──> process, ack
                  ▲      │ └────no token, retries < max──> republish to [api.requests.delay]
                  │      │                                  with x-retries + 1, ack the original
                  │      │                                  (x-message-ttl: retry delay; nobody consumes)
                  └──────┼──────── TTL runs out: DLX "" / key "api.requests" (reason "expired")
                         └─no token, retries == max──> reject(requeue=False)
                                                        └─ DLX "" / key "api.requests.rejected"

Every queue is durable and all routing goes through the default exchange "". The delay is a
queue-wide ``x-message-ttl`` plus dead-lettering, which RabbitMQ has built in (no plugin);
the retry count travels in the limiter's own ``x-retries`` header (RabbitMQ 4 no longer lets
clients extend ``x-death``), while the broker's ``x-death`` shows every trip through the delay
queue.

``AMQP_URL`` / ``--url`` is the broker (default ``amqp://guest:guest@localhost:5672/%2F``),
``EXAMPLE_PREFIX`` / ``--prefix`` is prepended to every queue name.
"""
from __future__ import annotations

import argparse
import os

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def add_connection_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL), help="broker URL")
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""), help="queue name prefix")
    return parser


class Topology:
    def __init__(self, prefix: str = "", retry_delay_ms: int = 250):
        self.requests = prefix + "api.requests"
        self.delay = prefix + "api.requests.delay"
        self.rejected = prefix + "api.requests.rejected"
        self.retry_delay_ms = retry_delay_ms

    def declare_requests(self, channel) -> None:
        channel.queue_declare(self.requests, durable=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.rejected})

    def declare(self, channel) -> None:
        channel.queue_declare(self.rejected, durable=True)
        self.declare_requests(channel)
        channel.queue_declare(self.delay, durable=True, arguments={
            "x-message-ttl": self.retry_delay_ms,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.requests})

    def expired_in_delay(self, headers: dict) -> int:
        """How often the broker's x-death says this message expired out of the delay queue."""
        return sum(int(d.get("count", 1)) for d in headers.get("x-death") or []
                   if d.get("queue") == self.delay and d.get("reason") == "expired")
