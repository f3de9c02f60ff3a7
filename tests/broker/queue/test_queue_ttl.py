"""``broker/queue/ttl.py``: only the head of a queue expires, with or without paging.

A classic queue is driven by random publishes (no TTL, TTL 0, short and long TTLs), basic.gets
and clock steps (the queue's timer fires when due) under a fake clock, and compared step by step
with a model of RabbitMQ's rule (``drop_expired_msgs``: due messages leave from the head only,
when a message enters an empty queue, after each fetch and when the head's timer fires): the
messages each get returns, the get's message count, what is dead-lettered (in order), and the
queue's count after every step. The same operations run on a queue with a memory window of 4
messages on a durable store, so the paged-out tail (and its deadlines) takes part.
"""
from __future__ import annotations

import shutil
import tempfile
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker_harness import make_broker, message
from leveret.broker.queue import ClassicQueue
from leveret.broker.queue import base as queue_base
from leveret.broker.queue import paging as queue_paging
from leveret.broker.queue import ttl as queue_ttl


class RecordingQueue(ClassicQueue):
    """A classic queue that records what it dead-letters (in ``DEAD``)."""
    __slots__ = ()
    DEAD: list = []

    def dead_letter(self, msgs, reason):
        self.DEAD.extend((m.body, reason) for m in msgs)


OPS = st.lists(st.one_of(
    st.tuples(st.just("publish"), st.sampled_from([None, 0, 5, 20, 1000])),
    st.tuples(st.just("publish"), st.sampled_from([None, 5, 20])),
    st.tuples(st.just("get"), st.just(0)),
    st.tuples(st.just("advance"), st.integers(1, 30)),
), min_size=1, max_size=50)


def model(ops) -> list:
    """RabbitMQ's rule, as a list of (body, deadline or None) with the head first."""
    now, q, seen = 1000, [], []

    def drop():
        while q and q[0][1] is not None and q[0][1] <= now:
            seen.append(("dead", q.pop(0)[0], "expired"))

    for i, (kind, arg) in enumerate(ops):
        if kind == "publish":
            q.append((b"%d" % i, None if arg is None else now + arg))
            if len(q) == 1:
                drop()
        elif kind == "get":
            if q:
                body = q.pop(0)[0]
                drop()
                seen.append(("get", body, len(q)))
            else:
                seen.append(("get", None))
        else:
            now += arg
            drop()
        seen.append(("count", len(q)))
    return seen


def run(ops, data_dir: str | None) -> list:
    clock = [1000]
    fake_now = lambda: clock[0]     # noqa: E731
    with mock.patch.object(queue_ttl, "now_ms", fake_now), mock.patch.object(queue_base, "now_ms", fake_now), \
            mock.patch.object(queue_paging, "now_ms", fake_now):
        b = make_broker(data_dir=data_dir, ram_msgs=4, ram_bytes=1 << 20) if data_dir else make_broker()
        v = b.vhosts["/"]
        q = RecordingQueue("q", v, durable=True, store=b.store)
        v.add_queue(q)
        dead = RecordingQueue.DEAD = []
        seen = []
        for i, (kind, arg) in enumerate(ops):
            if kind == "publish":
                props = {} if arg is None else {"expiration": str(arg)}
                q.enqueue(message(b, b"%d" % i, delivery_mode=2, **props))
            elif kind == "get":
                got = q.get()
                seen.extend(("dead", body, why) for body, why in dead)
                dead.clear()
                if got:
                    q.settled(got[0])
                    seen.append(("get", got[0].body, q.message_count))
                else:
                    seen.append(("get", None))
            else:
                clock[0] += arg
                if q.exp_timer is not None and q.exp_timer_at <= clock[0]:
                    q._expiry_tick()       # the timer fires
            seen.extend(("dead", body, why) for body, why in dead)
            dead.clear()
            seen.append(("count", q.message_count))
        if b.store is not None:
            b.store.close()
        return seen


@settings(max_examples=150, deadline=None)
@given(OPS)
@example([("publish", 1000), ("publish", 5), ("publish", None), ("advance", 10), ("get", 0), ("get", 0)])
@example([("publish", None)] * 5 + [("publish", 5), ("publish", 5), ("advance", 10)] + [("get", 0)] * 6)
def test_only_the_head_expires_with_and_without_paging(ops):
    want = model(ops)
    assert run(ops, None) == want
    d = tempfile.mkdtemp()
    try:
        assert run(ops, d) == want
    finally:
        shutil.rmtree(d)
