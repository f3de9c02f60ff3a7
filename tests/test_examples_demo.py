"""Every example's scripted demo (``python examples/run.py EXAMPLE``), run as a new user would.

Once against the embedded broker the launcher starts by itself (no ``--url``, no ``AMQP_URL``),
and once with ``--url`` against LEVERET_TEST_URL when it is set (scripts/rabbitmq-conformance
runs this file against RabbitMQ). Each run must exit 0, print the example's key line and the
launcher's closing line; against a URL, the named queues and exchanges the demo lists must be
gone afterwards (the launcher deletes them).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXTERNAL_URL = os.environ.get("LEVERET_TEST_URL")

# A line each demo prints only when its story ran to the end.
KEY_LINES = {
    "retry_backoff": "FAILED (fails every time) -> parked in ",
    "delayed_reminders": "Reminder 'stand up' due ",
    "rpc_direct_reply_to": " [=] 5 of 5 requests answered",
    "registration_email": " [x] Sent welcome mail to bob@example.org",
    "notification_broadcast": " [sms] #2 for bob: Password changed",
    "order_saga": " [orders] o2: CANCELLED (inventory released)",
    "invoice_queue": " [=] 2 dead letter(s) in ",
    "file_scan_rpc": " [=] 3 of 3 files scanned, 1 infected",
    "stock_prices": "symbols received: {'nasdaq': ['nasdaq.AAPL', 'nasdaq.MSFT'], 'ibm+xetra': ['nyse.IBM', 'xetra.SAP']}",
    "image_pipeline": "thumbnail/: generated-1.png, generated-2.png",
    "chat": "[lobby] bob@s2: (leave)",
    "rate_limiter": " [>] req-12 processed (retries ",
    "metrics_dashboard": "api.latency_ms: count 3, avg 20, max 30",
    "microservices": "o-3: rejected only 1 in stock",
}
NO_DELAYED_EXCHANGE = "this broker has no x-delayed-message exchange type"


def test_every_example_folder_has_a_demo():
    folders = {p.name for p in EXAMPLES.iterdir() if (p / "README.md").exists()} - {"tutorials"}
    listed = subprocess.run([sys.executable, str(EXAMPLES / "run.py"), "--list"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert sorted(listed) == sorted(folders) == sorted(KEY_LINES)


def test_unknown_example_is_a_usage_error():
    done = subprocess.run([sys.executable, str(EXAMPLES / "run.py"), "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown example 'nope'" in done.stderr


def _demo(example: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "EXAMPLE_PREFIX")}
    done = subprocess.run([sys.executable, str(EXAMPLES / "run.py"), example, *args], env=env,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"demo        | --- {example}: demo finished" in done.stdout.splitlines(), done.stdout
    return done.stdout


@pytest.mark.parametrize("example", sorted(KEY_LINES))
def test_demo_on_the_embedded_broker(example):
    out = _demo(example)
    assert "--- embedded Leveret broker at amqp://guest:guest@127.0.0.1:" in out
    assert KEY_LINES[example] in out, out


def _gone(url: str, kind: str, name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        (channel.queue_declare if kind == "queue" else channel.exchange_declare)(name, passive=True)
        return False
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return True
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.skipif(not EXTERNAL_URL, reason="LEVERET_TEST_URL is not set")
@pytest.mark.parametrize("example", sorted(KEY_LINES))
def test_demo_against_a_url(example):
    out = _demo(example, "--url", EXTERNAL_URL)
    prefix = re.search(r"names prefixed with '(demo-[0-9a-f]{6}\.)'", out).group(1)
    if example == "delayed_reminders" and NO_DELAYED_EXCHANGE in out:
        pass  # RabbitMQ without the delayed-message plugin: the demo says so and stops
    else:
        assert KEY_LINES[example] in out, out
    source = (EXAMPLES / example / "demo.py").read_text()
    queues = re.search(r"^QUEUES = \(([^)]*)\)", source, re.M).group(1)
    exchanges = re.search(r"^EXCHANGES = \(([^)]*)\)", source, re.M).group(1)
    for kind, names in (("queue", queues), ("exchange", exchanges)):
        for name in re.findall(r'"([^"]+)"', names):
            assert _gone(EXTERNAL_URL, kind, prefix + name), f"{kind} {prefix + name} left behind"


def test_unreachable_or_malformed_url_is_a_clear_error():
    run = [sys.executable, str(EXAMPLES / "run.py"), "rpc_direct_reply_to", "--url"]
    refused = subprocess.run([*run, "amqp://guest:guest@127.0.0.1:1/%2F"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "!!! cannot connect to amqp://guest:guest@127.0.0.1:1/%2F: AMQPConnectionError" in refused.stdout
    assert "Traceback" not in refused.stderr
    malformed = subprocess.run([*run, "localhost:5672"], capture_output=True, text=True, timeout=60)
    assert malformed.returncode == 2 and "--url must be an amqp:// or amqps:// URL" in malformed.stderr
