"""dramatiq (RabbitmqBroker, pika with publisher confirms) with a real ``dramatiq`` worker process.

dramatiq declares per actor queue ``Q`` (durable, dead-lettering to ``Q.XQ`` through the default
exchange), ``Q.DQ`` for delayed messages (the worker consumes it and holds each message
unacknowledged until its ETA, then enqueues it on ``Q``) and ``Q.XQ``. Retries are delayed
messages; a message that exhausts them is rejected without requeue, so the broker dead-letters it
to ``Q.XQ`` with an ``x-death`` header.
"""
from __future__ import annotations

import json
import time
import uuid

import pika
import pytest

from tests.frameworks import dramatiq_app

TIMEOUT = 20  # a safety net for each wait, not a speed assertion


@pytest.fixture(scope="module")
def setup(fw_vhost, workers, tmp_path_factory):
    queue = f"fw_{uuid.uuid4().hex[:6]}"
    scratch = tmp_path_factory.mktemp("dramatiq")
    worker = workers(["dramatiq", "dramatiq_app", "--processes", "1", "--threads", "2"],
                     {"LEVERET_FW_URL": fw_vhost, "LEVERET_FW_QUEUE": queue,
                      "LEVERET_FW_SCRATCH": str(scratch)}, name="dramatiq worker")
    worker.expect("Worker process is ready for action", timeout=60)
    broker = dramatiq_app.make_broker(fw_vhost, queue, str(scratch))
    yield {"broker": broker, "queue": queue, "scratch": scratch, "url": fw_vhost}
    broker.close()


def attempt(setup, tag: str, n: int) -> dict:
    path = setup["scratch"] / f"{tag}.{n}.json"
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert time.monotonic() < deadline, f"attempt {n} of {tag} never ran"
        time.sleep(0.05)
    time.sleep(0.05)  # (written in one call; give a slow disk a moment)
    return json.loads(path.read_text())


def actor(setup, name):
    return setup["broker"].get_actor(name)


def test_message_processed(setup):
    tag = f"plain-{uuid.uuid4().hex[:6]}"
    actor(setup, "fw_record").send(tag)
    seen = attempt(setup, tag, 0)
    assert (seen["retries"], seen["redelivered"]) == (0, False)


def test_retries_go_through_the_delay_queue(setup):
    tag = f"flaky-{uuid.uuid4().hex[:6]}"
    actor(setup, "fw_flaky").send(tag, 2)
    runs = [attempt(setup, tag, n) for n in range(3)]
    assert [r["retries"] for r in runs] == [0, 1, 2]
    # each retry is a message delayed by at least part of its backoff (jittered, min 100 ms)
    assert runs[0]["ran_at"] < runs[1]["ran_at"] < runs[2]["ran_at"]
    assert not (setup["scratch"] / f"{tag}.3.json").exists()


def test_delayed_message(setup):
    tag = f"delayed-{uuid.uuid4().hex[:6]}"
    before = time.time() * 1000
    actor(setup, "fw_record").send_with_options(args=(tag,), delay=500)
    assert attempt(setup, tag, 0)["ran_at"] >= before + 500


def test_exhausted_retries_are_dead_lettered_with_x_death(setup):
    queue = setup["queue"]
    tag = f"doomed-{uuid.uuid4().hex[:6]}"
    actor(setup, "fw_doomed").send(tag)
    attempt(setup, tag, 1)
    conn = pika.BlockingConnection(pika.URLParameters(setup["url"]))
    try:
        ch = conn.channel()
        deadline = time.monotonic() + TIMEOUT
        while True:
            method, props, body = ch.basic_get(f"{queue}.XQ", auto_ack=True)
            if method is not None:
                break
            assert time.monotonic() < deadline, "nothing was dead-lettered to the XQ queue"
            time.sleep(0.05)
        message = json.loads(body)
        assert (message["actor_name"], message["args"]) == ("fw_doomed", [tag])
        assert message["options"]["retries"] == 1
        (death,) = props.headers["x-death"]
        assert {k: death[k] for k in ("count", "exchange", "queue", "reason", "routing-keys")} == {
            "count": 1, "exchange": "", "queue": queue, "reason": "rejected", "routing-keys": [queue]}
        for q in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            assert ch.queue_declare(q, passive=True).method.message_count == 0, q
    finally:
        conn.close()
