"""The retry-with-backoff topology, shared by producer.py and worker.py.

    producer ──> [work] ──worker ok──> ack
                   │  └─worker fails, attempt < max──> republish to [work.retry.<k>], ack
                   │                                     (x-message-ttl = base * 2**(k-1))
                   │                                     └─ TTL expires ─> DLX "" / key "work" ─> [work]
                   └─worker fails, attempt == max──> reject(requeue=False)
                                                     └─ DLX "" / key "work.parking" ─> [work.parking]

Every queue is durable; every exchange is the default exchange ("").  The attempt number is
read from the x-death header that the broker maintains: each expiry out of a retry queue adds
one to that queue's x-death ``count``, so attempt = 1 + sum of those counts.

Configuration comes from the command line or the environment:

* ``AMQP_URL`` / ``--url`` - broker URL (default ``amqp://guest:guest@localhost:5672/%2F``)
* ``EXAMPLE_PREFIX`` / ``--prefix`` - prepended to every queue name, so several runs can
  share one broker without colliding (default: no prefix)
"""
from __future__ import annotations

import argparse
import os

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def add_connection_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL or %(default)s)")
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""),
                        help="prefix for every queue name (default: $EXAMPLE_PREFIX or none)")
    return parser


class Topology:
    """Names and arguments of the queues; ``declare`` creates them (idempotently)."""

    def __init__(self, prefix: str = "", levels: int = 3, base_delay_ms: int = 100):
        if levels < 1:
            raise ValueError("need at least one retry level")
        self.work = prefix + "work"
        self.parking = prefix + "work.parking"
        self.retry_prefix = prefix + "work.retry."
        self.retry_queues = [f"{self.retry_prefix}{k}" for k in range(1, levels + 1)]
        # Exponential backoff: one queue per delay, because a queue-wide x-message-ttl is the
        # only TTL that never leaves an expired message stuck behind a longer-lived one.
        self.delays_ms = [base_delay_ms * 2 ** (k - 1) for k in range(1, levels + 1)]

    def declare_work(self, channel) -> None:
        """The work queue. Messages rejected from it (without requeue) go to the parking queue."""
        channel.queue_declare(self.work, durable=True, arguments={
            "x-dead-letter-exchange": "",               # "" is the default exchange ...
            "x-dead-letter-routing-key": self.parking,  # ... which routes by queue name
        })

    def declare(self, channel) -> None:
        channel.queue_declare(self.parking, durable=True)
        self.declare_work(channel)
        for queue, delay_ms in zip(self.retry_queues, self.delays_ms):
            # Nobody consumes a retry queue: its messages wait out the TTL, then the broker
            # dead-letters them (reason "expired") back to the work queue.
            channel.queue_declare(queue, durable=True, arguments={
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.work,
            })

    def retry_queue_after(self, failures: int) -> tuple[str, int]:
        """The retry queue (and its delay) for a message that has failed ``failures`` times.

        Beyond the last level the last queue is reused: the backoff stops growing, and that
        queue's x-death count keeps counting the attempts.
        """
        k = min(failures, len(self.retry_queues)) - 1
        return self.retry_queues[k], self.delays_ms[k]

    def attempt(self, properties) -> int:
        """Which attempt this delivery is: 1 + how often x-death says it expired out of a retry queue."""
        deaths = (properties.headers or {}).get("x-death") or []
        return 1 + sum(int(death.get("count", 1)) for death in deaths
                       if death.get("reason") == "expired"
                       and str(death.get("queue", "")).startswith(self.retry_prefix))
