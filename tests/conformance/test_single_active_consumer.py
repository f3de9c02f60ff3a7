"""Conformance tests for single active consumer queues (``x-single-active-consumer: true``),
classic and quorum.

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
RabbitMQ 3.10's classic-queue hand-over after a basic.cancel (the new active consumer is not served
until a later requeue, consumer or channel close) is pinned too, in ``test_cancel_hands_over_backlog``.
"""
from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest
from pamqp import commands as C

from .helpers import closed_with, invalid_arg, publish, wait_count

SAC = "x-single-active-consumer"
QTYPES = ["classic", "quorum"]


# --------------------------------------------------------------------------- helpers

class Deliveries:
    """Records deliveries of several consumers, possibly on several connections."""

    def __init__(self, *conns: pika.BlockingConnection):
        self.conns = list(conns)
        self.got: list[tuple[str, str, bool, int]] = []   # (consumer, body, redelivered, tag)

    def cb(self, name: str):
        def on_msg(c, m, p, body):
            self.got.append((name, body.decode(), m.redelivered, m.delivery_tag))
        return on_msg

    def pump(self, until=lambda: False, timeout: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            for c in self.conns:
                if c.is_open:
                    c.process_data_events(0.01)

    def wait(self, n: int, timeout: float = 1.0) -> None:
        """Pump until n deliveries were recorded, then a little longer to catch extra ones."""
        self.pump(lambda: len(self.got) >= n, timeout)
        self.pump(timeout=0.15)

    def take(self) -> list[tuple[str, str, bool]]:
        out = [(n, b, r) for n, b, r, _ in self.got]
        self.got.clear()
        return out


def declare_sac(ch, q: str, qtype: str, value=True):
    args = {SAC: value, "x-queue-type": qtype}
    return ch.queue_declare(q, durable=True, arguments=args).method


def sac_queue(ch, uniq, cleanup, qtype: str) -> str:
    q = f"{uniq}.{qtype}"
    cleanup.append(q)
    declare_sac(ch, q, qtype)
    return q


def consume(conn, rec: Deliveries, q: str, name: str, prefetch: int = 0, auto_ack: bool = False,
            **kw):
    chan = conn.channel()
    if prefetch:
        chan.basic_qos(prefetch_count=prefetch)
    tag = chan.basic_consume(q, rec.cb(name), auto_ack=auto_ack, **kw)
    return chan, tag


# --------------------------------------------------------------------------- declare

@pytest.mark.parametrize("value", [True, False])
def test_sac_bool_accepted(ch, uniq, cleanup, value):
    """true and false are both valid; redeclaring with the same value is fine."""
    q = uniq + ".q"
    cleanup.append(q)
    ok = ch.queue_declare(q, arguments={SAC: value}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    assert ch.queue_declare(q, arguments={SAC: value}).method.queue == q


@pytest.mark.parametrize("value,type_name", [
    ("yes", "longstr"), (1, "signedint"), (0, "signedint"), (None, "void"), (b"t", "binary"),
], ids=["longstr", "one", "zero", "void", "binary"])
def test_sac_invalid_type(connect, uniq, value, type_name):
    """A non-bool x-single-active-consumer: 406 with {unacceptable_type,<type>}."""
    q = uniq + ".bad"
    ch = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={SAC: value})
    closed_with(ei, 406, invalid_arg(SAC, q, f"{{unacceptable_type,{type_name}}}"))


@pytest.mark.parametrize("first,second,detail", [
    (True, None, "received none but current is the value 'true' of type 'bool'"),
    (True, False, "received 'false' but current is 'true'"),
    (False, None, "received none but current is the value 'false' of type 'bool'"),
    (False, True, "received 'true' but current is 'false'"),
    (None, False, "received the value 'false' of type 'bool' but current is none"),
    (None, True, "received the value 'true' of type 'bool' but current is none"),
], ids=["true-none", "true-false", "false-none", "false-true", "none-false", "none-true"])
def test_sac_redeclare_equivalence(connect, uniq, cleanup, first, second, detail):
    """The argument takes part in equivalence; an explicit false is NOT equivalent to absent."""
    q = uniq + ".q"
    cleanup.append(q)
    ch = connect().channel()
    ch.queue_declare(q, arguments={} if first is None else {SAC: first})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={} if second is None else {SAC: second})
    closed_with(ei, 406, f"PRECONDITION_FAILED - inequivalent arg '{SAC}' for queue '{q}' in vhost '/': "
                         f"{detail}")


# --------------------------------------------------------------------------- delivery

@pytest.mark.parametrize("qtype", QTYPES)
def test_only_first_consumer_receives(conn, ch, uniq, cleanup, qtype):
    """Only the first registered consumer gets messages. declare-ok consumer_count counts every
    consumer for classic queues but only the active one for quorum queues."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    for name in ("A", "B", "C"):
        consume(conn, rec, q, name)
    publish(ch, q, *"01234")
    rec.wait(5)
    assert rec.take() == [("A", str(i), False) for i in range(5)]
    assert ch.queue_declare(q, passive=True).method.consumer_count == (3 if qtype == "classic" else 1)


@pytest.mark.parametrize("qtype", QTYPES)
def test_blocked_active_consumer_does_not_pass_messages_on(conn, ch, uniq, cleanup, qtype):
    """When the active consumer's prefetch is full the others still get nothing; messages wait."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    consume(conn, rec, q, "A", prefetch=2)
    consume(conn, rec, q, "B")
    consume(conn, rec, q, "C")
    publish(ch, q, *"01234")
    rec.wait(2)
    assert rec.take() == [("A", "0", False), ("A", "1", False)]
    assert wait_count(ch, q, 3) == 3


# After the active consumer's channel closes, the next consumer gets the closed channel's unacked
# messages (redelivered) and the backlog. pika cancels a channel's consumers before it closes the
# channel, and the order depends on what the queue does on that basic.cancel:
# classic (3.10): the cancel hands over but does not serve the new active consumer; the close then
#   requeues the unacked messages to their original place and serves: unacked first;
# quorum: the cancel serves the new active consumer (the backlog), the close then returns the
#   unacked messages: backlog first.
# Without the cancel (a raw channel.close, a dropped connection) both types serve the unacked first
# (test_raw_channel_close_serves_unacked_first).
CLOSE_ORDER = {
    "classic": [("B", "0", True), ("B", "1", True), ("B", "2", False), ("B", "3", False), ("B", "4", False)],
    "quorum": [("B", "2", False), ("B", "3", False), ("B", "4", False), ("B", "0", True), ("B", "1", True)],
}


@pytest.mark.parametrize("qtype", QTYPES)
def test_channel_close_hands_over_with_redelivery(conn, ch, uniq, cleanup, qtype):
    """Closing the active consumer's channel activates the next registered consumer, which gets the
    closed channel's unacked messages (redelivered=true) and the backlog (order: CLOSE_ORDER)."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    a, _ = consume(conn, rec, q, "A", prefetch=2)
    consume(conn, rec, q, "B")
    consume(conn, rec, q, "C")
    publish(ch, q, *"01234")
    rec.wait(2)
    assert rec.take() == [("A", "0", False), ("A", "1", False)]
    a.close()
    rec.wait(5)
    assert rec.take() == CLOSE_ORDER[qtype]
    publish(ch, q, "5")
    rec.wait(1)
    assert rec.take() == [("B", "5", False)]


@pytest.mark.parametrize("qtype", QTYPES)
def test_connection_close_hands_over(connect, conn, ch, uniq, cleanup, qtype):
    """Same when the active consumer's whole connection goes away (same order rule as CLOSE_ORDER)."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    other = connect()
    rec = Deliveries(conn, other)
    consume(other, rec, q, "A", prefetch=1)
    consume(conn, rec, q, "B")
    publish(ch, q, "0", "1")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    other.close()
    rec.wait(2)
    expected = [("B", "0", True), ("B", "1", False)]
    assert rec.take() == (expected if qtype == "classic" else expected[::-1])


@pytest.mark.parametrize("qtype", QTYPES)
def test_next_active_is_next_registered_not_lowest_channel(conn, ch, uniq, cleanup, qtype):
    """Takeover follows registration order, whatever the channel numbers."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    ch_a, ch_late, ch_b = conn.channel(), conn.channel(), conn.channel()
    ch_a.basic_consume(q, rec.cb("A"), auto_ack=True)
    ch_b.basic_consume(q, rec.cb("B"), auto_ack=True)
    ch_late.basic_consume(q, rec.cb("C"), auto_ack=True)
    ch_a.close()
    publish(ch, q, "x")
    rec.wait(1)
    assert rec.take() == [("B", "x", False)]
    ch_b.close()
    publish(ch, q, "y")
    rec.wait(1)
    assert rec.take() == [("C", "y", False)]


@pytest.mark.parametrize("qtype", QTYPES)
def test_cancel_hands_over_and_unacked_stay_with_cancelled_channel(conn, ch, uniq, cleanup, qtype):
    """basic.cancel of the active consumer activates the next one for new messages. Its unacked
    messages are NOT moved: they stay with its channel (which may still ack/nack them) until that
    channel closes, and are then redelivered to the new active consumer."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", prefetch=1)
    consume(conn, rec, q, "B")
    consume(conn, rec, q, "C")
    publish(ch, q, "0")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    a.basic_cancel(tag_a)
    publish(ch, q, "1")
    rec.wait(1)
    assert rec.take() == [("B", "1", False)]
    assert wait_count(ch, q, 0) == 0
    a.close()
    rec.wait(1)
    assert rec.take() == [("B", "0", True)]


@pytest.mark.parametrize("qtype", QTYPES)
def test_cancelled_consumer_can_still_ack(conn, ch, uniq, cleanup, qtype):
    """After cancelling, the old active consumer's channel can still ack its deliveries: they are
    then gone for good (not redelivered when that channel closes)."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", prefetch=1)
    consume(conn, rec, q, "B", auto_ack=True)
    publish(ch, q, "0")
    rec.wait(1)
    (_, _, _, dtag), = rec.got
    rec.take()
    a.basic_cancel(tag_a)
    a.basic_ack(dtag)
    a.close()
    publish(ch, q, "1")
    rec.wait(1)
    assert rec.take() == [("B", "1", False)]
    assert ch.queue_declare(q, passive=True).method.message_count == 0


@pytest.mark.parametrize("qtype", QTYPES)
def test_cancel_hands_over_backlog(conn, ch, uniq, cleanup, qtype):
    """After the active consumer cancels, the next one takes over. A quorum queue sends it the
    messages already waiting at once. A RabbitMQ 3.10 classic queue does not (basic.cancel does not
    run its delivery loop): the backlog waits for the next requeue, consumer or channel close, so when
    the cancelled consumer's channel closes its unacked message comes first, redelivered."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", prefetch=1)
    consume(conn, rec, q, "B")
    publish(ch, q, "0", "1", "2")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    a.basic_cancel(tag_a)
    rec.wait(2, timeout=0.3)
    if qtype == "quorum":
        assert rec.take() == [("B", "1", False), ("B", "2", False)]
        a.close()
        rec.wait(1)
        assert rec.take() == [("B", "0", True)]
    else:
        assert rec.take() == []
        a.close()
        rec.wait(3)
        assert rec.take() == [("B", "0", True), ("B", "1", False), ("B", "2", False)]


def raw_channel_close(c, channel: int) -> None:
    """channel.close on a raw connection (no basic.cancel first), skipping what arrives before the
    close-ok."""
    c.send_method(channel, C.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    while not isinstance(c.read_frame_skip_heartbeats()[1], C.Channel.CloseOk):
        pass


@pytest.mark.parametrize("event", ["nack", "consume", "waiting-consumer-channel-close"])
def test_classic_cancel_then_next_requeue_or_consumer_serves_the_new_active(rawc, conn, ch, uniq, cleanup, event):
    """Classic: after the active consumer's basic.cancel the new active consumer is served at the next
    requeue (here the cancelled consumer's nack), new consumer, or close of a channel with a consumer
    on the queue. An ack or a basic.get does not serve it."""
    q = sac_queue(ch, uniq, cleanup, "classic")
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", prefetch=1)
    consume(conn, rec, q, "B")
    w = rawc()
    w.open_channel(1)
    w.send_method(1, C.Basic.Consume(queue=q, consumer_tag="W"))
    w.expect(C.Basic.ConsumeOk, 1)
    publish(ch, q, "0", "1", "2", "3")
    rec.wait(1)
    (_, _, _, dtag), = rec.got
    rec.take()
    a.basic_cancel(tag_a)
    assert ch.basic_get(q, auto_ack=True)[2] == b"1"
    rec.wait(1, timeout=0.3)
    assert rec.take() == []
    if event == "nack":
        a.basic_nack(dtag, requeue=True)
        rec.wait(3)
        assert rec.take() == [("B", "0", True), ("B", "2", False), ("B", "3", False)]
        return
    a.basic_ack(dtag)
    rec.wait(1, timeout=0.3)
    assert rec.take() == []
    if event == "consume":
        consume(conn, rec, q, "C")
    else:
        raw_channel_close(w, 1)     # W's consumer goes with its channel (no basic.cancel first)
    rec.wait(2)
    assert rec.take() == [("B", "2", False), ("B", "3", False)]


def test_classic_cancel_then_empty_queue_delivers_new_messages(conn, ch, uniq, cleanup):
    """Classic: while the new active consumer waits to be served after a basic.cancel, a message
    reaching an EMPTY queue (the backlog taken by basic.get) is delivered to it as usual."""
    q = sac_queue(ch, uniq, cleanup, "classic")
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", prefetch=1)
    consume(conn, rec, q, "B")
    publish(ch, q, "0", "1")
    rec.wait(1)
    rec.take()
    a.basic_cancel(tag_a)
    assert ch.basic_get(q, auto_ack=True)[2] == b"1"
    publish(ch, q, "2", "3")
    rec.wait(2)
    assert rec.take() == [("B", "2", False), ("B", "3", False)]


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("prefetch", [1, 2])
@pytest.mark.parametrize("how", ["channel-close", "connection-drop"])
def test_raw_channel_close_serves_unacked_first(rawc, conn, ch, uniq, cleanup, qtype, prefetch, how):
    """When the active consumer goes away without a basic.cancel (channel.close from a client that
    does not cancel first, or the connection dropping), both queue types hand over to the next
    consumer and send it the unacked messages first, redelivered and in their original order, then
    the backlog."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Basic.Qos(prefetch_count=prefetch))
    c.expect(C.Basic.QosOk, 1)
    c.send_method(1, C.Basic.Consume(queue=q, consumer_tag="A"))
    c.expect(C.Basic.ConsumeOk, 1)
    rec = Deliveries(conn)
    consume(conn, rec, q, "B")
    publish(ch, q, *"01234")
    assert wait_count(ch, q, 5 - prefetch) == 5 - prefetch
    if how == "channel-close":
        raw_channel_close(c, 1)
    else:
        c.shutdown()
    rec.wait(5)
    assert rec.take() == [("B", str(i), i < prefetch) for i in range(5)]


@pytest.mark.parametrize("qtype", QTYPES)
def test_last_consumer_gone_then_new_consumer_gets_backlog(conn, ch, uniq, cleanup, qtype):
    """With no consumer left, messages wait; the next consumer to register becomes active."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    a, _ = consume(conn, rec, q, "A", prefetch=1)
    publish(ch, q, "0", "1")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    a.close()
    assert wait_count(ch, q, 2) == 2
    consume(conn, rec, q, "D", auto_ack=True)
    rec.wait(2)
    assert rec.take() == [("D", "0", True), ("D", "1", False)]


@pytest.mark.parametrize("qtype,expected", [("classic", "C"), ("quorum", "B")])
def test_takeover_and_consumer_priority(conn, ch, uniq, cleanup, qtype, expected):
    """x-priority does not change who is active first (the first registered). On takeover after a
    cancel, a RabbitMQ 3.10 classic queue picks the highest-priority waiting consumer, a quorum
    queue the next registered one."""
    q = sac_queue(ch, uniq, cleanup, qtype)
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", auto_ack=True, arguments={"x-priority": 0})
    consume(conn, rec, q, "B", auto_ack=True, arguments={"x-priority": 1})
    consume(conn, rec, q, "C", auto_ack=True, arguments={"x-priority": 10})
    publish(ch, q, "0")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    a.basic_cancel(tag_a)
    publish(ch, q, "1")
    rec.wait(1)
    assert rec.take() == [(expected, "1", False)]


# --------------------------------------------------------------------------- exclusive / get

@pytest.mark.parametrize("with_consumer", [False, True])
def test_classic_sac_refuses_exclusive_consume(conn, ch, uniq, cleanup, with_consumer):
    """An exclusive basic.consume on a classic SAC queue is refused with 403 even with no consumer."""
    q = sac_queue(ch, uniq, cleanup, "classic")
    if with_consumer:
        conn.channel().basic_consume(q, lambda *a: None)
    chan = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        chan.basic_consume(q, lambda *a: None, exclusive=True)
    closed_with(ei, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")


def test_quorum_sac_allows_exclusive_consume(conn, ch, uniq, cleanup):
    """A quorum SAC queue accepts an exclusive consumer, which then is the active consumer."""
    q = sac_queue(ch, uniq, cleanup, "quorum")
    rec = Deliveries(conn)
    consume(conn, rec, q, "X", auto_ack=True, exclusive=True)
    publish(ch, q, "0")
    rec.wait(1)
    assert rec.take() == [("X", "0", False)]


def test_quorum_sac_exclusive_consumer_waits_its_turn(conn, ch, uniq, cleanup):
    """The exclusive flag means nothing to a quorum queue: an exclusive consume beside the active
    consumer is accepted and waits like any other; it takes over when the active one goes."""
    q = sac_queue(ch, uniq, cleanup, "quorum")
    rec = Deliveries(conn)
    a, tag_a = consume(conn, rec, q, "A", auto_ack=True)
    consume(conn, rec, q, "X", auto_ack=True, exclusive=True)
    publish(ch, q, "0")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    a.basic_cancel(tag_a)
    publish(ch, q, "1")
    rec.wait(1)
    assert rec.take() == [("X", "1", False)]


def test_classic_sac_basic_get_allowed(conn, ch, uniq, cleanup):
    """basic.get works on a classic SAC queue, even beside an active consumer."""
    q = sac_queue(ch, uniq, cleanup, "classic")
    rec = Deliveries(conn)
    consume(conn, rec, q, "A", prefetch=1)
    publish(ch, q, "0", "1")
    rec.wait(1)
    assert rec.take() == [("A", "0", False)]
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert (body, m.message_count) == (b"1", 0)


def test_quorum_sac_basic_get_refused(ch, uniq, cleanup):
    """basic.get on a quorum SAC queue: 405 RESOURCE_LOCKED."""
    q = sac_queue(ch, uniq, cleanup, "quorum")
    publish(ch, q, "0")
    assert wait_count(ch, q, 1) == 1
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_get(q)
    closed_with(ei, 405, f"RESOURCE_LOCKED - cannot obtain access to locked queue '{q}' in vhost '/'. "
                         "basic.get operations are not supported by quorum queues with single active consumer")


def test_sac_false_is_ordinary_round_robin(conn, ch, uniq, cleanup):
    """x-single-active-consumer=false: consumers share messages as usual."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={SAC: False})
    rec = Deliveries(conn)
    consume(conn, rec, q, "A", auto_ack=True)
    consume(conn, rec, q, "B", auto_ack=True)
    publish(ch, q, *"0123")
    rec.wait(4)
    got = sorted(rec.take(), key=lambda t: t[1])
    assert [n for n, _, _ in got] == ["A", "B", "A", "B"]
