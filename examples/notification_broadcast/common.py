"""Names and options shared by notify.py and service.py.

* ``AMQP_URL`` / ``--url``: the broker (default ``amqp://guest:guest@localhost:5672/%2F``).
* ``EXAMPLE_PREFIX`` / ``--prefix``: prepended to the exchange and queue names.
"""
from __future__ import annotations

import argparse
import os

EXCHANGE = "notifications"                 # durable fanout: every bound queue gets every message
KINDS = ("email", "sms", "log")            # one service, and one durable queue, per channel


def queue_of(prefix: str, kind: str) -> str:
    return f"{prefix}{EXCHANGE}.{kind}"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    return p


def declare_exchange(channel, prefix: str) -> str:
    channel.exchange_declare(prefix + EXCHANGE, "fanout", durable=True)
    return prefix + EXCHANGE
