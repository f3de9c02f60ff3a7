"""Queue names, declarations and options shared by the invoice programs.

  [invoices]  durable; x-dead-letter-exchange "" and x-dead-letter-routing-key "invoices.dead":
              a job the renderer rejects (requeue=False) moves to the dead-letter queue
  [invoices.dead]  durable; nobody consumes it automatically: dead_letters.py lists or replays it

``AMQP_URL`` / ``--url`` (default ``amqp://guest:guest@localhost:5672/%2F``) and
``EXAMPLE_PREFIX`` / ``--prefix`` (prepended to both queue names).
"""
from __future__ import annotations

import argparse
import os

JOBS = "invoices"
DEAD = "invoices.dead"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    return p


def declare(channel, prefix: str) -> tuple[str, str]:
    """Declare both queues (idempotent); return their names."""
    jobs, dead = prefix + JOBS, prefix + DEAD
    channel.queue_declare(dead, durable=True)
    channel.queue_declare(jobs, durable=True, arguments={
        "x-dead-letter-exchange": "",     # the default exchange, which routes by queue name
        "x-dead-letter-routing-key": dead,
    })
    return jobs, dead
