"""The Celery application the tests in test_celery.py run: the worker process imports it
(``celery -A celery_app worker``) and the test process builds the same app with ``make_app``.

It runs in a virtual host of its own (conftest.py's ``fw_vhost``), so it keeps Celery's
default names for the pidbox (``celery.pidbox``, ``reply.celery.pidbox``) and event
(``celeryev``) exchanges; the task queues are named after ``LEVERET_FW_PREFIX``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue


def queue_names(prefix: str) -> dict[str, str]:
    return {k: f"{prefix}{k}" for k in ("default", "a", "b", "prefetch", "extra", "eta")}


def make_app(url: str, prefix: str, scratch: str) -> Celery:
    names = queue_names(prefix)
    app = Celery(prefix.rstrip("."), broker=url.replace("amqp://", "pyamqp://", 1), backend="rpc://")
    exchange = Exchange(f"{prefix}tasks", type="direct")
    app.conf.update(
        task_default_queue=names["default"],
        task_default_exchange=exchange.name,
        task_default_routing_key=names["default"],
        task_queues=[Queue(names[k], exchange, routing_key=names[k])
                     for k in ("default", "a", "b", "prefetch")],
        task_routes={"fw.routed_b": {"queue": names["b"]}},
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    out = Path(scratch)

    @app.task(name="fw.add")
    def add(x, y):
        return x + y

    @app.task(name="fw.where", bind=True)
    def where(self):
        info = self.request.delivery_info or {}
        return {"exchange": info.get("exchange"), "routing_key": info.get("routing_key"),
                "eta": self.request.eta, "hostname": self.request.hostname}

    @app.task(name="fw.routed_b", bind=True)
    def routed_b(self):
        return (self.request.delivery_info or {}).get("routing_key")

    @app.task(name="fw.flaky", bind=True, max_retries=5)
    def flaky(self, fail_times):
        if self.request.retries < fail_times:
            raise self.retry(countdown=1)
        return {"retries": self.request.retries, "eta": self.request.eta}

    def wait_for_release(tag):
        """Mark ``tag`` started, then wait (at most 30 s) until the test creates its release file."""
        (out / f"{tag}.started").touch()
        deadline = time.monotonic() + 30
        while not (out / f"{tag}.release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return tag

    app.task(name="fw.block")(wait_for_release)
    # acknowledged only when done, so a running task holds one unit of the prefetch window
    app.task(name="fw.block_late", acks_late=True)(wait_for_release)

    @app.task(name="fw.die_once", bind=True, acks_late=True, reject_on_worker_lost=True)
    def die_once(self, tag):
        """acks_late: the first delivery kills the pool process before the ack, so the broker
        must deliver the message again (redelivered=True) to the next pool process."""
        marker = out / f"{tag}.died"
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return {"redelivered": bool((self.request.delivery_info or {}).get("redelivered"))}

    return app


if os.environ.get("LEVERET_FW_PREFIX"):
    app = make_app(os.environ["LEVERET_FW_URL"], os.environ["LEVERET_FW_PREFIX"],
                   os.environ["LEVERET_FW_SCRATCH"])
