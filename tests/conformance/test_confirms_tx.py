"""Conformance tests for publisher confirms (confirm.*) and transactions (tx.*).

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
"""
from __future__ import annotations

import asyncio
import time

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from .helpers import closed_with, count, drain_get, wait_count


# --------------------------------------------------------------------------- publisher confirms

async def test_confirms_aio_pika_increasing_delivery_tags(broker_url):
    """After confirm.select each publish is acked with delivery tags 1, 2, 3, ... (aio-pika)."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True)
        tags = []
        for i in range(5):
            confirmation = await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
            assert isinstance(confirmation, spec.Basic.Ack)
            assert confirmation.multiple is False
            tags.append(confirmation.delivery_tag)
        assert tags == [1, 2, 3, 4, 5]
        assert (await ch.declare_queue(q.name, passive=True)).declaration_result.message_count == 5


async def test_confirms_aio_pika_concurrent_publishes_all_acked(broker_url, uniq):
    """Many concurrent confirmed publishes (possibly acked with multiple=True) all resolve as acks."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True)
        results = await asyncio.gather(*[
            ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q.name) for _ in range(50)
        ])
        assert all(isinstance(r, spec.Basic.Ack) for r in results)
        # Unroutable (non-mandatory) messages are acked too.
        r = await ch.default_exchange.publish(aio_pika.Message(b"y"), routing_key=uniq + ".noq", mandatory=False)
        assert isinstance(r, spec.Basic.Ack)
        assert (await ch.declare_queue(q.name, passive=True)).declaration_result.message_count == 50


def test_confirms_raw_tags_and_coverage(rawc):
    """confirm-select-ok, then acks cover publish sequence numbers 1..N in increasing order."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk, 1)
    for i in range(10):
        r.publish(1, "", q, str(i).encode())
    confirmed = 0
    last = 0
    while confirmed < 10:
        ack = r.expect(spec.Basic.Ack, 1)
        assert ack.delivery_tag > last
        confirmed = ack.delivery_tag if ack.multiple else confirmed + 1
        assert ack.multiple or ack.delivery_tag == confirmed
        last = ack.delivery_tag
    assert last == 10


def test_confirm_select_twice_ok(rawc, uniq):
    """confirm.select on a channel already in confirm mode is answered with select-ok again."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk, 1)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk, 1)
    r.publish(1, "", uniq + ".noq", b"x")
    ack = r.expect(spec.Basic.Ack, 1)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_confirm_tags_independent_of_delivery_tags(rawc):
    """Publish sequence numbers are separate from delivery tags of messages received on the channel."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    r.publish(1, "", q, b"before-confirm")  # not counted: the channel is not yet in confirm mode
    r.send_method(1, spec.Basic.Get(queue=q))
    assert r.expect(spec.Basic.GetOk, 1).delivery_tag == 1
    r.read_frame()
    r.read_frame()  # header + body
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk, 1)
    r.publish(1, "", q, b"a")
    ack = r.expect(spec.Basic.Ack, 1)
    assert ack.delivery_tag == 1
    r.send_method(1, spec.Basic.Get(queue=q))
    assert r.expect(spec.Basic.GetOk, 1).delivery_tag == 2


def test_confirm_unroutable_mandatory_return_before_ack(rawc, uniq):
    """In confirm mode a mandatory unroutable message gets basic.return (312 NO_ROUTE) then basic.ack."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk, 1)
    r.publish(1, "amq.direct", uniq + ".rk", b"ret", mandatory=True)
    ret = r.expect(spec.Basic.Return, 1)
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == \
        (312, "NO_ROUTE", "amq.direct", uniq + ".rk")
    chan, header = r.read_frame()
    assert header.body_size == 3
    chan, body = r.read_frame()
    assert body.value == b"ret"
    ack = r.expect(spec.Basic.Ack, 1)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_confirm_unroutable_non_mandatory_acked(rawc, uniq):
    """In confirm mode a non-mandatory unroutable message is simply acked."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Confirm.Select())
    r.expect(spec.Confirm.SelectOk, 1)
    r.publish(1, "amq.direct", uniq + ".rk", b"x")
    ack = r.expect(spec.Basic.Ack, 1)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_pika_confirm_delivery(conn, ch, uniq):
    """pika BlockingChannel.confirm_delivery: routable and non-mandatory unroutable publishes are acked."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())  # raises on nack/return; returns after the ack
    ch.basic_publish("amq.direct", uniq + ".nowhere", b"dropped")
    assert count(ch, q) == 3


def test_pika_confirm_mandatory_unroutable(conn, ch, uniq):
    """pika confirm mode: a mandatory unroutable publish is returned before its ack (UnroutableError)."""
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        ch.basic_publish("", uniq + ".noq", b"m", mandatory=True)
    [returned] = ei.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.method.routing_key == uniq + ".noq"
    assert returned.body == b"m"
    assert ch.is_open


def test_confirm_select_after_tx_select(ch):
    """confirm.select on a transactional channel closes it with 406."""
    ch.tx_select()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
    closed_with(ei, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


def test_tx_select_after_confirm_select(ch):
    """tx.select on a channel in confirm mode closes it with 406."""
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.tx_select()
    closed_with(ei, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


# --------------------------------------------------------------------------- transactions

def test_tx_commit_delivers(connect):
    """Publishes inside a transaction are invisible until tx.commit, then all are enqueued in order."""
    c = connect()
    observer = c.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    ch = c.channel()
    ch.tx_select()
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    time.sleep(0.1)
    assert count(observer, q) == 0
    ch.tx_commit()
    assert count(observer, q) == 3
    assert drain_get(observer, q) == [(b"0", False), (b"1", False), (b"2", False)]


def test_tx_rollback_discards(connect):
    """tx.rollback discards uncommitted publishes; the channel stays transactional."""
    c = connect()
    observer = c.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    ch = c.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"discard-me")
    ch.tx_rollback()
    ch.basic_publish("", q, b"keep-me")
    ch.tx_commit()
    assert drain_get(observer, q) == [(b"keep-me", False)]


def test_tx_uncommitted_publishes_dropped_on_channel_close(connect):
    """Publishes of a transaction never committed are dropped when the channel closes."""
    c = connect()
    observer = c.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    ch = c.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"lost")
    ch.close()
    time.sleep(0.05)
    assert count(observer, q) == 0


def test_tx_ack_takes_effect_only_on_commit(connect):
    """An ack inside a transaction is applied at commit; before commit, closing the channel requeues the message."""
    c = connect()
    observer = c.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    observer.basic_publish("", q, b"a")
    observer.basic_publish("", q, b"b")
    assert wait_count(observer, q, 2) == 2

    ch = c.channel()
    ch.tx_select()
    m, _, body = ch.basic_get(q)
    assert body == b"a"
    ch.basic_ack(m.delivery_tag)
    ch.close()  # uncommitted ack is discarded -> 'a' requeued
    assert wait_count(observer, q, 2) == 2

    ch = c.channel()
    ch.tx_select()
    m, _, body = ch.basic_get(q)
    assert (body, m.redelivered) == (b"a", True)
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    time.sleep(0.05)
    assert drain_get(observer, q) == [(b"b", False)]


def test_tx_rollback_discards_ack_but_keeps_message_unacked(connect):
    """After tx.rollback an uncommitted ack is forgotten: the delivery stays unacked and can be acked again."""
    c = connect()
    observer = c.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    observer.basic_publish("", q, b"a")
    assert wait_count(observer, q, 1) == 1
    ch = c.channel()
    ch.tx_select()
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    assert count(observer, q) == 0  # still outstanding, not requeued by rollback
    ch.basic_ack(m.delivery_tag)  # same tag is still valid
    ch.tx_commit()
    ch.close()
    time.sleep(0.05)
    assert count(observer, q) == 0


def test_tx_reject_requeue_applied_on_commit(connect):
    """A reject(requeue=True) inside a transaction only requeues at commit."""
    c = connect()
    observer = c.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    observer.basic_publish("", q, b"r")
    assert wait_count(observer, q, 1) == 1
    ch = c.channel()
    ch.tx_select()
    m, _, _ = ch.basic_get(q)
    ch.basic_reject(m.delivery_tag, requeue=True)
    time.sleep(0.05)
    assert count(observer, q) == 0
    ch.tx_commit()
    assert wait_count(observer, q, 1) == 1
    assert drain_get(observer, q) == [(b"r", True)]


def test_tx_mandatory_return_sent_at_commit(conn, ch, uniq):
    """In a transaction, basic.return for an unroutable mandatory message is sent when committing."""
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append((m.reply_code, m.reply_text, b)))
    ch.tx_select()
    ch.basic_publish("", uniq + ".noq", b"m", mandatory=True)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        conn.process_data_events(0.02)
    assert returns == []
    ch.tx_commit()
    deadline = time.monotonic() + 1
    while not returns and time.monotonic() < deadline:
        conn.process_data_events(0.02)
    assert returns == [(312, "NO_ROUTE", b"m")]


def test_tx_select_twice_ok(ch):
    """tx.select on an already transactional channel is answered with select-ok again."""
    ch.tx_select()
    ch.tx_select()
    ch.tx_commit()
    assert ch.is_open


def test_tx_commit_with_nothing_to_commit(ch):
    """tx.commit and tx.rollback with no pending work succeed."""
    ch.tx_select()
    ch.tx_commit()
    ch.tx_rollback()
    ch.tx_commit()
    assert ch.is_open


def test_tx_commit_without_select(ch):
    """tx.commit on a non-transactional channel closes it with 406."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.tx_commit()
    closed_with(ei, 406, "PRECONDITION_FAILED - channel is not transactional")


def test_tx_rollback_without_select(ch):
    """tx.rollback on a non-transactional channel closes it with 406."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.tx_rollback()
    closed_with(ei, 406, "PRECONDITION_FAILED - channel is not transactional")


def test_tx_raw_methods(rawc):
    """tx.select-ok / commit-ok / rollback-ok arrive as the right methods; a non-tx commit gets channel.close 406."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Tx.Commit())
    close = r.expect(spec.Channel.Close, 1)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == \
        (406, "PRECONDITION_FAILED - channel is not transactional", 90, 20)
    r.send_method(1, spec.Channel.CloseOk())
    r.open_channel(2)
    r.send_method(2, spec.Tx.Select())
    r.expect(spec.Tx.SelectOk, 2)
    r.send_method(2, spec.Tx.Rollback())
    r.expect(spec.Tx.RollbackOk, 2)
    r.send_method(2, spec.Tx.Commit())
    r.expect(spec.Tx.CommitOk, 2)


async def test_tx_aio_pika(broker_url):
    """aio-pika transaction context: commit delivers, rollback on exception discards."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.declare_queue("", exclusive=True)
        async with ch.transaction():
            await ch.default_exchange.publish(aio_pika.Message(b"committed"), routing_key=q.name)
        with pytest.raises(RuntimeError):
            async with ch.transaction():
                await ch.default_exchange.publish(aio_pika.Message(b"rolled-back"), routing_key=q.name)
                raise RuntimeError("abort")
        await asyncio.sleep(0.05)
        m = await q.get(no_ack=True, timeout=2)
        assert m.body == b"committed"
        assert await q.get(no_ack=True, fail=False) is None


def test_tx_publish_is_routed_at_publish_time_not_at_commit(conn, uniq):
    """A transactional publish is routed when published and delivered at commit: a binding
    added between the two does not receive it, a queue bound before does."""
    ch = conn.channel()
    x = f"{uniq}.fan"
    ch.exchange_declare(x, "fanout", auto_delete=False)
    try:
        early = ch.queue_declare("", exclusive=True).method.queue
        late = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(early, x)
        ch.tx_select()
        ch.basic_publish(x, "", b"routed-now")
        ch.queue_bind(late, x)
        assert ch.queue_declare(early, passive=True).method.message_count == 0   # not before commit
        ch.tx_commit()
        assert ch.queue_declare(early, passive=True).method.message_count == 1
        assert ch.queue_declare(late, passive=True).method.message_count == 0
    finally:
        conn.channel().exchange_delete(x)


def test_tx_publish_to_default_exchange_reaches_a_queue_declared_before_commit(conn, uniq):
    """The default exchange routes to a queue *name*: a transactional publish to a queue that
    does not exist yet is delivered if the queue exists at commit."""
    ch = conn.channel()
    name = f"{uniq}.later"
    ch.tx_select()
    ch.basic_publish("", name, b"early")
    ch.queue_declare(name, exclusive=True)
    ch.tx_commit()
    m, _, body = ch.basic_get(name, auto_ack=True)
    assert body == b"early"


def test_requeue_position_follows_enqueue_order_not_publish_order(connect, uniq):
    """A transactional message enters the queue at commit: a message published after it but
    enqueued before it is, when requeued, put back ahead of it."""
    c = connect()
    txch, ch, getter = c.channel(), c.channel(), c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    txch.tx_select()
    txch.basic_publish("", q, b"tx-first-published")
    ch.basic_publish("", q, b"plain")
    assert wait_count(ch, q, 1) == 1                # (publishes are asynchronous)
    m, _, body = getter.basic_get(q)
    assert body == b"plain"
    txch.tx_commit()
    getter.close()                                  # "plain" goes back to its place
    assert wait_count(ch, q, 2) == 2                # (RabbitMQ requeues asynchronously)
    bodies = []
    for _ in range(2):
        m, _, body = ch.basic_get(q, auto_ack=True)
        bodies.append((body, m.redelivered))
    assert bodies == [(b"plain", True), (b"tx-first-published", False)]


@pytest.mark.parametrize("via", ["routing-key", "CC", "BCC"])
def test_tx_publish_to_the_default_exchange_reaches_a_queue_declared_before_the_commit(connect, uniq, via):
    """A transactional publish to the default exchange is routed to queue *names*, its CC and BCC
    keys included, so a queue declared between the publish and tx.commit gets the message
    (rabbit_exchange:route of the default exchange names a queue per key; the names are looked up
    at the commit; lifecycle seed 22877)."""
    conn = connect()
    tx = conn.channel()
    tx.tx_select()
    q = uniq + ".late"
    key, headers = (q, None) if via == "routing-key" else (uniq + ".none", {via: [q]})
    tx.basic_publish("", key, b"m", pika.BasicProperties(headers=headers))
    other = conn.channel()
    other.queue_declare(q, exclusive=True)
    tx.tx_commit()
    assert wait_count(other, q, 1) == 1
    m, p, body = other.basic_get(q, auto_ack=True)
    assert body == b"m" and "BCC" not in (p.headers or {})
