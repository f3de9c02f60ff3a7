"""Conformance tests for queue length limits: ``x-max-length``, ``x-max-length-bytes`` and
``x-overflow`` (drop-head, reject-publish, reject-publish-dlx).

Every expectation was observed on RabbitMQ 3.10.8 (classic queues); reply codes and
texts are exact. Limits count READY messages only (not unacked ones) and, for bytes,
only message bodies (not properties/headers).
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

from .helpers import (bodies, closed_with, confirm_channel, count, declare, declare_raw_arg, dlx_to, drain_get,
                      invalid_arg, published, pump, wait_count)


# --------------------------------------------------------------------------- drop-head

@pytest.mark.parametrize("overflow", [None, "drop-head"])
def test_max_length_drop_head_keeps_newest(conn, uniq, overflow):
    """x-max-length with the default (or explicit) drop-head: the oldest messages are dropped; every
    publish is still confirmed with basic.ack."""
    ch = confirm_channel(conn)
    args = {"x-max-length": 2}
    if overflow:
        args["x-overflow"] = overflow
    q = declare(ch, uniq + ".q", **args)
    assert [published(ch, q, str(i).encode()) for i in range(5)] == [True] * 5
    assert count(ch, q) == 2
    assert bodies(ch, q) == [b"3", b"4"]


def test_drop_head_dead_letters_with_reason_maxlen(conn, uniq):
    """drop-head with a DLX: each dropped message is dead-lettered, oldest first, reason 'maxlen'."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **{"x-max-length": 2, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": sink})
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, sink, 3) == 3
    dead = []
    while True:
        m, p, body = ch.basic_get(sink, auto_ack=True)
        if m is None:
            break
        dead.append((body, p.headers["x-death"][0]["reason"], p.headers["x-death"][0]["queue"],
                     p.headers["x-death"][0]["routing-keys"], p.headers["x-first-death-reason"]))
    assert dead == [(str(i).encode(), "maxlen", q, [q], "maxlen") for i in range(3)]
    assert bodies(ch, q) == [b"3", b"4"]


def test_drop_head_without_existing_dlx_just_drops(conn, uniq):
    """drop-head with a DLX that does not exist: dropped silently, channel stays open."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-dead-letter-exchange": uniq + ".nox"})
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert bodies(ch, q) == [b"2"]
    assert ch.is_open


def test_max_length_counts_only_ready_messages(conn, uniq):
    """Unacked (delivered) messages do not count toward x-max-length."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 1})
    ch.basic_publish("", q, b"a")
    m, _, body = ch.basic_get(q)
    assert body == b"a"
    ch.basic_publish("", q, b"b")
    assert count(ch, q) == 1
    ch.basic_ack(m.delivery_tag)
    assert bodies(ch, q) == [b"b"]


def test_drop_head_requeued_message_is_dropped_first(conn, uniq):
    """A requeued message goes back to the head; if that puts the queue over the limit, drop-head
    drops it (the head), not the newer message."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 1})
    ch.basic_publish("", q, b"old")
    m, _, _ = ch.basic_get(q)
    ch.basic_publish("", q, b"new")
    ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.05)
    assert drain_get(ch, q) == [(b"new", False)]


def test_max_length_zero_drop_head(conn, uniq):
    """x-max-length=0 (drop-head): no consumer -> every message dropped; a waiting consumer gets it."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 0})
    assert published(ch, q, b"dropped")
    assert count(ch, q) == 0
    got = []
    cons = conn.channel()
    cons.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    assert published(ch, q, b"delivered")
    pump(conn, lambda: got, timeout=2)
    assert got == [b"delivered"]


def dead_reasons(ch, sink: str, n: int) -> list[tuple[bytes, str]]:
    """The first ``n`` messages dead-lettered to ``sink``: (body, x-death reason), in order."""
    assert wait_count(ch, sink, n) == n
    out = []
    for _ in range(n):
        _, p, body = ch.basic_get(sink, auto_ack=True)
        out.append((body, p.headers["x-death"][0]["reason"]))
    return out


@pytest.mark.parametrize("limit,reason", [
    ({"x-max-length": 0}, "maxlen"), ({"x-max-length-bytes": 0}, "maxlen"), ({"x-max-length-bytes": 1}, "maxlen"),
    ({"x-max-length": 1}, "expired"), ({"x-max-length-bytes": 2}, "expired"),
    ({"x-max-length": 0, "x-overflow": "reject-publish-dlx"}, None),
], ids=["len-0", "bytes-0", "bytes-1", "len-1", "bytes-fit", "reject-publish-dlx"])
@pytest.mark.parametrize("via", ["queue-ttl", "expiration"])
@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_ttl_zero_message_over_the_limit_is_dropped_as_maxlen(connect, uniq, cleanup, limit, reason, via, qtype):
    """A TTL-0 message no consumer can take enters the queue before it expires, so drop-head acts
    first: if the message alone is over a limit it is dead-lettered as maxlen, otherwise it expires
    (reason expired). (reject-publish-dlx: a classic queue refuses it (nack) and dead-letters it as
    maxlen; a 3.10 quorum queue treats it as drop-head.)"""
    ch = confirm_channel(connect())
    sink = declare(ch, uniq + ".sink")
    q = uniq + ".q"
    cleanup.append(q)
    args = {"x-queue-type": qtype, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink, **limit}
    if via == "queue-ttl":
        args["x-message-ttl"] = 0
    ch.queue_declare(q, durable=True, arguments=args)
    acked = published(ch, q, b"mm", pika.BasicProperties(expiration="0") if via == "expiration" else None)
    assert acked is (reason is not None or qtype == "quorum")
    assert dead_reasons(ch, sink, 1) == [(b"mm", reason or "maxlen")]
    assert count(ch, q) == 0


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_ttl_zero_message_into_a_full_queue_drops_the_head_then_expires(connect, uniq, cleanup, qtype):
    """A full drop-head queue: the TTL-0 message pushes the head out (maxlen), then, at the head
    itself, it expires (expired)."""
    ch = confirm_channel(connect())
    sink = declare(ch, uniq + ".sink")
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": qtype, "x-max-length": 1,
                                                 "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink})
    assert published(ch, q, b"a")
    assert wait_count(ch, q, 1) == 1
    assert published(ch, q, b"b", pika.BasicProperties(expiration="0"))
    assert dead_reasons(ch, sink, 2) == [(b"a", "maxlen"), (b"b", "expired")]
    assert count(ch, q) == 0


@pytest.mark.parametrize("how", ["nack", "channel-close"])
def test_requeue_past_the_ttl_drops_the_head_before_expiring(connect, uniq, how):
    """A classic queue with x-message-ttl 0 and x-max-length 2 delivers three messages to a
    consumer; when they come back (nack with requeue, or their channel closing), they all go back
    first, drop-head dead-letters the head (maxlen), then the other two expire
    (rabbit_amqqueue_process:requeue_and_run: maybe_drop_head before drop_expired_msgs;
    lifecycle seed 11194)."""
    conn = connect()
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", exclusive=False, **dlx_to(sink, **{"x-max-length": 2, "x-message-ttl": 0}))
    try:
        c = conn.channel()
        got = []
        c.basic_consume(q, lambda _c, m, _p, b: got.append(m.delivery_tag))
        for b in "abc":
            assert published(ch, q, b)
        pump(conn, lambda: len(got) == 3, timeout=2)
        assert len(got) == 3
        if how == "nack":
            c.basic_nack(0, multiple=True, requeue=True)
            c.basic_cancel(c.consumer_tags[0])
        else:
            c.close()
        assert dead_reasons(ch, sink, 3) == [(b"a", "maxlen"), (b"b", "expired"), (b"c", "expired")]
        assert count(ch, q) == 0
    finally:
        ch.queue_delete(q)


@pytest.mark.parametrize("how", ["nack", "channel-close"])
def test_quorum_return_serves_a_no_ack_consumer_up_to_its_prefetch(connect, uniq, cleanup, how):
    """A quorum queue (x-max-length 0, drop-head) whose messages a consumer holds: when both come
    back in one command (a multiple nack with requeue -- one return command with a delivery limit
    set -- or the consumer's channel closing), a higher-priority no-ack consumer with prefetch 1
    takes only the first: rabbit_fifo checks no-ack deliveries out against the consumer's credit,
    given back only when its channel settles them, a later command. The second goes to the
    remaining consumer (nack), or stays ready and drop-head dead-letters it, maxlen
    (channel-close). Lifecycle seed 63274."""
    conn = connect()
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, durable=True, arguments=dlx_to(sink, **{
        "x-queue-type": "quorum", "x-max-length": 0, "x-delivery-limit": 2}))
    holder = conn.channel()
    held: list = []
    holder.basic_consume(q, lambda _c, m, _p, b: held.append((b, m.redelivered)))
    for b in "ab":
        assert published(ch, q, b)
    pump(conn, lambda: len(held) == 2, timeout=2)
    assert held == [(b"a", False), (b"b", False)]
    fast = conn.channel()
    fast.basic_qos(prefetch_count=1)
    got: list = []
    fast.basic_consume(q, lambda _c, m, p, b: got.append((b, p.headers["x-delivery-count"])),
                       auto_ack=True, arguments={"x-priority": 2})
    if how == "nack":
        holder.basic_nack(0, multiple=True, requeue=True)
        pump(conn, lambda: len(got) + len(held) == 4, timeout=2)
        assert got == [(b"a", 1)]
        assert held[2:] == [(b"b", True)]
    else:
        holder.close()
        assert dead_reasons(ch, sink, 1) == [(b"b", "maxlen")]
        pump(conn, lambda: len(got) == 1, timeout=2)
        assert got == [(b"a", 1)]
    assert count(ch, q) == 0
    fast.close()
    assert count(ch, sink) == 0


# --------------------------------------------------------------------------- x-max-length-bytes

def test_max_length_bytes_counts_bodies_not_headers(conn, uniq):
    """x-max-length-bytes sums body sizes only: 4-byte bodies with 1000-byte headers, limit 10 -> 2 kept."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length-bytes": 10})
    props = pika.BasicProperties(headers={"big": "x" * 1000}, content_type="y" * 200)
    for i in range(4):
        ch.basic_publish("", q, b"abc" + str(i).encode(), props)
    assert bodies(ch, q) == [b"abc2", b"abc3"]


def test_max_length_bytes_exact_fit_and_oversized(conn, uniq):
    """Bodies summing exactly to the limit fit; a single body larger than the limit is dropped
    at once (it is the head); empty bodies cost nothing."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length-bytes": 10})
    ch.basic_publish("", q, b"12345")
    ch.basic_publish("", q, b"67890")
    assert count(ch, q) == 2
    ch.basic_publish("", q, b"")
    assert count(ch, q) == 3
    ch.basic_publish("", q, b"1")  # 11 bytes now: the head (12345) goes
    assert bodies(ch, q) == [b"67890", b"", b"1"]
    ch.basic_publish("", q, b"x" * 11)  # alone over the limit: dropped itself
    assert count(ch, q) == 0
    for _ in range(3):
        ch.basic_publish("", q, b"")
    assert count(ch, q) == 3


def test_max_length_and_bytes_whichever_hits_first(conn, uniq):
    """With both limits set, either one being exceeded drops the head."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 3, "x-max-length-bytes": 8})
    for b in (b"aa", b"bb", b"cc", b"dd"):
        ch.basic_publish("", q, b)
    assert bodies(ch, q) == [b"bb", b"cc", b"dd"]  # count limit
    for b in (b"1", b"2222222"):
        ch.basic_publish("", q, b)
    assert count(ch, q) == 2  # exactly 8 bytes: fits
    ch.basic_publish("", q, b"3")
    assert bodies(ch, q) == [b"2222222", b"3"]  # 9 bytes > 8: head dropped


# --------------------------------------------------------------------------- reject-publish

def test_reject_publish_nacks_in_confirm_mode(conn, uniq):
    """x-overflow=reject-publish: a publish that would exceed the limit gets basic.nack; the queue
    keeps its existing (oldest) messages."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    assert [published(ch, q, str(i).encode()) for i in range(4)] == [True, True, False, False]
    assert bodies(ch, q) == [b"0", b"1"]
    assert published(ch, q, b"room again")
    assert bodies(ch, q) == [b"room again"]


def test_reject_publish_without_confirms_silently_drops(conn, uniq):
    """Without confirms a rejected publish is dropped silently; the channel stays open."""
    ch = conn.channel()
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-overflow": "reject-publish"})
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 1) == 1
    conn.process_data_events(0.05)
    assert ch.is_open
    assert bodies(ch, q) == [b"0"]


def test_reject_publish_bytes(conn, uniq):
    """reject-publish applies to x-max-length-bytes too (body bytes only)."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length-bytes": 5, "x-overflow": "reject-publish"})
    big = pika.BasicProperties(headers={"h": "x" * 500})
    assert published(ch, q, b"abc", big)
    assert published(ch, q, b"de", big)
    assert not published(ch, q, b"f")
    assert published(ch, q, b"")
    assert bodies(ch, q) == [b"abc", b"de", b""]


def test_reject_publish_does_not_dead_letter(conn, uniq):
    """reject-publish with a DLX: the rejected publish is only nacked, not dead-lettered."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-overflow": "reject-publish",
                                    "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink})
    assert published(ch, q, b"in")
    assert not published(ch, q, b"out")
    time.sleep(0.05)
    assert count(ch, sink) == 0
    assert bodies(ch, q) == [b"in"]


def test_reject_publish_unacked_not_counted_and_requeue_may_exceed(conn, uniq):
    """reject-publish counts ready messages only; a requeue may take the queue over the limit
    (nothing is dropped), and publishes are nacked until it is back under."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-overflow": "reject-publish"})
    assert published(ch, q, b"a")
    m, _, _ = ch.basic_get(q)
    assert published(ch, q, b"b")  # 'a' is unacked: not counted
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert wait_count(ch, q, 2) == 2
    assert not published(ch, q, b"c")
    assert drain_get(ch, q) == [(b"a", True), (b"b", False)]


def test_reject_publish_max_length_zero_nacks_even_with_consumer(conn, uniq):
    """reject-publish checks the limit before delivery: x-max-length=0 nacks every publish even
    when a consumer is waiting (unlike drop-head, which delivers to it)."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    got = []
    cons = conn.channel()
    cons.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    assert not published(ch, q, b"x")
    conn.process_data_events(0.1)
    assert got == []


def test_reject_publish_mandatory_is_nacked_not_returned(conn, uniq):
    """A mandatory publish rejected by a full queue was routed: basic.nack, no basic.return."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"x", mandatory=True)
    conn.process_data_events(0.1)
    assert returned == []


def test_reject_publish_one_full_queue_nacks_whole_publish(conn, uniq, cleanup_exchanges):
    """Fanout to a full reject-publish queue and a normal queue: the publisher gets basic.nack,
    yet the normal queue still received its copy."""
    ch = confirm_channel(conn)
    x = uniq + ".fan"
    cleanup_exchanges.append(x)
    ch.exchange_declare(x, "fanout")
    full = declare(ch, uniq + ".full", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    other = declare(ch, uniq + ".other")
    ch.queue_bind(full, x)
    ch.queue_bind(other, x)
    assert not published(ch, "", b"m", exchange=x)
    assert bodies(ch, other) == [b"m"]
    assert count(ch, full) == 0


# --------------------------------------------------------------------------- reject-publish-dlx

def test_reject_publish_dlx_nacks_and_dead_letters(conn, uniq):
    """x-overflow=reject-publish-dlx: the overflowing publish is BOTH nacked to the publisher AND
    dead-lettered (reason 'maxlen'); the queue keeps its existing messages. The dead-lettered copy
    loses its expiration property and records it as original-expiration."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                    "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink})
    assert published(ch, q, b"kept")
    assert not published(ch, q, b"rejected", pika.BasicProperties(expiration="60000", priority=4))
    assert wait_count(ch, sink, 1) == 1
    m, p, body = ch.basic_get(sink, auto_ack=True)
    assert body == b"rejected"
    assert (m.exchange, m.routing_key) == ("", sink)
    assert p.expiration is None
    assert p.priority == 4
    death = p.headers["x-death"]
    assert len(death) == 1
    assert death[0]["reason"] == "maxlen"
    assert death[0]["queue"] == q
    assert death[0]["count"] == 1
    assert death[0]["original-expiration"] == "60000"
    assert (p.headers["x-first-death-reason"], p.headers["x-first-death-queue"],
            p.headers["x-first-death-exchange"]) == ("maxlen", q, "")
    assert bodies(ch, q) == [b"kept"]


def test_reject_publish_dlx_without_dlx_behaves_like_reject_publish(conn, uniq):
    """reject-publish-dlx with no DLX configured: just nacked."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    assert published(ch, q, b"a")
    assert not published(ch, q, b"b")
    assert bodies(ch, q) == [b"a"]


def test_reject_publish_dlx_without_confirms(conn, uniq):
    """Without confirms, reject-publish-dlx still dead-letters the overflowing message."""
    ch = conn.channel()
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                    "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink})
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    assert wait_count(ch, sink, 1) == 1
    assert bodies(ch, sink) == [b"b"]
    assert bodies(ch, q) == [b"a"]


# --------------------------------------------------------------------------- argument validation

@pytest.mark.parametrize("key,value,why", [
    ("x-max-length", -1, "{value_negative,-1}"),
    ("x-max-length", -(2 ** 40), "{value_negative,-1099511627776}"),
    ("x-max-length", "5", '"expected integer, got longstr"'),
    ("x-max-length", True, '"expected integer, got bool"'),
    ("x-max-length", decimal.Decimal("1.5"), '"expected integer, got decimal"'),
    ("x-max-length", None, '"expected integer, got void"'),
    ("x-max-length", [1], '"expected integer, got array"'),
    ("x-max-length", {"n": 1}, '"expected integer, got table"'),
    ("x-max-length", b"5", '"expected integer, got binary"'),
    ("x-max-length", datetime.datetime(2020, 1, 1), '"expected integer, got timestamp"'),
    ("x-max-length-bytes", -1, "{value_negative,-1}"),
    ("x-max-length-bytes", "5", '"expected integer, got longstr"'),
    ("x-max-length-bytes", False, '"expected integer, got bool"'),
    ("x-max-length-bytes", None, '"expected integer, got void"'),
    ("x-overflow", "bogus", "invalid_overflow"),
    ("x-overflow", "", "invalid_overflow"),
    ("x-overflow", "Drop-Head", "invalid_overflow"),
    ("x-overflow", 1, "{unacceptable_type,signedint}"),
    ("x-overflow", 2 ** 40, "{unacceptable_type,long}"),
    ("x-overflow", True, "{unacceptable_type,bool}"),
    ("x-overflow", b"drop-head", "{unacceptable_type,binary}"),
    ("x-overflow", None, "{unacceptable_type,void}"),
    ("x-overflow", ["drop-head"], "{unacceptable_type,array}"),
])
def test_invalid_length_args(conn, uniq, key, value, why):
    """Invalid x-max-length / x-max-length-bytes / x-overflow close the channel with 406 and the exact reason."""
    ch = conn.channel()
    q = uniq + ".q"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments={key: value})
    closed_with(ei, 406, invalid_arg(key, q, why))
    assert conn.is_open


@pytest.mark.parametrize("args", [
    {"x-max-length": 0},
    {"x-max-length-bytes": 0},
    {"x-max-length": 2 ** 63 - 1},
    {"x-max-length-bytes": 2 ** 63 - 1},
    {"x-overflow": "drop-head"},
    {"x-overflow": "reject-publish"},
    {"x-overflow": "reject-publish-dlx"},
    {"x-max-length": 5, "x-max-length-bytes": 5, "x-overflow": "reject-publish"},
])
def test_valid_length_args(ch, uniq, args):
    """0, huge values, and the three overflow modes are accepted (x-overflow alone, without a limit, too)."""
    assert ch.queue_declare(uniq + ".q", exclusive=True, arguments=args).method.queue == uniq + ".q"


def test_length_arg_validation_order(conn, uniq):
    """Several invalid arguments: x-max-length is reported before x-max-length-bytes and x-overflow,
    regardless of the order in the client's table."""
    ch = conn.channel()
    q = uniq + ".q"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments={"x-overflow": "bogus", "x-max-length-bytes": -1,
                                                        "x-max-length": -2})
    closed_with(ei, 406, invalid_arg("x-max-length", q, "{value_negative,-2}"))
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments={"x-overflow": "bogus", "x-max-length-bytes": -1})
    closed_with(ei, 406, invalid_arg("x-max-length-bytes", q, "{value_negative,-1}"))


def test_length_args_raw_field_types(rawc, uniq):
    """Raw wire: integer field types b B s u I i l are accepted for x-max-length; float/double are
    refused ("expected integer, got float|double"); x-overflow as a byte is {unacceptable_type,byte}."""
    c = rawc()

    def declare_raw(n: int, key: str, field: bytes):
        c.open_channel(n)
        q = f"{uniq}.{n}"
        return q, declare_raw_arg(c, n, q, key, field)

    n = 0
    for field in (b"b\x05", b"B\x05", b"s\x00\x05", b"u\x00\x05", b"I" + struct.pack(">i", 5),
                  b"i" + struct.pack(">I", 5), b"l" + struct.pack(">q", 5)):
        n += 1
        _, reply = declare_raw(n, "x-max-length", field)
        assert isinstance(reply, C.Queue.DeclareOk), (field, reply)
    for label, field, key, why in [
        ("float", b"f" + struct.pack(">f", 5.0), "x-max-length", '"expected integer, got float"'),
        ("double", b"d" + struct.pack(">d", 5.0), "x-max-length-bytes", '"expected integer, got double"'),
        ("byte", b"b\x01", "x-overflow", "{unacceptable_type,byte}"),
    ]:
        n += 1
        q, reply = declare_raw(n, key, field)
        assert isinstance(reply, C.Channel.Close), (label, reply)
        assert (reply.reply_code, reply.reply_text) == (406, invalid_arg(key, q, why))
        c.send_method(n, C.Channel.CloseOk())
