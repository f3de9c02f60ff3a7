"""Plumbing shared by the tutorial programs (not part of what the tutorials teach).

* ``AMQP_URL`` - broker URL, from the ``AMQP_URL`` environment variable.
* ``name(base)`` - queue/exchange name, prefixed with ``TUTORIAL_PREFIX`` (default: no
  prefix, i.e. the tutorials' own names) so repeated runs on a shared broker never collide.
* ``add_stop_options`` / ``StopAfter`` - let a consumer stop after N messages or S seconds
  (``--max-messages`` / ``--timeout``, or ``TUTORIAL_MAX_MESSAGES`` / ``TUTORIAL_TIMEOUT``).
  Without them a consumer runs forever, exactly like the tutorials.
"""
from __future__ import annotations

import argparse
import os

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
PREFIX = os.environ.get("TUTORIAL_PREFIX", "")


def name(base: str) -> str:
    """The tutorial's queue/exchange name ``base``, with the optional TUTORIAL_PREFIX."""
    return PREFIX + base


def _env_number(var: str, kind):
    value = os.environ.get(var)
    return kind(value) if value else None


def add_stop_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--max-messages", type=int, default=_env_number("TUTORIAL_MAX_MESSAGES", int),
        help="stop after handling this many messages (default: run forever)")
    parser.add_argument(
        "--timeout", type=float, default=_env_number("TUTORIAL_TIMEOUT", float),
        help="stop after this many seconds (default: run forever)")
    return parser


class StopAfter:
    """Stops a BlockingChannel's ``start_consuming`` after a message count or a time limit."""

    def __init__(self, args: argparse.Namespace):
        self.max_messages = args.max_messages
        self.timeout = args.timeout
        self.handled = 0

    def arm(self, connection, channel) -> None:
        """Call before ``channel.start_consuming()``."""
        if self.timeout is not None:
            connection.call_later(self.timeout, channel.stop_consuming)

    def handled_one(self, channel) -> None:
        """Call at the end of the consumer callback."""
        self.handled += 1
        if self.max_messages is not None and self.handled >= self.max_messages:
            channel.stop_consuming()
