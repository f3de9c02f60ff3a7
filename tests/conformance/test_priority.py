"""Conformance tests for priority queues (``x-max-priority``) and consumer priorities
(the ``x-priority`` basic.consume argument).

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
"""
from __future__ import annotations

import decimal

import pika
import pika.exceptions
import pytest

from .helpers import closed_with, drain_get, invalid_arg, pump, settle, wait_count

# --------------------------------------------------------------------------- helpers

def prio_queue(ch, max_priority: int = 5) -> str:
    return ch.queue_declare("", exclusive=True, arguments={"x-max-priority": max_priority}).method.queue


def publish_all(ch, q: str, items) -> None:
    """Publish (body, priority) pairs; priority None means no priority property."""
    for body, prio in items:
        ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=prio))
    assert wait_count(ch, q, len(items)) == len(items)


def bodies(items) -> list[str]:
    return [b.decode() for b, _ in items]


# --------------------------------------------------------------------------- x-max-priority declare

@pytest.mark.parametrize("value", [0, 1, 10, 255])
def test_max_priority_accepted_values(ch, uniq, cleanup, value):
    """0..255 are accepted (0 too: a one-level priority queue); an identical redeclare is fine."""
    q = uniq + ".p"
    cleanup.append(q)
    ok = ch.queue_declare(q, arguments={"x-max-priority": value}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    assert ch.queue_declare(q, arguments={"x-max-priority": value}).method.queue == q


@pytest.mark.parametrize("value,detail", [
    (256, "{max_value_exceeded,256}"),
    (2 ** 40, "{max_value_exceeded,1099511627776}"),
    (-1, "{value_negative,-1}"),
    (-(2 ** 40), "{value_negative,-1099511627776}"),
    ("5", '"expected integer, got longstr"'),
    (True, '"expected integer, got bool"'),
    (None, '"expected integer, got void"'),
    (decimal.Decimal(5), '"expected integer, got decimal"'),
    (b"5", '"expected integer, got binary"'),
    ({"a": 1}, '"expected integer, got table"'),
    ([1], '"expected integer, got array"'),
], ids=["256", "huge", "neg", "huge-neg", "longstr", "bool", "void", "decimal", "binary", "table", "array"])
def test_max_priority_invalid_values(connect, uniq, value, detail):
    """Out-of-range or non-integer x-max-priority: 406 'invalid arg' with RabbitMQ's Erlang-term detail."""
    q = uniq + ".bad"
    ch = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-max-priority": value})
    closed_with(ei, 406, invalid_arg("x-max-priority", q, detail))


@pytest.mark.parametrize("first,second,detail", [
    ({"x-max-priority": 5}, {"x-max-priority": 6}, "received '6' but current is '5'"),
    ({"x-max-priority": 5}, {}, "received none but current is the value '5' of type 'signedint'"),
    ({}, {"x-max-priority": 5}, "received the value '5' of type 'signedint' but current is none"),
], ids=["changed", "dropped", "added"])
def test_max_priority_inequivalent_redeclare(connect, uniq, cleanup, first, second, detail):
    """x-max-priority takes part in queue equivalence."""
    q = uniq + ".p"
    cleanup.append(q)
    ch = connect().channel()
    ch.queue_declare(q, arguments=first)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments=second)
    closed_with(ei, 406, f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{q}' "
                         f"in vhost '/': {detail}")


# --------------------------------------------------------------------------- ordering

def test_basic_get_highest_priority_first_with_counts(ch):
    """basic.get returns the highest priority first, FIFO inside a priority; get-ok message_count
    counts the messages still ready, over all priorities."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 1), ("b", 3), ("c", 5), ("d", 3), ("e", 1), ("f", 5)])
    assert ch.queue_declare(q, passive=True).method.message_count == 6
    got = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body.decode(), p.priority, m.message_count))
    assert got == [("c", 5, 5), ("f", 5, 4), ("b", 3, 3), ("d", 3, 2), ("a", 1, 1), ("e", 1, 0)]


def test_priority_above_max_is_treated_as_max(ch):
    """A priority above x-max-priority queues at the max level (FIFO with real max-priority messages);
    the priority property itself is delivered unchanged."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 5), ("b", 9), ("c", 255), ("d", 5), ("e", 4), ("f", 6)])
    got = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body.decode(), p.priority))
    assert got == [("a", 5), ("b", 9), ("c", 255), ("d", 5), ("f", 6), ("e", 4)]


def test_no_priority_counts_as_zero(ch):
    """Messages without a priority property rank as priority 0 (FIFO with explicit 0s)."""
    q = prio_queue(ch, 3)
    publish_all(ch, q, [("a", None), ("b", 0), ("c", None), ("d", 1), ("e", 0)])
    assert bodies(drain_get(ch, q)) == ["d", "a", "b", "c", "e"]


def test_max_priority_one(ch):
    """x-max-priority 1: two levels; everything >= 1 shares the top level in FIFO order."""
    q = prio_queue(ch, 1)
    publish_all(ch, q, [("a", 0), ("b", 7), ("c", None), ("d", 1)])
    assert bodies(drain_get(ch, q)) == ["b", "d", "a", "c"]


def test_max_priority_zero_is_fifo(ch):
    """x-max-priority 0 is accepted; every priority maps to the single level 0 -> plain FIFO."""
    q = prio_queue(ch, 0)
    publish_all(ch, q, [("a", 0), ("b", 9), ("c", None), ("d", 255)])
    assert bodies(drain_get(ch, q)) == ["a", "b", "c", "d"]


def test_plain_queue_ignores_priority(ch):
    """Without x-max-priority the priority property has no effect on order."""
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_all(ch, q, [("a", 0), ("b", 9), ("c", None), ("d", 5)])
    assert bodies(drain_get(ch, q)) == ["a", "b", "c", "d"]


def test_fifo_within_each_priority(ch):
    """Many interleaved messages: order is by priority, then by publish order."""
    q = prio_queue(ch, 10)
    items = [(f"{i}", [2, 7, 0, 7, 2, 10][i % 6]) for i in range(30)]
    publish_all(ch, q, items)
    expected = [b for b, _ in sorted(items, key=lambda it: -it[1])]  # stable sort keeps FIFO
    assert bodies(drain_get(ch, q)) == expected


def test_consumer_gets_waiting_messages_in_priority_order(conn, ch):
    """Messages already waiting reach a new consumer highest priority first (prefetch 1 + ack)."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("low", 1), ("none", None), ("high", 5), ("mid", 3), ("high2", 5)])
    got = []

    def on_msg(c, m, p, body):
        got.append(body.decode())
        c.basic_ack(m.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, on_msg)
    pump(conn, lambda: len(got) == 5)
    assert got == ["high", "high2", "mid", "low", "none"]


def test_consumer_unlimited_prefetch_priority_order(conn, ch):
    """With no prefetch limit the whole backlog is pushed at once, still in priority order."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 0), ("b", 2), ("c", 4), ("d", 2), ("e", 4)])
    got = []
    ch.basic_consume(q, lambda c, m, p, body: got.append(body.decode()), auto_ack=True)
    pump(conn, lambda: len(got) == 5)
    assert got == ["c", "e", "b", "d", "a"]


def test_message_count_and_purge_cover_all_priorities(ch):
    """declare-ok message_count and purge-ok message_count count every priority level."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 0), ("b", 5), ("c", 2), ("d", None), ("e", 200)])
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (5, 0)
    assert ch.queue_purge(q).method.message_count == 5
    assert ch.queue_declare(q, passive=True).method.message_count == 0


# --------------------------------------------------------------------------- requeue

def test_nack_requeue_returns_to_priority_level_in_original_position(ch):
    """Requeued messages go back to their own priority level at their original position: a
    higher-priority message published meanwhile still comes first; same-priority messages that were
    never delivered come after the requeued ones."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 1), ("b", 1), ("c", 1), ("d", 1)])
    tags = {}
    for _ in range(3):
        m, _, body = ch.basic_get(q)
        tags[body.decode()] = m.delivery_tag
    assert sorted(tags) == ["a", "b", "c"]
    ch.basic_publish("", q, b"z", pika.BasicProperties(priority=5))
    ch.basic_publish("", q, b"y", pika.BasicProperties(priority=1))
    ch.basic_nack(tags["c"], requeue=True)
    ch.basic_nack(tags["a"], requeue=True)
    assert wait_count(ch, q, 5) == 5
    assert drain_get(ch, q) == [(b"z", False), (b"a", True), (b"c", True), (b"d", False), (b"y", False)]
    # b is still unacked; recover puts it back as well.
    ch.basic_recover(requeue=True)
    assert wait_count(ch, q, 1) == 1
    assert drain_get(ch, q) == [(b"b", True)]


def test_recover_requeues_in_priority_order(ch):
    """basic.recover(requeue) of every unacked message: they come back ordered by priority, then by
    publish order, with redelivered set; a message published afterwards slots in by priority."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 5), ("b", 9), ("c", None), ("d", 5), ("e", 2)])
    for _ in range(5):
        m, _, _ = ch.basic_get(q)
        assert m is not None
    ch.basic_recover(requeue=True)
    ch.basic_publish("", q, b"x", pika.BasicProperties(priority=3))
    assert wait_count(ch, q, 6) == 6
    assert drain_get(ch, q) == [(b"a", True), (b"b", True), (b"d", True), (b"x", False),
                                (b"e", True), (b"c", True)]


def test_channel_close_requeues_in_priority_order(conn, ch):
    """Unacked messages of a closed channel go back by priority and original order."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 1), ("b", 4), ("c", 1), ("d", 4)])
    och = conn.channel()
    for _ in range(2):                      # takes b and d (priority 4)
        m, _, _ = och.basic_get(q)
        assert m is not None
    ch.basic_publish("", q, b"e", pika.BasicProperties(priority=4))
    assert wait_count(ch, q, 3) == 3
    och.close()
    assert wait_count(ch, q, 5) == 5
    assert drain_get(ch, q) == [(b"b", True), (b"d", True), (b"e", False), (b"a", False), (b"c", False)]


# --------------------------------------------------------------------------- consumer priorities

@pytest.mark.parametrize("value,detail", [
    ("5", '"expected integer, got longstr"'),
    (True, '"expected integer, got bool"'),
    (None, '"expected integer, got void"'),
    (decimal.Decimal(1), '"expected integer, got decimal"'),
], ids=["longstr", "bool", "void", "decimal"])
def test_x_priority_invalid_type(ch, value, detail):
    """A non-integer x-priority consume argument closes the channel with 406."""
    q = ch.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(q, lambda *a: None, arguments={"x-priority": value})
    closed_with(ei, 406, invalid_arg("x-priority", q, detail))


@pytest.mark.parametrize("value", [-5, 0, 1, 2 ** 40])
def test_x_priority_any_integer_accepted(ch, value):
    """Negative, zero and huge integers are all valid consumer priorities."""
    q = ch.queue_declare("", exclusive=True).method.queue
    tag = ch.basic_consume(q, lambda *a: None, arguments={"x-priority": value})
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    ch.basic_cancel(tag)


class Recorder:
    """Collects (consumer name, body, delivery_tag) from several channels' consumers."""

    def __init__(self):
        self.got: list[tuple[str, str, int]] = []

    def cb(self, name):
        def on_msg(c, m, p, body):
            self.got.append((name, body.decode(), m.delivery_tag))
        return on_msg

    def names(self):
        return [n for n, _, _ in self.got]

    def by_body(self, start: int = 0):
        """(consumer, body) sorted by body: which consumer got which message. Deliveries on
        different channels may be dispatched by pika in any interleaving."""
        return sorted(((n, b) for n, b, _ in self.got[start:]), key=lambda nb: nb[1])


def consumer(conn, rec, q, name, priority=None, prefetch=0, auto_ack=False):
    chan = conn.channel()
    if prefetch:
        chan.basic_qos(prefetch_count=prefetch)
    args = {"x-priority": priority} if priority is not None else None
    chan.basic_consume(q, rec.cb(name), auto_ack=auto_ack, arguments=args)
    return chan


def test_higher_priority_consumer_gets_everything(conn, ch):
    """While the higher-priority consumer can take messages, lower ones get none (registration
    order does not matter)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    rec = Recorder()
    consumer(conn, rec, q, "low", None, auto_ack=True)
    consumer(conn, rec, q, "high", 10, auto_ack=True)
    consumer(conn, rec, q, "mid", 5, auto_ack=True)
    for i in range(6):
        ch.basic_publish("", q, str(i).encode())
    pump(conn, lambda: len(rec.got) == 6)
    settle(conn)
    assert [(n, b) for n, b, _ in rec.got] == [("high", str(i)) for i in range(6)]


def test_negative_priority_below_default(conn, ch):
    """A consumer with x-priority -1 ranks below one without the argument (priority 0)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    rec = Recorder()
    consumer(conn, rec, q, "neg", -1, auto_ack=True)
    consumer(conn, rec, q, "default", None, auto_ack=True)
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    pump(conn, lambda: len(rec.got) == 4)
    settle(conn)
    assert rec.names() == ["default"] * 4


def test_equal_priorities_round_robin(conn, ch):
    """Consumers sharing the top priority alternate strictly, starting with the first registered;
    a lower-priority consumer gets nothing."""
    q = ch.queue_declare("", exclusive=True).method.queue
    rec = Recorder()
    consumer(conn, rec, q, "low", 0, auto_ack=True)
    consumer(conn, rec, q, "a", 5, auto_ack=True)
    consumer(conn, rec, q, "b", 5, auto_ack=True)
    for i in range(6):
        ch.basic_publish("", q, str(i).encode())
    pump(conn, lambda: len(rec.got) == 6)
    settle(conn)
    assert rec.by_body() == [("a", "0"), ("b", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("b", "5")]


def test_blocked_high_priority_consumer_lets_lower_receive(conn, ch):
    """A high-priority consumer whose prefetch is full is skipped: lower-priority consumers receive.
    As soon as it acks it is served first again."""
    q = ch.queue_declare("", exclusive=True).method.queue
    rec = Recorder()
    high = consumer(conn, rec, q, "high", 10, prefetch=2)
    low = consumer(conn, rec, q, "low", 0, prefetch=1)
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    pump(conn, lambda: len(rec.got) == 3)
    settle(conn)
    assert rec.by_body() == [("high", "0"), ("high", "1"), ("low", "2")]
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    # low acks: it is the only one with credit -> it gets the next message
    low.basic_ack(next(t for n, _, t in rec.got if n == "low"))
    pump(conn, lambda: len(rec.got) == 4)
    # high acks: it outranks low (which is blocked again anyway) -> the last message
    high.basic_ack(next(t for n, _, t in rec.got if n == "high"))
    pump(conn, lambda: len(rec.got) == 5)
    settle(conn)
    assert rec.by_body(3) == [("low", "3"), ("high", "4")]


def test_high_priority_ack_outranks_free_low_consumer(conn, ch):
    """With a backlog, a freed high-priority consumer is served before a low one that also has credit."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 4) == 4
    rec = Recorder()
    high = consumer(conn, rec, q, "high", 10, prefetch=1)
    pump(conn, lambda: len(rec.got) == 1)
    assert [(n, b) for n, b, _ in rec.got] == [("high", "0")]
    low = consumer(conn, rec, q, "low", 0, prefetch=1)
    pump(conn, lambda: len(rec.got) == 2)
    assert rec.got[1][:2] == ("low", "1")
    high.basic_ack(rec.got[0][2])
    pump(conn, lambda: len(rec.got) == 3)
    settle(conn)
    assert [(n, b) for n, b, _ in rec.got[2:]] == [("high", "2")]
    assert low.is_open


def test_cancelled_high_priority_consumer_hands_over(conn, ch):
    """Once the high-priority consumer is cancelled, the lower one receives."""
    q = ch.queue_declare("", exclusive=True).method.queue
    rec = Recorder()
    high_ch = conn.channel()
    tag = high_ch.basic_consume(q, rec.cb("high"), auto_ack=True, arguments={"x-priority": 3})
    consumer(conn, rec, q, "low", None, auto_ack=True)
    ch.basic_publish("", q, b"1")
    pump(conn, lambda: len(rec.got) == 1)
    high_ch.basic_cancel(tag)
    ch.basic_publish("", q, b"2")
    pump(conn, lambda: len(rec.got) == 2)
    settle(conn)
    assert [(n, b) for n, b, _ in rec.got] == [("high", "1"), ("low", "2")]


def test_consumer_priority_with_priority_queue(conn, ch):
    """Both features together: the high-priority consumer gets the backlog in message-priority order."""
    q = prio_queue(ch, 5)
    publish_all(ch, q, [("a", 1), ("b", 5), ("c", 3)])
    rec = Recorder()
    consumer(conn, rec, q, "low", 0, auto_ack=True)
    pump(conn, lambda: len(rec.got) == 3)
    assert [(n, b) for n, b, _ in rec.got] == [("low", "b"), ("low", "c"), ("low", "a")]
    consumer(conn, rec, q, "high", 1, auto_ack=True)
    for body, prio in [("x", 0), ("y", 5)]:
        ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=prio))
    pump(conn, lambda: len(rec.got) == 5)
    settle(conn)
    assert [(n, b) for n, b, _ in rec.got[3:]] == [("high", "x"), ("high", "y")]
