"""``broker/queue/quorum.py``: the quorum type's own rules, on one queue in process."""
from __future__ import annotations

import pytest

from broker_harness import FakeChannel, bodies, consumer, make_broker, message, queue, typed
from leveret.amqp.errors import ChannelError
from leveret.broker.queue import QuorumQueue

WHAT = "queue 'q' in vhost '/'"


def quorum(b, name="q", **args):
    return queue(b, name, durable=True, arguments=typed(x_queue_type="quorum", **args))


@pytest.mark.parametrize("kw, text", [
    (dict(durable=True, exclusive=False, auto_delete=False, server_named=True),
     "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"),
    (dict(durable=True, exclusive=False, auto_delete=True, server_named=False),
     "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'q' in vhost '/'"),
    (dict(durable=True, exclusive=True, auto_delete=False, server_named=False),
     "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'q' in vhost '/'"),
    (dict(durable=False, exclusive=False, auto_delete=False, server_named=False),
     "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"),
])
def test_declare_rules(kw, text):
    with pytest.raises(ChannelError) as e:
        QuorumQueue.check_declare(WHAT, **kw)
    assert e.value.reply_text == text


def test_returns_are_counted_and_the_delivery_limit_dead_letters():
    b = make_broker()
    v = b.vhosts["/"]
    dlq = queue(b, "dlq")
    v.bind(v.exchanges["amq.fanout"], dlq, "", {})
    q = quorum(b, x_delivery_limit=1, x_dead_letter_exchange="amq.fanout")
    q.enqueue(message(b, b"m"))
    ch = FakeChannel()
    c = consumer(q, "c", ch, prefetch=1)
    for expect in (None, 1):
        (_, m, _), = ch.delivered
        count = m.headers.get("x-delivery-count")
        assert (count.value if count is not None else None) == expect
        ch.delivered.clear()
        c.unacked -= 1
        ch.unacked_count -= 1
        q.requeue([m], True)
    # returned twice with a limit of 1: dead-lettered, without the count header
    assert not ch.delivered and q.message_count == 0
    (dead,) = list(dlq.ready)
    assert "x-delivery-count" not in dead.headers and dead.headers["x-death"]


def test_basic_get_always_carries_the_count_and_is_refused_with_sac():
    b = make_broker()
    q = quorum(b)
    q.enqueue(message(b, b"m"))
    msg, red = q.get()
    assert msg.headers["x-delivery-count"].value == 0 and red is False
    sac = quorum(b, "sac", x_single_active_consumer=True)
    with pytest.raises(ChannelError) as e:
        sac.check_get()
    assert e.value.reply_code == 405


def test_overflow_fills_to_max_plus_one_and_refuses_until_80_percent():
    b = make_broker()
    q = quorum(b, x_max_length=5, x_overflow="reject-publish")
    pub = FakeChannel("pub")
    accepted = [not q.enqueue(message(b, b"%d" % i), pub) for i in range(8)]
    assert accepted == [True] * 6 + [False] * 2
    q.get()
    assert q.message_count == 5 and q.enqueue(message(b, b"x"), pub) is True    # 5 > 80% of 5: refused
    assert not q.enqueue(message(b, b"new"), FakeChannel("new"))                # not over: a newcomer goes
    q.get()
    q.get()
    assert q.message_count == 4 and not q.enqueue(message(b, b"y"), pub)       # back at 80%: accepted
    assert q.message_count == 5


def test_overflow_evaluated_after_a_requeue_and_untracked_enqueues_never_refused():
    b = make_broker()
    q = quorum(b, x_max_length=2, x_overflow="reject-publish")
    pub = FakeChannel("pub")
    assert not q.enqueue(message(b, b"a"), pub) and not q.enqueue(message(b, b"b"), pub)
    m, _ = q.get()
    assert not q.enqueue(message(b, b"c"), pub)
    q.unacked_count += 1
    q.requeue([m], True)                     # 3 ready: over the limit, the publisher is stopped
    q.get()
    assert q.message_count == 2 and q.enqueue(message(b, b"d"), pub) is True
    assert not q.enqueue(message(b, b"dead-letter"))     # by=None: untracked
    assert q.message_count == 3


def test_explicit_requeue_without_a_limit_goes_to_the_back_returns_first_otherwise():
    b = make_broker()
    q = quorum(b)
    for i in range(3):
        q.enqueue(message(b, b"%d" % i))
    m, _ = q.get()
    q.requeue([m], True)
    assert bodies(q.ready) == [b"1", b"2", b"0"]
    lim = quorum(b, "lim", x_delivery_limit=5)
    for i in range(3):
        lim.enqueue(message(b, b"%d" % i))
    a, _ = lim.get()
    c, _ = lim.get()
    lim.requeue([c], True)
    lim.requeue([a], True)
    assert bodies(lim.ready) == [b"1", b"0", b"2"]      # served first, in the order they came back


def test_single_active_consumer_hand_over_and_declare_ok_count():
    b = make_broker()
    q = quorum(b, x_single_active_consumer=True)
    first = consumer(q, "a", priority=0)
    consumer(q, "b", priority=0)
    consumer(q, "c", priority=9)
    assert q.declare_ok_consumers() == 1
    q.remove_consumer(first)
    assert q.consumers[0].tag == "b"        # the next registered (a classic queue picks c)
    assert not q.exclusive_consume_refused(False)
