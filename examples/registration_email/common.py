"""Settings shared by the programs of the registration-email example.

* ``AMQP_URL`` / ``--url``: the broker (default ``amqp://guest:guest@localhost:5672/%2F``,
  where ``leveret serve`` listens).
* ``EXAMPLE_PREFIX`` / ``--prefix``: prepended to the queue name, so several runs can share a broker.
* ``SMTP_HOST`` / ``SMTP_PORT``: where the worker sends mail and the sink listens (127.0.0.1:8025).
"""
from __future__ import annotations

import argparse
import os

QUEUE = "registrations"  # durable; one JSON message per registered user


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    p.add_argument("--smtp-host", default=os.environ.get("SMTP_HOST", "127.0.0.1"))
    p.add_argument("--smtp-port", type=int, default=int(os.environ.get("SMTP_PORT", "8025")))
    return p
