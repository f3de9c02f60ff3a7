"""``broker/queue/base.py``: the common queue, and its enqueue fast path pinned to the general one.

``Queue.enqueue`` has a hot path for a plain queue (no TTL, limits, priorities,
deduplication or type rules) and a message without ``expiration``; it specialises
``_enqueue_special``. The first test feeds both the same operations -- publishes (some
persistent), consumers coming and going, acks, requeues, basic.get -- on a durable store with a
small memory window (so paging is exercised too), and compares everything a client could see.
"""
from __future__ import annotations

import shutil
import tempfile

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker_harness import FakeChannel, bodies, consumer, make_broker, message, queue, typed
from leveret.broker.queue import ClassicQueue


class GeneralPathQueue(ClassicQueue):
    """A classic queue whose every enqueue takes the general path."""
    __slots__ = ()

    def enqueue(self, msg):
        return self._enqueue_special(msg)


PUBLISH = st.tuples(st.just("publish"), st.binary(max_size=40), st.booleans())
OPS = st.lists(st.one_of(
    PUBLISH, PUBLISH, PUBLISH, PUBLISH,     # mostly publishes, so the memory window fills
    st.tuples(st.just("consume"), st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    st.tuples(st.just("ack"), st.integers(0, 3)),
    st.tuples(st.just("requeue"), st.integers(0, 3)),
    st.tuples(st.just("get"), st.booleans()),
), min_size=5, max_size=60)


def run(ops, cls, data_dir):
    b = make_broker(data_dir=data_dir, ram_msgs=4, ram_bytes=200)
    v = b.vhosts["/"]
    q = cls("q", v, durable=True, store=b.store)
    v.add_queue(q)
    ch = FakeChannel()
    cons, held, seen = {}, [], []
    for op in ops:
        kind = op[0]
        if kind == "publish":
            q.enqueue(message(b, op[1], delivery_mode=2 if op[2] else 1))
        elif kind == "consume" and op[1] not in cons:
            cons[op[1]] = consumer(q, f"c{op[1]}", ch, prefetch=op[1])
        elif kind == "cancel" and op[1] in cons:
            c = cons.pop(op[1])
            q.remove_consumer(c)
            mine = [(cc, m) for cc, m in held if cc is c]
            held = [(cc, m) for cc, m in held if cc is not c]
            q.requeue([m for _, m in mine])
        elif kind in ("ack", "requeue") and held:
            c, m = held.pop(min(op[1], len(held) - 1))
            if c is not None:
                c.unacked -= 1
                ch.unacked_count -= 1
            q.ack(m) if kind == "ack" else q.requeue([m], True)
            q.dispatch()
        elif kind == "get":
            got = q.get()
            seen.append(("get", got and (got[0].body, got[1])))
            if got and not op[1]:
                q.unacked_count += 1
                held.append((None, got[0]))
            elif got:
                q.settled(got[0])
        for tag, m, red in ch.delivered:
            c = next(c for c in cons.values() if c.tag == tag)
            held.append((c, m))
            seen.append((tag, m.body, red))
        ch.delivered.clear()
        seen.append((len(q.ready), q.tail, q.ready_bytes, len(q.pos)))
    state = (seen, bodies(q.ready), q.tail, q.message_count, q.unacked_count, len(q.redelivered), len(q.pos))
    b.store.close()
    return state


@settings(max_examples=60, deadline=None)
@given(OPS)
@example([("publish", b"a", True)] * 6 + [("consume", 2), ("ack", 0), ("get", False), ("cancel", 2)])
def test_enqueue_fast_path_matches_the_general_path(ops):
    d1, d2 = tempfile.mkdtemp(), tempfile.mkdtemp()
    try:
        assert run(ops, ClassicQueue, d1) == run(ops, GeneralPathQueue, d2)
    finally:
        shutil.rmtree(d1)
        shutil.rmtree(d2)


def test_the_fast_path_is_taken_for_a_plain_queue_only():
    b = make_broker()
    assert not queue(b, "plain").special
    for name, args in (("ttl", typed(x_message_ttl=10)), ("len", typed(x_max_length=3)),
                       ("prio", typed(x_max_priority=3)), ("quorum", typed(x_queue_type="quorum"))):
        assert queue(b, name, durable=True, arguments=args).special, name


def test_requeued_messages_return_to_their_original_positions_marked_redelivered():
    b = make_broker()
    q = queue(b)
    for i in range(5):
        q.enqueue(message(b, b"%d" % i))
    ch = FakeChannel()
    c = consumer(q, "c", ch, prefetch=3)
    got = [m for _, m, _ in ch.delivered]
    assert bodies(got) == [b"0", b"1", b"2"] and bodies(q.ready) == [b"3", b"4"]
    q.remove_consumer(c)
    q.requeue([got[2], got[0]])
    assert bodies(q.ready) == [b"0", b"2", b"3", b"4"]
    assert q.get()[1] is True and q.unacked_count == 1     # b"0", redelivered


def test_dispatch_respects_prefetch_and_resumes_when_credit_frees():
    b = make_broker()
    q = queue(b)
    ch = FakeChannel()
    c = consumer(q, "c", ch, prefetch=2)
    for i in range(5):
        q.enqueue(message(b, b"%d" % i))
    assert len(ch.delivered) == 2 and q.message_count == 3
    ch.settle(c, q, ch.delivered[0][1])
    q.dispatch()
    assert len(ch.delivered) == 3 and q.message_count == 2
