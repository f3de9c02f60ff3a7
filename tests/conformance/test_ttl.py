"""Conformance tests for message TTL (``x-message-ttl``, the ``expiration`` property)
and queue expiry (``x-expires``).

Every expectation was observed on RabbitMQ 3.10.8 (classic queues); reply codes and
texts are exact. TTLs are kept short (0-400 ms) and waits poll against deadlines.
Publishes go through a confirm-mode channel so that a message is known to be enqueued
(and its TTL clock running) when ``basic_publish`` returns.
"""
from __future__ import annotations

import datetime
import decimal
import struct
import time

import pika
import pika.exceptions
import pytest
from pamqp import commands as C

from .helpers import (closed_with, confirm_channel, count, declare, declare_raw_arg, dlx_to, invalid_arg, pump,
                      queue_exists, wait_count, wait_message)

# --------------------------------------------------------------------------- helpers

def wait_gone(ch, q: str, timeout: float = 2.0) -> float:
    """Poll until ``q`` holds no ready message; returns the monotonic time it was seen empty."""
    assert wait_count(ch, q, 0, timeout=timeout) == 0, f"{q!r} still holds messages after {timeout}s"
    return time.monotonic()


# --------------------------------------------------------------------------- x-message-ttl

def test_queue_ttl_expires_messages_without_consumer(conn, uniq):
    """x-message-ttl: ready messages are removed when their TTL passes, with no consumer and no
    client activity on the queue (message_count drops to 0), not before."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 300})
    t0 = time.monotonic()
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    if time.monotonic() - t0 < 0.2:
        assert count(ch, q) == 2
    gone = wait_gone(ch, q)
    assert gone - t0 >= 0.27
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_per_message_expiration_expires_without_consumer(conn, uniq):
    """The expiration property (milliseconds, as a string) expires a message on a queue without TTL."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q")
    t0 = time.monotonic()
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="200"))
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    assert wait_count(ch, q, 1, timeout=2.0) == 1
    assert time.monotonic() - t0 >= 0.18
    _m, p, body = ch.basic_get(q, auto_ack=True)
    assert (body, p.expiration) == (b"long", "60000")  # the expiration property is delivered as sent


@pytest.mark.parametrize("queue_ttl,msg_expiration,effective", [
    (5000, "150", 0.15),   # the message's own expiration is lower
    (150, "5000", 0.15),   # the queue's TTL is lower
    (150, "150", 0.15),
])
def test_lower_of_queue_ttl_and_expiration_wins(conn, uniq, queue_ttl, msg_expiration, effective):
    """With both x-message-ttl and an expiration property, the lower of the two applies."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": queue_ttl})
    t0 = time.monotonic()
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration=msg_expiration))
    gone = wait_gone(ch, q, timeout=2.0)
    assert effective * 0.9 <= gone - t0 < effective + 1.5


def test_queue_ttl_applies_per_message_from_its_enqueue_time(conn, uniq):
    """Each message's TTL counts from when it was enqueued: a later message outlives an earlier one."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 300})
    ch.basic_publish("", q, b"first")
    time.sleep(0.15)
    ch.basic_publish("", q, b"second")
    assert wait_count(ch, q, 1, timeout=2.0) == 1
    _m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"second"


def test_expired_head_removed_before_basic_get(conn, uniq):
    """basic.get never returns an expired message; the next live one is returned instead."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q")
    ch.basic_publish("", q, b"dies", pika.BasicProperties(expiration="50"))
    ch.basic_publish("", q, b"lives")
    time.sleep(0.1)
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"lives"
    assert m.message_count == 0


def test_expiring_messages_still_delivered_to_consumer_before_ttl(conn, uniq):
    """A consumer attached before the TTL passes receives the message normally."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 300})
    ch.basic_publish("", q, b"m")
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pump(conn, lambda: got, timeout=2)
    assert got == [b"m"]


# --------------------------------------------------------------------------- TTL 0

def test_ttl_zero_dropped_without_consumer(conn, uniq):
    """x-message-ttl=0 and no consumer: the message is dropped at once (still confirmed with ack)."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 0})
    ch.basic_publish("", q, b"m")  # ack, no NackError
    assert count(ch, q) == 0
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_expiration_zero_dropped_without_consumer(conn, uniq):
    """expiration='0' on a queue without TTL: dropped at once when nobody can take it."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q")
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="0"))
    assert count(ch, q) == 0


@pytest.mark.parametrize("via", ["queue-ttl", "expiration"])
def test_ttl_zero_delivered_to_waiting_consumer(conn, uniq, via):
    """TTL 0 (queue x-message-ttl or expiration property): delivered if a consumer can take it at once."""
    ch = confirm_channel(conn)
    args = {"x-message-ttl": 0} if via == "queue-ttl" else {}
    q = declare(ch, uniq + ".q", **args)
    got = []
    cons = conn.channel()
    cons.basic_consume(q, lambda c, m, p, b: got.append((b, p.expiration)), auto_ack=True)
    props = pika.BasicProperties(expiration="0") if via == "expiration" else None
    ch.basic_publish("", q, b"now", props)
    pump(conn, lambda: got, timeout=2)
    assert got == [(b"now", "0" if via == "expiration" else None)]


def test_ttl_zero_dropped_when_consumer_prefetch_is_full(conn, uniq):
    """TTL 0: a consumer at its prefetch limit cannot take it now, so the message is dropped,
    and it is not delivered later when the consumer acks."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 0})
    got = []
    cons = conn.channel()
    cons.basic_qos(prefetch_count=1)
    cons.basic_consume(q, lambda c, m, p, b: got.append((m.delivery_tag, b)))
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    ch.basic_publish("", q, b"c")
    pump(conn, lambda: got, timeout=2)
    conn.process_data_events(0.1)
    assert [b for _, b in got] == [b"a"]
    assert count(ch, q) == 0
    cons.basic_ack(got[0][0])
    conn.process_data_events(0.2)
    assert [b for _, b in got] == [b"a"]


def test_ttl_zero_dead_lettered_without_consumer(conn, uniq):
    """TTL 0 with a dead-letter exchange: the undeliverable message is dead-lettered (reason expired)."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 0, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": sink})
    ch.basic_publish("", q, b"m")
    _, p, body = wait_message(ch, sink)
    assert body == b"m"
    assert p.headers["x-death"][0]["reason"] == "expired"
    assert p.headers["x-death"][0]["queue"] == q
    assert count(ch, q) == 0


@pytest.mark.parametrize("via", ["queue-ttl", "expiration"])
@pytest.mark.parametrize("how", ["reject", "nack", "recover", "close", "cancel-close"])
@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_ttl_zero_message_requeued_expires_at_once(connect, uniq, cleanup, via, how, qtype):
    """A TTL-0 message taken by a consumer is past its deadline as soon as it is delivered: when it
    comes back (reject, nack, recover, its channel closing) it expires at once, dead-lettered with
    reason expired, and is not redelivered. (A quorum queue's deadline is the enqueue millisecond + 1,
    so the test waits a few ms before the requeue.)"""
    conn = connect()
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = uniq + ".q"
    cleanup.append(q)
    args = {"x-queue-type": qtype, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink}
    if via == "queue-ttl":
        args["x-message-ttl"] = 0
    ch.queue_declare(q, durable=True, arguments=args)
    got = []
    k = conn.channel()
    tag = k.basic_consume(q, lambda _c, m, p, b: got.append((m, b)))
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="0") if via == "expiration" else None)
    pump(conn, lambda: got, timeout=2)
    time.sleep(0.01)
    tag0 = got[0][0].delivery_tag
    if how == "reject":
        k.basic_reject(tag0, requeue=True)
    elif how == "nack":
        k.basic_nack(tag0, requeue=True)
    elif how == "recover":
        k.basic_recover(requeue=True)
    elif how == "cancel-close":
        k.basic_cancel(tag)
        k.close()
    else:
        k.close()
    _, p, body = wait_message(ch, sink)
    assert (body, p.headers["x-death"][0]["reason"], p.expiration) == (b"m", "expired", None)
    assert p.headers["x-death"][0].get("original-expiration") == ("0" if via == "expiration" else None)
    conn.process_data_events(0.1)
    assert [b for _, b in got] == [b"m"]
    assert count(ch, q) == 0


# --------------------------------------------------------------------------- requeue keeps expiry

def test_unacked_message_does_not_expire_while_delivered(conn, uniq):
    """An unacked (delivered) message is not expired or dead-lettered while a client holds it,
    even past its TTL; once requeued after its deadline it expires (dead-letters) at once."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 150, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": sink})
    ch.basic_publish("", q, b"held")
    m, _, body = ch.basic_get(q)
    assert body == b"held"
    time.sleep(0.35)
    assert count(ch, sink) == 0
    t_requeue = time.monotonic()
    ch.basic_nack(m.delivery_tag, requeue=True)
    _, p, body = wait_message(ch, sink)
    arrived = time.monotonic()
    assert body == b"held"
    assert p.headers["x-death"][0]["reason"] == "expired"
    assert arrived - t_requeue < 1.0
    assert count(ch, q) == 0


def test_requeued_message_keeps_original_expiry(conn, uniq):
    """A message requeued before its deadline keeps its original expiry: the TTL clock is not restarted."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 400})
    t0 = time.monotonic()
    ch.basic_publish("", q, b"m")
    m, _, _ = ch.basic_get(q)
    time.sleep(0.3)
    ch.basic_reject(m.delivery_tag, requeue=True)
    assert wait_count(ch, q, 1, timeout=1.0) == 1
    gone = wait_gone(ch, q, timeout=2.0)
    # Expires ~400 ms after publish, not 400 ms after the requeue (which would be >= 700 ms).
    assert 0.36 <= gone - t0 < 0.66


def test_requeued_per_message_expiration_keeps_original_expiry(conn, uniq):
    """Same for the expiration property: requeued after its deadline -> gone immediately, never redelivered."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q")
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="100"))
    m, _, _ = ch.basic_get(q)
    time.sleep(0.25)
    ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.05)
    assert ch.basic_get(q, auto_ack=True)[0] is None
    assert count(ch, q) == 0


# --------------------------------------------------------------------------- only the head expires
# RabbitMQ expires messages at the head of a queue only (rabbitmq.com/ttl.html: "expired messages
# can queue up behind non-expired ones until the latter are consumed or expired"). A message past
# its deadline behind a live one stays: counted, not dead-lettered, until it reaches the head. The
# waits below are far past the short deadlines; what they show does not depend on timing.

def ttl_queue(ch, cleanup, name: str, qtype: str, **args) -> tuple[str, str]:
    """A queue of type ``qtype`` dead-lettering to a fresh sink queue; returns (queue, sink)."""
    sink = declare(ch, name + ".sink")
    cleanup.append(name)
    ch.queue_declare(name, durable=True, arguments={"x-queue-type": qtype, **dlx_to(sink), **args})
    return name, sink


def dead_letters(ch, sink: str, n: int) -> list[tuple[bytes, str]]:
    """The next ``n`` dead letters of ``sink`` (waiting for each): (body, x-death reason)."""
    out = []
    for _ in range(n):
        _, p, body = wait_message(ch, sink)
        out.append((body, p.headers["x-death"][0]["reason"]))
    return out


def due_between_live(ch, cleanup, name: str, qtype: str, bodies: tuple) -> tuple[str, str]:
    """A ``ttl_queue`` holding ``bodies`` (live, short-TTL, live) once the middle one is past its
    deadline; returns (queue, sink)."""
    q, sink = ttl_queue(ch, cleanup, name, qtype)
    ch.basic_publish("", q, bodies[0])
    ch.basic_publish("", q, bodies[1], pika.BasicProperties(expiration="50"))
    ch.basic_publish("", q, bodies[2])
    time.sleep(0.3)
    return q, sink


def publish_prio(ch, q: str, *msgs: tuple[bytes, str, int]) -> None:
    """Publish each (body, expiration, priority) to ``q`` (through the default exchange)."""
    for body, expiration, priority in msgs:
        ch.basic_publish("", q, body, pika.BasicProperties(expiration=expiration, priority=priority))


def held_until_head_taken(ch, q: str, sink: str, n: int, head: bytes, expired: list[bytes]) -> None:
    """``q`` still counts ``n`` messages and nothing was dead-lettered; basic.get takes ``head``
    (the get-ok counts what is left after the new head's due messages expired: 0), and then
    ``expired`` are dead-lettered, in that order, with reason expired."""
    assert count(ch, q) == n
    assert count(ch, sink) == 0
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert (body, m.message_count) == (head, 0)
    assert dead_letters(ch, sink, len(expired)) == [(b, "expired") for b in expired]


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
@pytest.mark.parametrize("head", ["expiration", "queue-ttl"])
def test_expired_messages_wait_behind_a_live_head(conn, uniq, cleanup, qtype, head):
    """Short-TTL messages behind a long-lived head (its own expiration, or the queue's x-message-ttl)
    stay in the queue past their deadlines: still counted by queue.declare-ok, not dead-lettered.
    Once basic.get takes the head, they expire at once: the get-ok counts 0, and they are
    dead-lettered (reason expired) in queue order."""
    ch = confirm_channel(conn)
    args = {"x-message-ttl": 60000} if head == "queue-ttl" else {}
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", qtype, **args)
    ch.basic_publish("", q, b"head", pika.BasicProperties(expiration="60000") if head == "expiration" else None)
    ch.basic_publish("", q, b"short1", pika.BasicProperties(expiration="50"))
    ch.basic_publish("", q, b"short2", pika.BasicProperties(expiration="60"))
    time.sleep(0.3)
    held_until_head_taken(ch, q, sink, 3, b"head", [b"short1", b"short2"])
    assert count(ch, q) == 0


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_get_with_acks_counts_the_queue_after_or_before_the_new_head_expires(conn, uniq, cleanup, qtype):
    """basic.get with acks taking the head of [head, due, live]: a classic queue expires the due
    message before the get-ok counts the queue (1); a quorum queue's dequeue checks the head only
    before taking it, so its get-ok still counts the due message (2), which expires right after."""
    ch = confirm_channel(conn)
    q, sink = due_between_live(ch, cleanup, uniq + ".q", qtype, (b"head", b"due", b"live"))
    m, _, body = ch.basic_get(q)
    assert (body, m.message_count) == (b"head", 1 if qtype == "classic" else 2)
    assert dead_letters(ch, sink, 1) == [(b"due", "expired")]
    assert count(ch, q) == 1
    ch.basic_ack(m.delivery_tag)


@pytest.mark.parametrize("no_ack", [True, False])
@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_get_ok_takes_its_tag_before_the_dead_letters_it_causes(conn, uniq, cleanup, qtype, no_ack):
    """basic.get takes the head of [head, due]; the due message then expires and is dead-lettered
    to a queue a consumer on the same channel consumes: the get-ok has the next delivery tag and
    the dead-lettered delivery the one after (RabbitMQ's channel waits for the queue's reply to
    the get before it handles the dead-letter target's deliveries). Found by the lifecycle
    differential long run (seeds 50114, 50152, 50209, 50628)."""
    ch = confirm_channel(conn)
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", qtype)
    ch.basic_publish("", q, b"head")
    ch.basic_publish("", q, b"due", pika.BasicProperties(expiration="50"))
    time.sleep(0.3)
    got = []
    ch.basic_consume(sink, lambda _c, m, _p, b: got.append((b, m.delivery_tag)), auto_ack=True)
    m, _, body = ch.basic_get(q, auto_ack=no_ack)
    pump(conn, lambda: got, timeout=2)
    assert (body, m.delivery_tag) == (b"head", 1)
    assert got == [(b"due", 2)]
    if not no_ack:
        ch.basic_ack(m.delivery_tag)


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_consumer_arriving_later_gets_the_live_messages_and_the_expired_one_dead_letters(
        conn, uniq, cleanup, qtype):
    """A consumer that subscribes after a message behind the head expired gets the live ones; the
    expired one is dead-lettered as the consumer takes the head, never delivered."""
    ch = confirm_channel(conn)
    q, sink = due_between_live(ch, cleanup, uniq + ".q", qtype, (b"k1", b"k2", b"k3"))
    assert count(ch, q) == 3
    got = []
    k = conn.channel()
    k.basic_consume(q, lambda _c, _m, _p, b: got.append(b), auto_ack=True)
    pump(conn, lambda: len(got) >= 2, timeout=2)
    assert dead_letters(ch, sink, 1) == [(b"k2", "expired")]
    conn.process_data_events(0.1)
    assert got == [b"k1", b"k3"]


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_expired_message_behind_the_head_counts_against_max_length(conn, uniq, cleanup, qtype):
    """x-max-length counts an expired message still behind the head; the next publish drops the
    head (maxlen) and the expired message, now at the head, expires right after."""
    ch = confirm_channel(conn)
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", qtype, **{"x-max-length": 2})
    ch.basic_publish("", q, b"long1")
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="50"))
    time.sleep(0.3)
    assert count(ch, q) == 2
    assert count(ch, sink) == 0
    ch.basic_publish("", q, b"long2")
    assert dead_letters(ch, sink, 2) == [(b"long1", "maxlen"), (b"short", "expired")]
    assert count(ch, q) == 1


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_requeued_expired_message_behind_a_live_one_waits(conn, uniq, cleanup, qtype):
    """A message requeued after its deadline expires only once it is at the head: requeued behind a
    message without TTL (requeued first), it stays counted until that one is taken."""
    ch = confirm_channel(conn)
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", qtype)
    ch.basic_publish("", q, b"y1")
    ch.basic_publish("", q, b"y2", pika.BasicProperties(expiration="100"))
    m1, _, b1 = ch.basic_get(q)
    m2, _, b2 = ch.basic_get(q)
    assert (b1, b2) == (b"y1", b"y2")
    ch.basic_nack(m1.delivery_tag, requeue=True)
    time.sleep(0.3)
    ch.basic_nack(m2.delivery_tag, requeue=True)
    time.sleep(0.1)
    held_until_head_taken(ch, q, sink, 2, b"y1", [b"y2"])


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_requeued_expired_message_to_the_back_waits_behind_live_one(conn, uniq, cleanup, qtype):
    """A message taken, then nacked back after its deadline while a live message was published
    after it: a classic queue puts it back at the head, where it expires at once; a quorum queue
    puts it at the back (rabbit_fifo's requeue), where it waits behind the live message."""
    ch = confirm_channel(conn)
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", qtype)
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="100"))
    m, _, _ = ch.basic_get(q)
    ch.basic_publish("", q, b"live")
    time.sleep(0.3)
    ch.basic_nack(m.delivery_tag, requeue=True)
    if qtype == "classic":
        assert dead_letters(ch, sink, 1) == [(b"x", "expired")]
        assert count(ch, q) == 1
    else:
        time.sleep(0.1)
        held_until_head_taken(ch, q, sink, 2, b"live", [b"x"])


def test_priority_queue_short_ttl_behind_long_of_same_or_higher_priority_waits(conn, uniq, cleanup):
    """x-max-priority: the head is the oldest message of the highest priority. Short-TTL messages
    behind a long-lived one of the same priority (and one of a lower priority) wait past their
    deadlines; taking the head expires them all, highest priority first."""
    ch = confirm_channel(conn)
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", "classic", **{"x-max-priority": 5})
    publish_prio(ch, q, (b"long5", "60000", 5), (b"short5", "50", 5), (b"short0", "50", 0))
    time.sleep(0.3)
    held_until_head_taken(ch, q, sink, 3, b"long5", [b"short5", b"short0"])


def test_priority_queue_higher_priority_head_is_not_checked_until_a_fetch(conn, uniq, cleanup):
    """A higher-priority message that becomes the head of a non-empty priority queue is not checked
    for expiry when it enters (RabbitMQ checks the head on a publish only into an empty queue): past
    its deadline it is still there, and basic.get returns it. The fetch then checks the new head
    (long-lived): the short-TTL message of the same priority behind it waits."""
    ch = confirm_channel(conn)
    q, sink = ttl_queue(ch, cleanup, uniq + ".q", "classic", **{"x-max-priority": 5})
    publish_prio(ch, q, (b"long0", "60000", 0), (b"short0", "50", 0), (b"short5", "50", 5))
    time.sleep(0.3)
    assert count(ch, q) == 3
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert (body, p.expiration, m.message_count) == (b"short5", "50", 2)
    time.sleep(0.1)
    held_until_head_taken(ch, q, sink, 2, b"long0", [b"short0"])


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
@pytest.mark.parametrize("dlx", [True, False])
def test_expiration_zero_into_a_non_empty_queue_waits_behind_the_head(conn, uniq, cleanup, qtype, dlx):
    """expiration '0' into a queue that holds a message: the TTL-0 message is queued behind it like
    any other (counted), and expires once the head is taken (dead-lettered with a DLX)."""
    ch = confirm_channel(conn)
    if dlx:
        q, sink = ttl_queue(ch, cleanup, uniq + ".q", qtype)
    else:
        q, sink = uniq + ".q", None
        cleanup.append(q)
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": qtype})
    ch.basic_publish("", q, b"head")
    ch.basic_publish("", q, b"zero", pika.BasicProperties(expiration="0"))
    time.sleep(0.1)
    assert count(ch, q) == 2
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert (body, m.message_count) == (b"head", 0)
    if dlx:
        assert dead_letters(ch, sink, 1) == [(b"zero", "expired")]
    assert ch.basic_get(q, auto_ack=True)[0] is None


# --------------------------------------------------------------------------- x-expires

def test_queue_expires_when_unused(conn, connect, uniq, cleanup):
    """x-expires: a queue with no consumers and no declare/get for that long is deleted."""
    ch = conn.channel()
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-expires": 200})
    time.sleep(0.45)
    assert not queue_exists(connect, q)


def test_queue_expires_with_messages_and_does_not_dead_letter_them(conn, connect, uniq, cleanup):
    """An expiring queue is deleted even if it holds messages; they are not dead-lettered."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-expires": 150, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": sink})
    ch.basic_publish("", q, b"m")
    time.sleep(0.4)
    assert not queue_exists(connect, q)
    assert count(ch, sink) == 0


@pytest.mark.parametrize("touch", ["passive-declare", "declare", "basic-get"])
def test_queue_expiry_timer_reset_by_declare_and_get(conn, connect, uniq, cleanup, touch):
    """queue.declare (passive or not) and basic.get (even on an empty queue) restart the expiry timer."""
    ch = conn.channel()
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-expires": 300})
    actions = {
        "passive-declare": lambda: ch.queue_declare(q, passive=True),
        "declare": lambda: ch.queue_declare(q, arguments={"x-expires": 300}),
        "basic-get": lambda: ch.basic_get(q),
    }
    for _ in range(5):  # 750 ms in all, far past 300 ms, but never 300 ms untouched
        time.sleep(0.15)
        actions[touch]()
    assert queue_exists(connect, q)  # (this passive declare restarts the timer too)
    time.sleep(0.5)
    assert not queue_exists(connect, q)


def test_publishing_does_not_reset_queue_expiry(conn, connect, uniq, cleanup):
    """Publishing to a queue does not count as use: it still expires on schedule."""
    ch = conn.channel()
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-expires": 300})
    for _ in range(6):
        time.sleep(0.1)
        ch.basic_publish("", q, b"m")
    time.sleep(0.1)
    assert not queue_exists(connect, q)


def test_consumer_prevents_queue_expiry_and_cancel_restarts_timer(conn, connect, uniq, cleanup):
    """While a consumer exists the queue never expires; the timer starts again from its cancel."""
    ch = conn.channel()
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-expires": 200})
    tag = ch.basic_consume(q, lambda *a: None)
    time.sleep(0.45)
    assert queue_exists(connect, q)
    ch.basic_cancel(tag)
    time.sleep(0.1)
    assert queue_exists(connect, q)  # cancel restarted the timer (and this declare restarts it again)
    time.sleep(0.45)
    assert not queue_exists(connect, q)


def test_closing_consumer_channel_restarts_expiry_timer(conn, connect, uniq, cleanup):
    """When the last consumer goes away with its channel, the queue expires x-expires later."""
    ch = conn.channel()
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-expires": 200})
    cons = conn.channel()
    cons.basic_consume(q, lambda *a: None)
    time.sleep(0.4)
    cons.close()
    time.sleep(0.05)
    assert queue_exists(connect, q)
    time.sleep(0.45)
    assert not queue_exists(connect, q)


# --------------------------------------------------------------------------- argument validation

_TOO_LARGE = 315_360_000_001  # RabbitMQ's limit: 10 years in milliseconds (315_360_000_000)


@pytest.mark.parametrize("key,value,why", [
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-message-ttl", -(2 ** 40), "{value_negative,-1099511627776}"),
    ("x-message-ttl", _TOO_LARGE, "{value_too_large,315360000001}"),
    ("x-message-ttl", "100", '"expected integer, got longstr"'),
    ("x-message-ttl", True, '"expected integer, got bool"'),
    ("x-message-ttl", decimal.Decimal("1.5"), '"expected integer, got decimal"'),
    ("x-message-ttl", None, '"expected integer, got void"'),
    ("x-message-ttl", [100], '"expected integer, got array"'),
    ("x-message-ttl", {"ms": 100}, '"expected integer, got table"'),
    ("x-message-ttl", b"100", '"expected integer, got binary"'),
    ("x-message-ttl", datetime.datetime(2020, 1, 1), '"expected integer, got timestamp"'),
    ("x-expires", -1, "{value_negative,-1}"),
    ("x-expires", 0, "{value_zero,0}"),
    ("x-expires", _TOO_LARGE, "{value_too_large,315360000001}"),
    ("x-expires", "100", '"expected integer, got longstr"'),
    ("x-expires", False, '"expected integer, got bool"'),
    ("x-expires", None, '"expected integer, got void"'),
    ("x-expires", [1], '"expected integer, got array"'),
])
def test_invalid_ttl_and_expires_args(conn, uniq, key, value, why):
    """Invalid x-message-ttl / x-expires values close the channel with 406 and the exact reason."""
    ch = conn.channel()
    q = uniq + ".q"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments={key: value})
    closed_with(ei, 406, invalid_arg(key, q, why))
    assert conn.is_open
    assert conn.channel().queue_declare(q, exclusive=True).method.queue == q  # nothing was created


@pytest.mark.parametrize("key,value", [
    ("x-message-ttl", 0),
    ("x-message-ttl", 315_360_000_000),
    ("x-message-ttl", 2 ** 32),
    ("x-expires", 1),
    ("x-expires", 315_360_000_000),
])
def test_valid_ttl_and_expires_bounds(ch, uniq, key, value):
    """Accepted extremes: TTL 0, expires 1, and 315360000000 ms (10 years) for both."""
    q = ch.queue_declare(uniq + ".q", exclusive=True, arguments={key: value}).method.queue
    assert q == uniq + ".q"


_INT_FIELDS = {
    "short-short-int b": b"b" + struct.pack(">b", 5),
    "short-short-uint B": b"B" + struct.pack(">B", 5),
    "short-int s": b"s" + struct.pack(">h", 5),
    "short-uint u": b"u" + struct.pack(">H", 5),
    "long-int I": b"I" + struct.pack(">i", 5),
    "long-uint i": b"i" + struct.pack(">I", 5),
    "long-long-int l": b"l" + struct.pack(">q", 5),
}
_NON_INT_FIELDS = {
    "float": b"f" + struct.pack(">f", 5.0),
    "double": b"d" + struct.pack(">d", 5.0),
}


@pytest.mark.parametrize("key", ["x-message-ttl", "x-expires"])
def test_ttl_args_accept_every_integer_field_type_and_refuse_floats(rawc, uniq, key):
    """Raw wire: every AMQP integer field type (b B s u I i l) is accepted; float 'f' and
    double 'd' are refused with "expected integer, got float|double"."""
    c = rawc()
    n = 1
    for label, field in _INT_FIELDS.items():
        c.open_channel(n)
        q = f"{uniq}.{n}"
        reply = declare_raw_arg(c, n, q, key, field)
        assert isinstance(reply, C.Queue.DeclareOk), (label, reply)
        n += 1
    for label, field in _NON_INT_FIELDS.items():
        c.open_channel(n)
        q = f"{uniq}.{n}"
        reply = declare_raw_arg(c, n, q, key, field)
        assert isinstance(reply, C.Channel.Close), (label, reply)
        assert (reply.reply_code, reply.reply_text) == (
            406, invalid_arg(key, q, f'"expected integer, got {label}"'))
        c.send_method(n, C.Channel.CloseOk())
        n += 1


def test_arg_validation_order_is_fixed_not_client_order(conn, uniq):
    """Several invalid arguments: RabbitMQ reports them in its own fixed order (x-expires before
    x-message-ttl), whatever order the client's table has."""
    ch = conn.channel()
    q = uniq + ".q"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": -1, "x-expires": 0})
    closed_with(ei, 406, invalid_arg("x-expires", q, "{value_zero,0}"))


def test_redeclare_existing_with_invalid_ttl_is_inequivalent_not_invalid(conn, uniq):
    """For an existing queue the equivalence check comes first: an invalid x-message-ttl on
    redeclare yields the 'inequivalent arg' text, not 'invalid arg'."""
    ch = conn.channel()
    q = declare(ch, uniq + ".q", **{"x-message-ttl": 100})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        conn.channel().queue_declare(q, exclusive=True, arguments={"x-message-ttl": -1})
    closed_with(ei, 406, f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' "
                         "in vhost '/': received '-1' but current is '100'")


def test_passive_declare_ignores_invalid_ttl(conn, uniq):
    """A passive declare does not validate arguments."""
    ch = conn.channel()
    q = declare(ch, uniq + ".q")
    ok = ch.queue_declare(q, passive=True, arguments={"x-message-ttl": -1, "x-expires": 0}).method
    assert ok.queue == q
