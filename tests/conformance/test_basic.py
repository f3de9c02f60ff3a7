"""Conformance tests for basic.* methods: publish/return, consume/cancel, get, ack/nack/reject,
recover, qos, delivery order/requeue, and message property round-trips.

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
"""
from __future__ import annotations

import asyncio
import datetime
import decimal
import re
import struct
import time

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from rawamqp import RawConnection

from .helpers import closed_with, drain_get, pump, settle, wait_count

CTAG_RE = re.compile(r"^amq\.ctag-[A-Za-z0-9_-]{22}$")


# --------------------------------------------------------------------------- publish / mandatory

def test_mandatory_unroutable_returned(conn, ch, uniq):
    """A mandatory message no queue receives comes back as basic.return 312 NO_ROUTE with body and properties."""
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append((m, p, b)))
    ch.basic_publish("amq.direct", uniq + ".nowhere", b"body",
                     pika.BasicProperties(message_id="mid", headers={"h": "v"}), mandatory=True)
    pump(conn, lambda: returns)
    assert len(returns) == 1
    m, p, b = returns[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (312, "NO_ROUTE", "amq.direct", uniq + ".nowhere")
    assert b == b"body"
    assert p.message_id == "mid" and p.headers == {"h": "v"}


def test_mandatory_default_exchange_missing_queue_returned(conn, ch, uniq):
    """Mandatory publish to the default exchange for a missing queue is returned with 312 NO_ROUTE, exchange ''."""
    returns = []
    ch.add_on_return_callback(lambda c, m, p, b: returns.append((m, b)))
    ch.basic_publish("", uniq + ".noq", b"x", mandatory=True)
    pump(conn, lambda: returns)
    assert [(m.reply_code, m.reply_text, m.exchange, m.routing_key, b) for m, b in returns] == \
        [(312, "NO_ROUTE", "", uniq + ".noq", b"x")]


def test_mandatory_routable_not_returned(conn, ch):
    """A mandatory message that reaches a queue is not returned."""
    returns = []
    ch.add_on_return_callback(lambda *a: returns.append(a))
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x", mandatory=True)
    assert wait_count(ch, q, 1) == 1
    settle(conn, 0.1)
    assert returns == []


def test_non_mandatory_unroutable_dropped(conn, ch, uniq):
    """A non-mandatory unroutable message is silently dropped; the channel stays open."""
    returns = []
    ch.add_on_return_callback(lambda *a: returns.append(a))
    ch.basic_publish("amq.direct", uniq + ".nowhere", b"x")
    ch.basic_publish("", uniq + ".noq", b"y")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"ok")
    assert wait_count(ch, q, 1) == 1
    settle(conn, 0.1)
    assert returns == []
    assert ch.is_open


def test_publish_user_id_mismatch(ch):
    """A user_id property different from the authenticated user closes the channel with 406."""
    ch.basic_publish("", "whatever", b"x", pika.BasicProperties(user_id="bob"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    closed_with(ei, 406, "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'")


# --------------------------------------------------------------------------- consume / cancel

def test_server_generated_consumer_tag(rawc):
    """basic.consume with an empty tag gets a server tag 'amq.ctag-' + 22 base64url chars."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Basic.Consume(queue=q, consumer_tag=""))
    t1 = r.expect(spec.Basic.ConsumeOk, 1).consumer_tag
    r.send_method(1, spec.Basic.Consume(queue=q, consumer_tag=""))
    t2 = r.expect(spec.Basic.ConsumeOk, 1).consumer_tag
    assert CTAG_RE.match(t1), t1
    assert CTAG_RE.match(t2), t2
    assert t1 != t2
    # The generated tag is used in deliveries.
    r.send_method(1, spec.Basic.Cancel(consumer_tag=t2))
    assert r.expect(spec.Basic.CancelOk, 1).consumer_tag == t2
    r.send_method(1, spec.Basic.Publish(exchange="", routing_key=q))
    r.send_frame(2, 1, struct.pack(">HHQH", 60, 0, 1, 0))
    r.send_frame(3, 1, b"z")
    deliver = r.expect(spec.Basic.Deliver, 1)
    assert deliver.consumer_tag == t1 and deliver.delivery_tag == 1


def test_client_consumer_tag_used(conn, ch):
    """A client-chosen consumer tag is echoed in consume-ok and in every basic.deliver."""
    q = ch.queue_declare("", exclusive=True).method.queue
    got = []
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append((m.consumer_tag, b)), auto_ack=True,
                           consumer_tag="my-tag")
    assert tag == "my-tag"
    ch.basic_publish("", q, b"a")
    pump(conn, lambda: got)
    assert got == [("my-tag", b"a")]


@pytest.mark.parametrize("other_queue", [False, True])
def test_duplicate_consumer_tag_same_channel(rawc, other_queue):
    """Reusing a consumer tag on the same channel (any queue) is a 530 NOT_ALLOWED connection error."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q1 = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q2 = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Basic.Consume(queue=q1, consumer_tag="dup"))
    r.expect(spec.Basic.ConsumeOk, 1)
    r.send_method(1, spec.Basic.Consume(queue=q2 if other_queue else q1, consumer_tag="dup"))
    close = r.expect(spec.Connection.Close, 0)
    assert close.reply_code == 530
    assert close.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"
    assert (close.class_id, close.method_id) == (60, 20)


def test_same_consumer_tag_on_different_channels_ok(rawc):
    """The same consumer tag may be used on two different channels."""
    r = rawc()
    r.open_channel(1)
    r.open_channel(2)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Basic.Consume(queue=q, consumer_tag="same"))
    assert r.expect(spec.Basic.ConsumeOk, 1).consumer_tag == "same"
    r.send_method(2, spec.Basic.Consume(queue=q, consumer_tag="same"))
    assert r.expect(spec.Basic.ConsumeOk, 2).consumer_tag == "same"


def test_cancel_unknown_consumer_tag_ok(rawc):
    """basic.cancel of an unknown tag is answered with cancel-ok echoing the tag."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Basic.Cancel(consumer_tag="never-existed"))
    assert r.expect(spec.Basic.CancelOk, 1).consumer_tag == "never-existed"
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    r.expect(spec.Queue.DeclareOk, 1)


def test_exclusive_consumer_blocks_second_consumer(conn):
    """With an exclusive consumer on a queue, another consume gets 403 'in exclusive use'."""
    ch1 = conn.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    ch1.basic_consume(q, lambda *a: None, exclusive=True)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None)
    closed_with(ei, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
    assert ch1.is_open


def test_exclusive_consume_on_queue_with_consumers_refused(conn):
    """An exclusive consume on a queue that already has a consumer gets 403 'in exclusive use'."""
    ch1 = conn.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    ch1.basic_consume(q, lambda *a: None)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None, exclusive=True)
    closed_with(ei, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")


def test_exclusive_consumer_same_channel_second_consume_refused(ch):
    """Even on the same channel a second consumer on an exclusively-consumed queue gets 403."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(q, lambda *a: None, exclusive=True)
    closed_with(ei, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")


def test_exclusive_consumer_released_after_cancel(conn):
    """After the exclusive consumer is cancelled others may consume again."""
    ch1 = conn.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    tag = ch1.basic_consume(q, lambda *a: None, exclusive=True)
    ch1.basic_cancel(tag)
    ch2 = conn.channel()
    ch2.basic_consume(q, lambda *a: None)
    assert ch2.queue_declare(q, passive=True).method.consumer_count == 1


def test_no_ack_consume_does_not_requeue(conn):
    """no_ack deliveries are settled on send: closing the channel does not requeue them."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    ch2 = conn.channel()
    got = []
    ch2.basic_consume(q, lambda c, m, p, b: got.append((b, m.redelivered)), auto_ack=True)
    pump(conn, lambda: len(got) == 3)
    assert got == [(b"0", False), (b"1", False), (b"2", False)]
    ch2.close()
    time.sleep(0.05)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_cancel_stops_deliveries(conn, ch):
    """After basic.cancel(-ok) no more messages are delivered to that consumer; they stay queued."""
    q = ch.queue_declare("", exclusive=True).method.queue
    got = []
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", q, b"before")
    pump(conn, lambda: got)
    assert got == [b"before"]
    ch.basic_cancel(tag)
    assert ch.consumer_tags == []
    ch.basic_publish("", q, b"after")
    assert wait_count(ch, q, 1) == 1
    settle(conn, 0.1)
    assert got == [b"before"]
    assert ch.queue_declare(q, passive=True).method.consumer_count == 0


def test_cancel_ok_raw(rawc):
    """basic.cancel is answered with cancel-ok carrying the same tag; consumer_count drops."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Basic.Consume(queue=q, consumer_tag="c1"))
    r.expect(spec.Basic.ConsumeOk, 1)
    r.send_method(1, spec.Basic.Cancel(consumer_tag="c1"))
    assert r.expect(spec.Basic.CancelOk, 1).consumer_tag == "c1"
    r.send_method(1, spec.Queue.Declare(queue=q, passive=True))
    assert r.expect(spec.Queue.DeclareOk, 1).consumer_count == 0


def test_server_cancel_when_queue_deleted(connect, uniq, cleanup):
    """Deleting a queue sends basic.cancel (nowait) to its consumers (consumer_cancel_notify)."""
    q = uniq + ".q"
    cleanup.append(q)
    c = connect()
    ch = c.channel()
    ch.queue_declare(q)
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame.method))
    tag = ch.basic_consume(q, lambda *a: None)
    connect().channel().queue_delete(q)
    pump(c, lambda: cancels)
    assert len(cancels) == 1
    assert isinstance(cancels[0], pika.spec.Basic.Cancel)
    assert cancels[0].consumer_tag == tag
    assert cancels[0].nowait is True
    assert ch.is_open
    assert ch.consumer_tags == []


@pytest.mark.parametrize("announce", [True, False])
def test_server_cancel_raw_depends_on_capability(broker_addr, connect, uniq, cleanup, announce):
    """basic.cancel on queue deletion is sent only to clients announcing capabilities.consumer_cancel_notify."""
    q = uniq + ".q"
    cleanup.append(q)
    caps = {"capabilities": {"consumer_cancel_notify": True}} if announce else {}
    r = RawConnection(*broker_addr)
    r.handshake(capabilities={}, client_properties=caps)
    try:
        r.open_channel(1)
        r.send_method(1, spec.Queue.Declare(queue=q))
        r.expect(spec.Queue.DeclareOk, 1)
        r.send_method(1, spec.Basic.Consume(queue=q, consumer_tag="ct"))
        r.expect(spec.Basic.ConsumeOk, 1)
        connect().channel().queue_delete(q)
        time.sleep(0.1)
        if announce:
            chan, frame = r.read_frame()
            assert chan == 1 and isinstance(frame, spec.Basic.Cancel)
            assert frame.consumer_tag == "ct" and frame.nowait is True
        else:
            # Nothing was sent for the consumer: the next frame is the answer to this channel.open.
            r.open_channel(2)
    finally:
        r.shutdown()


# --------------------------------------------------------------------------- basic.get

def test_get_empty_and_get_ok_message_count(ch):
    """basic.get answers get-empty on an empty queue; get-ok carries remaining message_count and routing info."""
    q = ch.queue_declare("", exclusive=True).method.queue
    assert ch.basic_get(q) == (None, None, None)
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 3) == 3
    results = []
    for _ in range(3):
        m, _, body = ch.basic_get(q)
        results.append((m.delivery_tag, m.message_count, m.redelivered, m.exchange, m.routing_key, body))
    assert results == [(1, 2, False, "", q, b"0"), (2, 1, False, "", q, b"1"), (3, 0, False, "", q, b"2")]
    assert ch.basic_get(q) == (None, None, None)


def test_get_empty_raw(rawc):
    """get-empty is sent as Basic.GetEmpty (cluster_id '') on the same channel."""
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    r.send_method(1, spec.Basic.Get(queue=q))
    f = r.expect(spec.Basic.GetEmpty, 1)
    assert f.cluster_id == ""


def test_get_missing_queue(ch, uniq):
    """basic.get on a missing queue closes the channel with 404."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_get(uniq + ".noq")
    closed_with(ei, 404, f"NOT_FOUND - no queue '{uniq}.noq' in vhost '/'")


def test_consume_missing_queue(ch, uniq):
    """basic.consume on a missing queue closes the channel with 404."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(uniq + ".noq", lambda *a: None)
    closed_with(ei, 404, f"NOT_FOUND - no queue '{uniq}.noq' in vhost '/'")


def test_delivery_tags_shared_between_get_and_consume(conn, ch):
    """Delivery tags are per channel, start at 1 and increase across get and consume deliveries."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    assert wait_count(ch, q, 2) == 2
    m, _, _ = ch.basic_get(q)
    assert m.delivery_tag == 1
    tags = []
    ch.basic_consume(q, lambda c, m, p, b: tags.append(m.delivery_tag))
    pump(conn, lambda: tags)
    assert tags == [2]
    other = conn.channel()
    other.basic_publish("", q, b"c")
    pump(conn, lambda: len(tags) == 2)
    assert tags == [2, 3]


# --------------------------------------------------------------------------- ack / nack / reject

def test_ack_single_and_multiple(ch):
    """ack removes messages; ack(multiple) settles all up to the tag; nothing is requeued on close."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 5) == 5
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(4)]
    ch.basic_ack(tags[0])
    ch.basic_ack(tags[2], multiple=True)  # settles tags 2 and 3
    ch.basic_ack(tags[3])
    assert ch.queue_declare(q, passive=True).method.message_count == 1
    ch.basic_recover(requeue=True)  # nothing unacked -> nothing comes back
    time.sleep(0.05)
    assert drain_get(ch, q) == [(b"4", False)]


def test_ack_zero_multiple_acks_everything(conn, ch):
    """ack(delivery_tag=0, multiple=True) acknowledges all outstanding deliveries."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 3) == 3
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_ack(0, multiple=True)
    ch.basic_recover(requeue=True)
    time.sleep(0.05)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_ack_zero_multiple_with_nothing_outstanding_ok(ch):
    """ack(0, multiple=True) with nothing outstanding is accepted silently."""
    ch.basic_ack(0, multiple=True)
    assert ch.queue_declare("", exclusive=True).method.queue


def test_nack_multiple_requeue_sets_redelivered_and_keeps_order(ch):
    """nack(multiple, requeue) puts messages back in original order with redelivered=True."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 5) == 5
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[2], multiple=True, requeue=True)
    assert wait_count(ch, q, 5) == 5
    got = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body, m.redelivered, m.delivery_tag))
    assert got == [(b"0", True, 4), (b"1", True, 5), (b"2", True, 6), (b"3", False, 7), (b"4", False, 8)]


def test_requeued_message_returns_to_original_position(ch):
    """A single message nacked with requeue goes back ahead of later messages."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 4) == 4
    t0 = ch.basic_get(q)[0].delivery_tag
    t1 = ch.basic_get(q)[0].delivery_tag
    t2 = ch.basic_get(q)[0].delivery_tag
    ch.basic_ack(t0)
    ch.basic_nack(t1, requeue=True)
    ch.basic_ack(t2)
    assert drain_get(ch, q) == [(b"1", True), (b"3", False)]


def test_nack_and_reject_without_requeue_drop(ch):
    """nack(requeue=False) and reject(requeue=False) discard the message (no DLX configured)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 3) == 3
    m0 = ch.basic_get(q)[0]
    m1 = ch.basic_get(q)[0]
    ch.basic_nack(m0.delivery_tag, requeue=False)
    ch.basic_reject(m1.delivery_tag, requeue=False)
    ch.basic_recover(requeue=True)
    time.sleep(0.05)
    assert drain_get(ch, q) == [(b"2", False)]


def test_reject_requeue(ch):
    """reject(requeue=True) puts the message back with redelivered=True."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"r")
    assert wait_count(ch, q, 1) == 1
    m, _, _ = ch.basic_get(q)
    assert m.redelivered is False
    ch.basic_reject(m.delivery_tag, requeue=True)
    m2, _, body = ch.basic_get(q)
    assert (body, m2.redelivered, m2.message_count) == (b"r", True, 0)
    assert m2.delivery_tag == m.delivery_tag + 1


def test_nack_multiple_without_requeue(ch):
    """nack(multiple, requeue=False) drops every outstanding delivery up to the tag."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 4) == 4
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[1], multiple=True, requeue=False)
    ch.basic_recover(requeue=True)
    time.sleep(0.05)
    assert drain_get(ch, q) == [(b"2", True), (b"3", False)]


@pytest.mark.parametrize("op,tag", [
    ("ack", 42), ("ack_multiple", 5), ("nack", 7), ("nack_multiple", 8), ("reject", 9), ("ack", 0),
])
def test_unknown_delivery_tag(ch, op, tag):
    """Settling an unknown delivery tag closes the channel with 406 'unknown delivery tag N'."""
    do = {
        "ack": lambda: ch.basic_ack(tag),
        "ack_multiple": lambda: ch.basic_ack(tag, multiple=True),
        "nack": lambda: ch.basic_nack(tag),
        "nack_multiple": lambda: ch.basic_nack(tag, multiple=True),
        "reject": lambda: ch.basic_reject(tag),
    }
    do[op]()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - unknown delivery tag {tag}")


def test_double_ack(ch):
    """Acking the same delivery tag twice closes the channel with 406 'unknown delivery tag'."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 1) == 1
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - unknown delivery tag {m.delivery_tag}")


def test_ack_of_no_ack_delivery(ch):
    """Acking a delivery that was sent with no_ack is an unknown delivery tag (406)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 1) == 1
    m, _, _ = ch.basic_get(q, auto_ack=True)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - unknown delivery tag {m.delivery_tag}")


def test_ack_on_other_channel_is_unknown(conn):
    """Delivery tags are channel-scoped: acking on another channel is 406 unknown delivery tag."""
    ch1 = conn.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    ch1.basic_publish("", q, b"x")
    assert wait_count(ch1, q, 1) == 1
    m, _, _ = ch1.basic_get(q)
    ch2 = conn.channel()
    ch2.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_declare(q, passive=True)
    closed_with(ei, 406, "PRECONDITION_FAILED - unknown delivery tag 1")
    assert ch1.is_open


# --------------------------------------------------------------------------- recover

def test_recover_requeue(ch):
    """basic.recover(requeue=True) requeues every unacked message in order with redelivered=True."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 4) == 4
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_ack(tags[1])
    ch.basic_recover(requeue=True)  # pika waits for recover-ok
    assert wait_count(ch, q, 3) == 3
    assert drain_get(ch, q) == [(b"0", True), (b"2", True), (b"3", False)]


def test_recover_redelivers_to_consumer(conn, ch):
    """After basic.recover a consumer receives its unacked messages again, redelivered=True, new tags."""
    q = ch.queue_declare("", exclusive=True).method.queue
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((b, m.redelivered, m.delivery_tag)))
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    pump(conn, lambda: len(got) == 2)
    ch.basic_recover(requeue=True)
    pump(conn, lambda: len(got) == 4)
    assert got == [(b"a", False, 1), (b"b", False, 2), (b"a", True, 3), (b"b", True, 4)]


def test_recover_without_requeue_not_implemented(conn, ch):
    """basic.recover(requeue=False) is a 540 NOT_IMPLEMENTED connection error."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.basic_recover(requeue=False)
    closed_with(ei, 540, "NOT_IMPLEMENTED - requeue=false")
    assert conn.is_closed


# --------------------------------------------------------------------------- qos

def _fill(ch, q: str, n: int) -> None:
    for i in range(n):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, n) == n


def test_qos_per_consumer_limit(conn, ch):
    """prefetch_count with global=False limits each consumer separately (two consumers -> 2 x limit)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 10)
    ch.basic_qos(prefetch_count=2)
    a, b = [], []
    ch.basic_consume(q, lambda c, m, p, body: a.append(m.delivery_tag))
    ch.basic_consume(q, lambda c, m, p, body: b.append(m.delivery_tag))
    pump(conn, lambda: len(a) + len(b) >= 4)
    settle(conn, 0.2)
    assert (len(a), len(b)) == (2, 2)
    assert ch.queue_declare(q, passive=True).method.message_count == 6
    ch.basic_ack(a[0])
    pump(conn, lambda: len(a) == 3)
    settle(conn, 0.1)
    assert (len(a), len(b)) == (3, 2)


def test_qos_global_shared_across_channel_consumers(conn, ch):
    """prefetch_count with global=True is one limit shared by all consumers on the channel."""
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 10)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    a, b = [], []
    ch.basic_consume(q, lambda c, m, p, body: a.append(m.delivery_tag))
    ch.basic_consume(q, lambda c, m, p, body: b.append(m.delivery_tag))
    pump(conn, lambda: len(a) + len(b) >= 3)
    settle(conn, 0.2)
    assert len(a) + len(b) == 3
    assert ch.queue_declare(q, passive=True).method.message_count == 7
    ch.basic_ack((a + b)[0])
    pump(conn, lambda: len(a) + len(b) == 4)
    settle(conn, 0.1)
    assert len(a) + len(b) == 4


def test_qos_zero_is_unlimited(conn, ch):
    """prefetch_count=0 means no limit: all ready messages are delivered."""
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 20)
    ch.basic_qos(prefetch_count=5)
    ch.basic_qos(prefetch_count=0)
    got = []
    ch.basic_consume(q, lambda c, m, p, body: got.append(body))
    pump(conn, lambda: len(got) == 20)
    assert got == [str(i).encode() for i in range(20)]


def test_qos_applies_to_consumers_created_after(conn, ch):
    """Per-consumer prefetch is captured at consume time: a later qos change affects only new consumers."""
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 10)
    ch.basic_qos(prefetch_count=1)
    a, b = [], []
    ch.basic_consume(q, lambda c, m, p, body: a.append(body))
    pump(conn, lambda: a)
    ch.basic_qos(prefetch_count=3)
    ch.basic_consume(q, lambda c, m, p, body: b.append(body))
    pump(conn, lambda: len(b) >= 3)
    settle(conn, 0.2)
    assert (len(a), len(b)) == (1, 3)


def test_qos_does_not_limit_no_ack_consumer(conn, ch):
    """prefetch does not apply to no_ack consumers."""
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 10)
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda c, m, p, body: got.append(body), auto_ack=True)
    pump(conn, lambda: len(got) == 10)
    assert len(got) == 10


def test_qos_does_not_limit_basic_get(ch):
    """basic.get ignores prefetch_count."""
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 3)
    ch.basic_qos(prefetch_count=1)
    bodies = [ch.basic_get(q)[2] for _ in range(3)]
    assert bodies == [b"0", b"1", b"2"]


# --------------------------------------------------------------------------- dispatch order / requeue on close

def test_round_robin_between_consumers(conn):
    """Messages are dispatched round-robin among a queue's consumers in subscription order."""
    chans = [conn.channel() for _ in range(3)]
    q = chans[0].queue_declare("", exclusive=True).method.queue
    got: list[list[bytes]] = [[], [], []]
    for i, c in enumerate(chans):
        c.basic_consume(q, lambda ch_, m, p, b, i=i: got[i].append(b), auto_ack=True)
    for i in range(9):
        chans[0].basic_publish("", q, str(i).encode())
    pump(conn, lambda: sum(map(len, got)) == 9)
    assert got == [[b"0", b"3", b"6"], [b"1", b"4", b"7"], [b"2", b"5", b"8"]]


# A, B (prefetch 1) and C (no limit) consume; N messages are published one at a time, then A settles
# its message, then three more are published. Who gets what (RabbitMQ 3.10.8):
AFTER_SETTLE = {
    # classic, 3: A was never passed over while full, so it keeps its place (next after C)
    ("classic", 3, "settle"): "A0 B1 C2 A3 C4 C5",
    ("classic", 3, "nack-requeue"): "A0 B1 C2 A0 C3 C4 C5",
    # classic, 4: A's turn came while it was full (message 3): out of the rotation until it settles,
    # then back at its end, after C
    ("classic", 4, "settle"): "A0 B1 C2 C3 C4 A5 C6",
    ("classic", 4, "nack-requeue"): "A0 B1 C2 C3 C0 A4 C5 C6",
    # quorum: out of the rotation as soon as its window is full, back at its end when it settles
    ("quorum", 3, "settle"): "A0 B1 C2 C3 A4 C5",
    ("quorum", 3, "nack-requeue"): "A0 B1 C2 C0 A3 C4 C5",
    ("quorum", 4, "settle"): "A0 B1 C2 C3 C4 A5 C6",
    ("quorum", 4, "nack-requeue"): "A0 B1 C2 C3 C0 A4 C5 C6",
}


@pytest.mark.parametrize("settle_how", ["ack", "reject", "nack-requeue"])
@pytest.mark.parametrize("before", [3, 4])
@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_round_robin_after_a_full_consumer_settles(conn, uniq, cleanup, qtype, before, settle_how):
    """A consumer whose prefetch window is full leaves the round-robin rotation and comes back at its
    END once one of its messages is settled (ack, reject, nack). A classic queue takes it out when its
    turn comes and it cannot take the message (rabbit_queue_consumers); a quorum queue as soon as its
    window fills (rabbit_fifo's service queue). Expected orders: AFTER_SETTLE."""
    q = uniq + ".q"
    cleanup.append(q)
    pub = conn.channel()
    pub.confirm_delivery()
    pub.queue_declare(q, durable=True, arguments={"x-queue-type": qtype})
    got, chans = [], {}
    for name, prefetch in (("A", 1), ("B", 1), ("C", 0)):
        k = chans[name] = conn.channel()
        if prefetch:
            k.basic_qos(prefetch_count=prefetch)
        k.basic_consume(q, lambda _c, m, _p, b, name=name: got.append((name, b.decode(), m.delivery_tag)))

    def publish_one(i: int) -> None:
        n = len(got)
        pub.basic_publish("", q, str(i).encode())
        pump(conn, lambda: len(got) > n)
    for i in range(before):
        publish_one(i)
    tag = next(t for name, _, t in got if name == "A")
    if settle_how == "ack":
        chans["A"].basic_ack(tag)
    elif settle_how == "reject":
        chans["A"].basic_reject(tag, requeue=False)
    else:
        chans["A"].basic_nack(tag, requeue=True)
        pump(conn, lambda: len(got) > before)
    # The settle and the next publish travel on different channels, which RabbitMQ does not order
    # (each channel is its own process). A passive declare on A's channel reaches the queue process
    # after A's settle from the same sender, so once it answers the queue has seen the settle.
    chans["A"].queue_declare(q, passive=True)
    for i in range(before, before + 3):
        publish_one(i)
    pump(conn, lambda: False, timeout=0.1)
    key = (qtype, before, "nack-requeue" if settle_how == "nack-requeue" else "settle")
    assert " ".join(name + body for name, body, _ in got) == AFTER_SETTLE[key]


def test_quorum_consumer_without_prefetch_gets_2000(connect, conn, uniq, cleanup):
    """A quorum queue gives a consumer without a prefetch count a credit of 2000 messages."""
    q = uniq + ".qq"
    cleanup.append(q)
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    for _ in range(2010):
        ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 2010, timeout=5) == 2010
    c = connect()
    got = []
    c.channel().basic_consume(q, lambda _c, m, _p, _b: got.append(m.delivery_tag))
    pump(c, lambda: len(got) >= 2000, timeout=5)
    pump(c, lambda: False, timeout=0.3)
    assert len(got) == 2000
    assert wait_count(ch, q, 10) == 10


def test_unacked_requeued_in_order_on_channel_close(conn):
    """Closing a channel requeues its unacked messages at their original positions with redelivered=True."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 6)
    ch2 = conn.channel()
    got = [ch2.basic_get(q)[0] for _ in range(4)]
    ch2.basic_ack(got[1].delivery_tag)
    ch2.close()
    assert wait_count(ch, q, 5) == 5
    assert drain_get(ch, q) == [(b"0", True), (b"2", True), (b"3", True), (b"4", False), (b"5", False)]


def _filled_queue(connect, uniq: str, cleanup, n: int):
    """A named queue holding ``n`` messages, and a channel (of its own connection) on it."""
    q = uniq + ".q"
    cleanup.append(q)
    keeper = connect().channel()
    keeper.queue_declare(q)
    _fill(keeper, q, n)
    return keeper, q


def test_unacked_requeued_in_order_on_connection_close(connect, uniq, cleanup):
    """Closing a connection requeues unacked messages of all its channels in original order, redelivered=True."""
    keeper, q = _filled_queue(connect, uniq, cleanup, 6)
    c = connect()
    cha, chb = c.channel(), c.channel()
    ga = [cha.basic_get(q)[0] for _ in range(2)]
    [chb.basic_get(q)[0] for _ in range(2)]
    cha.basic_ack(ga[0].delivery_tag)
    c.close()
    assert wait_count(keeper, q, 5) == 5
    assert drain_get(keeper, q) == [(b"1", True), (b"2", True), (b"3", True), (b"4", False), (b"5", False)]


def test_close_ok_comes_after_requeue_and_exclusive_queue_delete(connect, rawc, uniq, cleanup):
    """connection.close with a channel still open (as aiormq sends it; pika closes its channels
    first): RabbitMQ answers close-ok only once the connection's channels have shut down
    (rabbit_reader sends it when the last channel process has exited; a channel hands its
    consumers' unacked messages back to their queues before it exits) and its exclusive queues
    are deleted (close_connection, synchronously). So when the client has close-ok, the
    messages are ready again and the exclusive queue is gone -- no waiting."""
    keeper, q = _filled_queue(connect, uniq, cleanup, 3)
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue=uniq + ".excl", exclusive=True))
    r.expect(spec.Queue.DeclareOk, 1)
    r.send_method(1, spec.Basic.Consume(queue=q, consumer_tag="c"))
    r.expect(spec.Basic.ConsumeOk, 1)
    for _ in range(3):
        r.expect(spec.Basic.Deliver, 1)
        r.read_frame()                 # content header
        r.read_frame()                 # body
    assert keeper.queue_declare(q, passive=True).method.message_count == 0
    r.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    r.expect(spec.Connection.CloseOk, 0)
    assert keeper.queue_declare(q, passive=True).method.message_count == 3
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        keeper.queue_declare(uniq + ".excl", passive=True)
    assert e.value.reply_code == 404


def test_consumer_unacked_requeued_on_cancel_then_close(conn):
    """Cancelling a consumer keeps its unacked messages outstanding; they requeue when the channel closes."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    _fill(ch, q, 3)
    ch2 = conn.channel()
    got = []
    tag = ch2.basic_consume(q, lambda c, m, p, b: got.append(m))
    pump(conn, lambda: len(got) == 3)
    ch2.basic_cancel(tag)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch2.basic_ack(got[0].delivery_tag)  # still ackable after cancel
    ch2.close()
    assert wait_count(ch, q, 2) == 2
    assert drain_get(ch, q) == [(b"1", True), (b"2", True)]


# --------------------------------------------------------------------------- property round-trips

ALL_PROPS = dict(
    content_type="application/json", content_encoding="gzip", delivery_mode=2, priority=7,
    correlation_id="corr-1", reply_to="reply.q", expiration="60000", message_id="msg-1",
    timestamp=1700000000, type="order.created", user_id="guest", app_id="app-x", cluster_id="cl-1",
)


def test_all_properties_round_trip_pika(ch):
    """All 14 basic properties come back unchanged (incl. deprecated cluster_id)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    headers = {"x": 1}
    ch.basic_publish("", q, b"body", pika.BasicProperties(headers=headers, **ALL_PROPS))
    assert wait_count(ch, q, 1) == 1
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"body"
    for k, v in ALL_PROPS.items():
        assert getattr(p, k) == v, k
    assert p.headers == headers


def test_absent_properties_stay_absent(ch):
    """A message published without properties is delivered without properties (all None)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"")
    assert wait_count(ch, q, 1) == 1
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b""
    for k in list(ALL_PROPS) + ["headers"]:
        assert getattr(p, k) is None, k


def test_headers_round_trip_pika(ch):
    """Header values of every type pika can encode survive the broker unchanged."""
    q = ch.queue_declare("", exclusive=True).method.queue
    headers = {
        "bool_t": True, "bool_f": False, "int32": -123456, "int64": 2 ** 40, "int64_neg": -(2 ** 62),
        "decimal": decimal.Decimal("3.14"), "str": "héllo wörld", "empty": "", "bytes": b"\x00\xffraw",
        "timestamp": datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        "table": {"a": 1, "nested": {"deep": "x", "list": [1, 2]}}, "array": [1, "two", True, None, [3], {"k": "v"}],
        "void": None,
    }
    ch.basic_publish("", q, b"h", pika.BasicProperties(headers=headers))
    assert wait_count(ch, q, 1) == 1
    _, p, _ = ch.basic_get(q, auto_ack=True)
    assert p.headers == headers


def _short(s: bytes) -> bytes:
    return bytes([len(s)]) + s


def _long(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _table(items) -> bytes:
    out = b"".join(_short(k.encode()) + v for k, v in items)
    return _long(out)


def test_headers_every_field_type_byte_exact_raw(rawc):
    """A content header using every field-table type (t b B s u I i l f d D S x T F A V) is delivered byte-for-byte."""
    nested = _table([("k", b"S" + _long(b"v")), ("n", b"I" + struct.pack(">i", -1))])
    array = b"b\x05" + b"S" + _long(b"x") + b"t\x01" + b"V" + b"F" + _table([]) + b"A" + _long(b"")
    fields = [
        ("bool_t", b"t\x01"), ("bool_f", b"t\x00"),
        ("int8", b"b\xfe"), ("uint8", b"B\xfe"),
        ("int16", b"s" + struct.pack(">h", -300)), ("uint16", b"u" + struct.pack(">H", 65000)),
        ("int32", b"I" + struct.pack(">i", -70000)), ("uint32", b"i" + struct.pack(">I", 4000000000)),
        ("int64", b"l" + struct.pack(">q", -2 ** 60)),
        ("float", b"f" + struct.pack(">f", 1.5)), ("double", b"d" + struct.pack(">d", 2.718281828459045)),
        ("decimal", b"D\x02" + struct.pack(">i", 31415)),
        ("string", b"S" + _long("héllo".encode())), ("bytes", b"x" + _long(b"\x00\x01\xff")),
        ("timestamp", b"T" + struct.pack(">Q", 1700000000)),
        ("table", b"F" + nested), ("array", b"A" + _long(array)), ("void", b"V"),
    ]
    body = b"hello-body"
    flags = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 2)  # content_type, headers, delivery_mode, app_id
    props = _short(b"text/plain") + _table(fields) + b"\x02" + _short(b"the-app")
    header_payload = struct.pack(">HHQH", 60, 0, len(body), flags) + props

    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    q = r.expect(spec.Queue.DeclareOk, 1).queue
    # Once through the default exchange, once through a headers exchange (which must parse the table).
    r.send_method(1, spec.Queue.Bind(queue=q, exchange="amq.match", routing_key="",
                              arguments={"x-match": "all", "string": "héllo", "int8": -2}))
    r.expect(spec.Queue.BindOk, 1)
    for exchange in ("", "amq.match"):
        r.send_method(1, spec.Basic.Publish(exchange=exchange, routing_key=q if exchange == "" else ""))
        r.send_frame(2, 1, header_payload)
        r.send_frame(3, 1, body)
        r.send_method(1, spec.Basic.Get(queue=q, no_ack=True))
        get_ok = r.expect(spec.Basic.GetOk, 1)
        assert get_ok.exchange == exchange
        ftype, chan, payload = r.read_raw_frame()
        assert (ftype, chan) == (2, 1)
        assert payload == header_payload
        ftype, chan, payload = r.read_raw_frame()
        assert (ftype, chan, payload) == (3, 1, body)


async def test_headers_and_properties_round_trip_aio_pika(broker_url):
    """aio-pika (pamqp encoding: int8/int16/uint16/int32/uint32/int64/float/...) headers and properties round-trip."""
    headers = {
        "t": True, "f": False, "i8": -5, "i16": -3000, "u16": 60000, "i32": -70000, "u32": 4000000000,
        "i64": -(2 ** 60), "flt": 1.5, "dec": decimal.Decimal("3.14"), "s": "héllo",
        "x": bytearray(b"\x00\xff"), "ts": datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        "F": {"a": 1, "n": {"b": "c"}}, "A": [1, "two", True, None, [3]], "V": None,
    }
    ts = datetime.datetime(2022, 1, 1, tzinfo=datetime.timezone.utc)
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        msg = aio_pika.Message(
            b"body", headers=headers, content_type="ct", content_encoding="ce",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, priority=3, correlation_id="c", reply_to="r",
            expiration=60, message_id="m", timestamp=ts, type="ty", user_id="guest", app_id="ap")
        await ch.default_exchange.publish(msg, routing_key=q.name)
        got = await q.get(no_ack=True, timeout=2)
        assert got.body == b"body"
        assert got.headers == headers
        assert (got.content_type, got.content_encoding, got.delivery_mode, got.priority) == \
            ("ct", "ce", aio_pika.DeliveryMode.PERSISTENT, 3)
        assert (got.correlation_id, got.reply_to, got.message_id, got.type, got.user_id, got.app_id) == \
            ("c", "r", "m", "ty", "guest", "ap")
        assert got.expiration == 60  # sent as the string "60000" (ms)
        assert got.properties.expiration == "60000"
        assert got.timestamp == ts


# --------------------------------------------------------------------------- aio-pika variants

async def test_aio_pika_consume_and_ack(broker_url):
    """aio-pika consumer receives messages in order; acked ones are gone, unacked are requeued on close."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        for i in range(4):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
        ch2 = await conn.channel()
        q2 = await ch2.get_queue(q.name, ensure=False)
        received = []
        async with q2.iterator() as it:
            async for message in it:
                received.append(message)
                if len(received) == 4:
                    break
        assert [m.body for m in received] == [b"0", b"1", b"2", b"3"]
        assert all(m.redelivered is False for m in received)
        await received[0].ack()
        await received[2].ack()
        await ch2.close()
        await asyncio.sleep(0.1)
        bodies = []
        while True:
            m = await q.get(no_ack=True, fail=False)
            if m is None:
                break
            bodies.append((m.body, m.redelivered))
        assert bodies == [(b"1", True), (b"3", True)]


async def test_aio_pika_nack_requeue_and_reject(broker_url):
    """aio-pika nack(requeue=True) redelivers with redelivered=True; reject(requeue=False) drops."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"a"), routing_key=q.name)
        await ch.default_exchange.publish(aio_pika.Message(b"b"), routing_key=q.name)
        m1 = await q.get(timeout=2)
        m2 = await q.get(timeout=2)
        assert (m1.body, m1.redelivered, m1.message_count) == (b"a", False, 1)
        assert (m2.body, m2.message_count) == (b"b", 0)
        await m1.nack(requeue=True)
        await m2.reject(requeue=False)
        again = await q.get(timeout=2)
        assert (again.body, again.redelivered, again.delivery_tag) == (b"a", True, 3)
        await again.ack()
        assert await q.get(fail=False) is None


async def test_aio_pika_get_empty(broker_url):
    """aio-pika queue.get on an empty queue raises QueueEmpty (get-empty) or returns None with fail=False."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        with pytest.raises(aio_pika.exceptions.QueueEmpty):
            await q.get(timeout=2)
        assert await q.get(fail=False) is None


async def test_aio_pika_qos_prefetch(broker_url):
    """aio-pika set_qos(prefetch_count=2): only two unacked deliveries until one is acked."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=2)
        q = await ch.declare_queue("", exclusive=True)
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
        received: list[aio_pika.abc.AbstractIncomingMessage] = []
        event = asyncio.Event()

        async def on_message(message):
            received.append(message)
            event.set()

        await q.consume(on_message)
        await asyncio.sleep(0.3)
        assert [m.body for m in received] == [b"0", b"1"]
        await received[0].ack()
        await asyncio.sleep(0.2)
        assert [m.body for m in received] == [b"0", b"1", b"2"]
        declared = await ch.declare_queue(q.name, passive=True)
        assert declared.declaration_result.message_count == 2
        assert declared.declaration_result.consumer_count == 1


async def test_aio_pika_unknown_delivery_tag(broker_url):
    """aio-pika: acking an unknown tag closes the channel with 406 'unknown delivery tag 99'."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        closed = asyncio.get_running_loop().create_future()
        ch.close_callbacks.add(lambda sender, exc: closed.done() or closed.set_result(exc))
        underlay = await ch.get_underlay_channel()
        await underlay.basic_ack(99)
        exc = await asyncio.wait_for(closed, 2)
        assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
        assert exc.args[0] == "PRECONDITION_FAILED - unknown delivery tag 99"


async def test_aio_pika_mandatory_return(broker_url, uniq):
    """aio-pika (confirms + on_return_raises): mandatory unroutable publish is returned with 312 NO_ROUTE."""
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        with pytest.raises(aio_pika.exceptions.PublishError) as ei:
            await ch.default_exchange.publish(aio_pika.Message(b"r", message_id="m1"),
                                              routing_key=uniq + ".noq", mandatory=True)
        frame = ei.value.frame
        assert isinstance(frame, spec.Basic.Return)
        assert (frame.reply_code, frame.reply_text, frame.exchange, frame.routing_key) == \
            (312, "NO_ROUTE", "", uniq + ".noq")
        assert ei.value.message.body == b"r"


@pytest.mark.parametrize("exp,reason", [
    ("abc", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    (" 5", "no_integer"),
])
def test_invalid_expiration_closes_channel_406(conn, uniq, exp, reason):
    """A publish whose expiration property is not a non-negative integer: channel.close 406."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration=exp))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid expiration '{exp}': {reason}")
    assert conn.is_open
