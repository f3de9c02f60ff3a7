"""``broker/queue/consumers.py``: credit, and the three dispatch modes as named strategies."""
from __future__ import annotations

from collections import deque

from broker_harness import FakeChannel, consumer, make_broker, message, queue
from leveret.broker.queue.consumers import BY_PRIORITY, ROUND_ROBIN, SAC_WAITING, SINGLE_ACTIVE, mode_for


def cons(*specs):
    b = make_broker()
    q = queue(b)
    return [consumer(q, tag, FakeChannel(), prefetch=pf, priority=pr, add=False) for tag, pf, pr in specs]


def test_credit_per_consumer_channel_wide_and_deliverable():
    c, = cons(("a", 2, 0))
    assert c.can_take()
    c.unacked = 2
    assert not c.can_take()
    c.unacked = 0
    c.channel.global_prefetch, c.channel.unacked_count = 3, 3
    assert not c.can_take()
    c.channel.global_prefetch = 0
    c.channel.deliverable = False
    assert not c.can_take()


def test_round_robin_rotates_and_skips_consumers_without_credit():
    a, b, c = cons(("a", 0, 0), ("b", 0, 0), ("c", 0, 0))
    cs = deque()
    for x in (a, b, c):
        ROUND_ROBIN.insert(cs, x)
    b.channel.deliverable = False
    assert [ROUND_ROBIN.pick(cs).tag for _ in range(4)] == ["a", "c", "a", "c"]
    a.channel.deliverable = c.channel.deliverable = False
    assert ROUND_ROBIN.pick(cs) is None


def test_priority_mode_highest_first_round_robin_within_a_level():
    lo, hi1, hi2, mid = cons(("lo", 0, -1), ("hi1", 0, 5), ("hi2", 0, 5), ("mid", 0, 2))
    cs = deque()
    for x in (lo, hi1, hi2, mid):
        BY_PRIORITY.insert(cs, x)
    assert [c.tag for c in cs] == ["hi1", "hi2", "mid", "lo"]
    assert [BY_PRIORITY.pick(cs).tag for _ in range(3)] == ["hi1", "hi2", "hi1"]
    hi1.channel.deliverable = hi2.channel.deliverable = False
    assert BY_PRIORITY.pick(cs).tag == "mid"


def test_single_active_only_the_first():
    a, b = cons(("a", 1, 0), ("b", 0, 0))
    cs = deque()
    for x in (a, b):
        SINGLE_ACTIVE.insert(cs, x)
    assert SINGLE_ACTIVE.pick(cs) is a
    a.unacked = 1
    assert SINGLE_ACTIVE.pick(cs) is None        # b waits its turn even though it has credit


def test_mode_for():
    a, b = cons(("a", 0, 0), ("b", 0, 3))
    assert mode_for(False, [a]) is ROUND_ROBIN
    assert mode_for(False, [a, b]) is BY_PRIORITY
    assert mode_for(True, [a, b]) is SINGLE_ACTIVE


def test_a_queue_switches_to_priorities_with_the_first_prioritised_consumer():
    b = make_broker()
    q = queue(b)
    consumer(q, "a")
    assert q.mode is ROUND_ROBIN
    consumer(q, "b", priority=2)
    assert q.mode is BY_PRIORITY and [c.tag for c in q.consumers] == ["b", "a"]
    q2 = queue(b, "sac", arguments={"x-single-active-consumer": True})
    consumer(q2, "x", priority=2)
    assert q2.mode is SINGLE_ACTIVE


def test_classic_sac_cancel_leaves_the_successor_unserved_until_a_requeue():
    """RabbitMQ 3.10 classic: a basic.cancel of the active consumer hands over without serving the
    new active consumer; a requeue serves it, the requeued (older) message first."""
    b = make_broker()
    q = queue(b, "sac", arguments={"x-single-active-consumer": True})
    ch_a, ch_b = FakeChannel("a"), FakeChannel("b")
    a = consumer(q, "a", ch_a, prefetch=1)
    consumer(q, "b", ch_b)
    for i in range(3):
        q.enqueue(message(b, b"%d" % i))
    (_, held, _), = ch_a.delivered
    q.remove_consumer(a)                    # basic.cancel
    assert q.mode is SAC_WAITING and q.special and ch_b.delivered == []
    a.unacked -= 1
    q.requeue([held], True)
    assert q.mode is SINGLE_ACTIVE and not q.special
    assert [(m.body, red) for _, m, red in ch_b.delivered] == [(b"0", True), (b"1", False), (b"2", False)]


def test_classic_sac_cancel_with_an_empty_queue_serves_new_messages():
    b = make_broker()
    q = queue(b, "sac", arguments={"x-single-active-consumer": True})
    ch_b = FakeChannel("b")
    a = consumer(q, "a", FakeChannel("a"), no_ack=True)
    consumer(q, "b", ch_b)
    q.remove_consumer(a)
    assert q.mode is SINGLE_ACTIVE          # nothing waits: nothing to hold back
    q.enqueue(message(b, b"x"))
    assert [m.body for _, m, _ in ch_b.delivered] == [b"x"]


def test_round_robin_parks_a_full_consumer_until_it_has_room():
    """A consumer whose window is full when its turn comes leaves the rotation; unparked (one of its
    messages settled) it comes back at the end."""
    b = make_broker()
    q = queue(b)
    chans = [FakeChannel(n) for n in "abc"]
    a, bb, c = (consumer(q, n, ch, prefetch=p) for n, ch, p in zip("abc", chans, (1, 1, 0)))
    for i in range(4):
        q.enqueue(message(b, b"%d" % i))
    order = [(tag, m.body) for ch in chans for tag, m, _ in ch.delivered]
    assert sorted(order, key=lambda x: x[1]) == [("a", b"0"), ("b", b"1"), ("c", b"2"), ("c", b"3")]
    assert a.parked and bb.parked and not c.parked
    a.unacked -= 1
    q.unpark(a)
    assert [x.tag for x in q.consumers][-1] == "a" and not a.parked
    for i in range(4, 6):
        q.enqueue(message(b, b"%d" % i))
    assert [m.body for _, m, _ in chans[2].delivered][-1] == b"4"
    assert [m.body for _, m, _ in chans[0].delivered][-1] == b"5"
