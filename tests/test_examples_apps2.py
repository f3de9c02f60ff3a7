"""The application examples, part 2 (examples/stock_prices, image_pipeline, chat, rate_limiter,
metrics_dashboard, microservices), run as programs against the broker under test.

As in tests/test_examples.py, every program is a subprocess with AMQP_URL pointing at the broker
(LEVERET_TEST_URL, or the session's private ``leveret serve``) and EXAMPLE_PREFIX set to the
test's unique prefix; named queues and exchanges are deleted afterwards. Consumers and servers
are started first and waited for until they print their ready line.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from subprocs import Programs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

QUEUES = ("api.requests", "api.requests.delay", "api.requests.rejected")
EXCHANGES = ()


@pytest.fixture
def apps(broker_url, uniq):
    with Programs(EXAMPLES, broker_url, uniq + ".", "EXAMPLE_", QUEUES, EXCHANGES) as programs:
        yield programs


def _message_count(channel, name: str) -> int:
    return channel.queue_declare(name, passive=True).method.message_count


# --- Rate limiter with delayed retry (TTL + DLX) -----------------------------------------

PROCESSED = re.compile(r" \[>\] (\S+) processed \(retries (\d+), expired (\d+)x in (\S+), t=(\d+)\)$")


def test_rate_limiter_delays_the_excess_and_never_exceeds_the_rate(apps, conn):
    """20 requests at once, 10/s with a burst of 5: all are processed, the excess after trips through
    the delay queue (x-death agrees with the limiter's own count), and no window breaks the bucket's bound."""
    limiter = apps.consumer("rate_limiter/limiter.py", "--rate", "10", "--burst", "5",
                            "--retry-delay-ms", "200", "--max-retries", "50", "--max-requests", "20",
                            ready="Waiting for requests")
    assert apps.run("rate_limiter/client.py", "--count", "20").stdout.rstrip() == (
        f" [x] Sent 20 requests to {apps.name('api.requests')}")
    assert limiter.finish(timeout=20) == 0, limiter.text()
    processed = [PROCESSED.search(line).groups() for line in limiter.output if PROCESSED.search(line)]
    assert sorted(int(rid.split("-")[1]) for rid, *_ in processed) == list(range(1, 21))
    delay = apps.name("api.requests.delay")
    assert {via for _, _, _, via, _ in processed} == {delay}
    for rid, retries, expired, _, _ in processed:
        assert retries == expired, (rid, retries, expired)  # every delayed copy came back by TTL expiry
    delayed = [p for p in processed if int(p[1]) > 0]
    assert len(delayed) >= 5, "a burst of 20 over a bucket of 5 must delay requests"
    delayed_lines = [line for line in limiter.output if " over the rate -> " in line]
    assert len(delayed_lines) == sum(int(p[1]) for p in processed)
    # Token bucket bound, checked on the limiter's own clock: at most burst + rate * T in any T.
    times = sorted(int(p[4]) for p in processed)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            span_s = (times[j] - start) / 1000
            assert j - i + 1 <= 5 + 10 * span_s + 1e-9, (times, i, j)
    channel = conn.channel()
    for q in QUEUES:
        assert _message_count(channel, apps.name(q)) == 0, q


def test_rate_limiter_rejects_after_max_retries_into_the_rejected_queue(apps, conn):
    """At 0.2/s with a burst of 1 and one retry allowed, of 3 requests one is processed and two end in
    api.requests.rejected, each with x-retries 1 and x-death entries for the delay and the rejection."""
    limiter = apps.consumer("rate_limiter/limiter.py", "--rate", "0.2", "--burst", "1",
                            "--retry-delay-ms", "100", "--max-retries", "1", "--max-requests", "3",
                            ready="Waiting for requests")
    apps.run("rate_limiter/client.py", "--count", "3", "--path", "/slow")
    assert limiter.finish() == 0, limiter.text()
    assert [line for line in limiter.output if "processed" in line][0].startswith(" [>] req-1 processed (retries 0")
    requests, delay, rejected = (apps.name(q) for q in QUEUES)
    assert sorted(line for line in limiter.output if "rejected into" in line) == [
        f" [!] req-{n} over the rate after 1 retries -> rejected into {rejected}" for n in (2, 3)]
    channel = conn.channel()
    got = []
    for _ in range(2):
        method, props, body = channel.basic_get(rejected, auto_ack=True)
        assert method is not None
        got.append(json.loads(body)["id"])
        assert json.loads(body)["path"] == "/slow"
        assert props.headers["x-retries"] == 1
        deaths = {(d["queue"], d["reason"]): d["count"] for d in props.headers["x-death"]}
        assert deaths == {(requests, "rejected"): 1, (delay, "expired"): 1}
        assert props.headers["x-first-death-queue"] == delay
    assert sorted(got) == ["req-2", "req-3"]
    assert channel.basic_get(rejected)[0] is None
