"""Fixtures of the Prometheus tests: ``metrics_base`` (``http://host:port`` of the metrics
under test: the session's Leveret, or RabbitMQ's with ``LEVERET_TEST_PROMETHEUS_URL`` and
``LEVERET_TEST_URL``, e.g. ``http://127.0.0.1:15692``) and ``on_rabbitmq``."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def metrics_base(broker_url, leveret_session_server):
    url = os.environ.get("LEVERET_TEST_PROMETHEUS_URL") if os.environ.get("LEVERET_TEST_URL") \
        else leveret_session_server.prometheus_url
    if url is None:
        pytest.skip("no metrics to scrape (set LEVERET_TEST_PROMETHEUS_URL with LEVERET_TEST_URL)")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def on_rabbitmq() -> bool:
    """True against an external broker (shared: other clients' traffic changes node totals)."""
    return bool(os.environ.get("LEVERET_TEST_URL"))
