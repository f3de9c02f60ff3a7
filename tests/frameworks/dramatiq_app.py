"""The dramatiq application of test_dramatiq.py: the worker process imports it
(``dramatiq dramatiq_app``), the test process calls ``make_broker`` to get the same actors.

Each actor records what it saw as ``<scratch>/<tag>.<attempt>.json`` (the message's retry count,
when it ran, and whether the broker flagged it redelivered), so the test reads what the worker did.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import CurrentMessage


def make_broker(url: str, queue: str, scratch: str) -> RabbitmqBroker:
    broker = RabbitmqBroker(url=url, confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    dramatiq.set_broker(broker)
    out = Path(scratch)

    def record(tag: str, **extra) -> int:
        message = CurrentMessage.get_current_message()
        attempt = message.options.get("retries", 0)
        (out / f"{tag}.{attempt}.json").write_text(json.dumps(
            {"retries": attempt, "ran_at": time.time() * 1000,
             "redelivered": getattr(message, "redelivered", None), **extra}))
        return attempt

    @dramatiq.actor(actor_name="fw_record", queue_name=queue, broker=broker)
    def fw_record(tag: str) -> None:
        record(tag)

    @dramatiq.actor(actor_name="fw_flaky", queue_name=queue, broker=broker,
                    max_retries=3, min_backoff=100, max_backoff=200)
    def fw_flaky(tag: str, fails: int) -> None:
        if record(tag) < fails:
            raise RuntimeError(f"{tag}: failing on purpose")

    @dramatiq.actor(actor_name="fw_doomed", queue_name=queue, broker=broker,
                    max_retries=1, min_backoff=100, max_backoff=200)
    def fw_doomed(tag: str) -> None:
        record(tag)
        raise RuntimeError(f"{tag}: always fails")

    return broker


if os.environ.get("LEVERET_FW_QUEUE"):
    broker = make_broker(os.environ["LEVERET_FW_URL"], os.environ["LEVERET_FW_QUEUE"],
                         os.environ["LEVERET_FW_SCRATCH"])
