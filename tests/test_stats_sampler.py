"""The statistics sampler hands the event loop back in the middle of a sample, and a sample
taken that way is still right: objects declared or deleted meanwhile do no harm, messages
keep moving while it is paused, and a queue's rates are its own counts over its own interval.
(``SLICE`` is set to 0 so that the sampler pauses after every 64 objects, however fast the
machine.)"""
from __future__ import annotations

import asyncio

import pika
import pytest

from inproc import ThreadedBroker
from leveret.broker import stats


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(stats, "SLICE", 0.0)
    b = ThreadedBroker(stats_interval=0)        # no sampler task: the test drives the samples
    try:
        yield b
    finally:
        b.stop()


def test_a_paused_sample_lets_traffic_through_and_stays_right(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    for i in range(300):
        ch.queue_declare(f"sampled-{i}")
    ch.queue_declare("busy")
    sampler = broker.broker.stats
    broker.call(sampler.sample)
    pauses = []

    async def paused_sample():
        n = 0
        for _ in sampler.steps():
            n += 1
            await asyncio.sleep(0.02)   # the client below works meanwhile
        pauses.append(n)
    fut = asyncio.run_coroutine_threadsafe(paused_sample(), broker.loop)
    published = deleted = declared = 0
    while not fut.done():
        ch.basic_publish("", "busy", b"m")
        published += 1
        if deleted < 100:
            ch.queue_delete(f"sampled-{deleted}")
            deleted += 1
        ch.queue_declare(f"new-{declared}")
        declared += 1
        conn.process_data_events(0)
    fut.result(10)
    assert pauses[0] >= 300 // 64       # paused at every 64th object, as asked
    assert published > pauses[0]        # the broker served the client while the sample was paused
    for _ in range(5):
        ch.basic_publish("", "busy", b"m")
    published += 5
    got = ch.queue_declare("busy", passive=True).method.message_count
    assert got == published
    broker.call(sampler.sample)
    queues = broker.call(lambda: {q.name: q for q in broker.broker.vhosts["/"].queues.values()})
    assert {q.name for q in sampler.last if hasattr(q, "name") and q.name in queues} == set(queues)
    busy_rates = sampler.rates_of(queues["busy"])
    assert busy_rates is not None and busy_rates[0] > 0      # publish rate of "busy" over the last interval
    conn.close()
