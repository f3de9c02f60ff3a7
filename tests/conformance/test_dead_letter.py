"""Conformance tests for dead-lettering: ``x-dead-letter-exchange``,
``x-dead-letter-routing-key``, the reasons (rejected, expired, maxlen), the ``x-death``
header and ``x-first-death-*`` headers, cycles, CC/BCC, and what is preserved.

Every expectation was observed on RabbitMQ 3.10.8 (classic queues). Several tests read
the dead-lettered message with a raw wire decoder (``rawamqp`` + the typed decoder in helpers.py)
because pika's dicts hide AMQP field types and cannot show the exact table key order.

RabbitMQ 3.10.8's x-death layout, pinned here:
* first death of a message: ``x-death`` = [one table] with keys in this order:
  count(long 'l'), reason(longstr), queue(longstr), time(timestamp 'T', seconds),
  exchange(longstr), routing-keys(array of longstr), [original-expiration(longstr)];
  plus ``x-first-death-reason/queue/exchange`` (longstr).
* any later death: the table for (queue, reason) is updated (count+1; time, exchange,
  routing-keys keep their first values) or created (count 1), its keys are then SORTED
  bytewise (count, exchange, original-expiration, queue, reason, routing-keys, time), and
  it is put at the front; the OTHER tables keep their contents but come out in REVERSE
  order (3.10 quirk: new array = [this] ++ reverse(old array minus this)).
* the whole headers table of a dead-lettered message is sorted bytewise by key.
RabbitMQ 3.13+ also sets ``x-last-death-reason/queue/exchange``; 3.10 does not, nor does
Leveret in its default (3.10) mode: the tests assert they are absent on both (Leveret's 3.13+
mode, ``last_death_headers``, is tested in tests/test_rabbitmq4_mode.py).
"""
from __future__ import annotations

import asyncio
import time

import aio_pika
import aio_pika.exceptions
import pika
import pika.exceptions
import pytest

from .helpers import (aio_wait_get, closed_with, confirm_channel, count, declare, dlx_to, is_leveret,
                      raw_wait_get, read_content, wait_count, wait_message)

# --------------------------------------------------------------------------- helpers

def reject_one(ch, q: str, how: str = "reject") -> None:
    m, _, _ = wait_message(ch, q, auto_ack=False)
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=False)
    else:
        ch.basic_nack(m.delivery_tag, requeue=False)


def check_last_death(conn, headers: dict, reason: str, queue: str, exchange: str) -> None:
    """x-last-death-* (RabbitMQ 3.13+): absent on RabbitMQ 3.10 and on Leveret's 3.10 mode."""
    got = {k: v for k, v in headers.items() if k.startswith("x-last-death-")}
    assert got == {}


def raw_get(rawc, q: str, timeout: float = 2.0):
    """basic.get (no-ack) on a new raw connection, polling until a message is there.
    Returns (GetOk, decoded properties, body)."""
    c = rawc()
    c.open_channel(1)
    reply = raw_wait_get(c, 1, q, timeout)
    props, body = read_content(c)
    return reply, props, body


def first_death_table(reason: str, queue: str, ts: int, exchange: str, rks: list[str],
                      original_expiration: str | None = None) -> tuple:
    """An x-death entry as RabbitMQ 3.10 writes it on a message's first death (unsorted keys)."""
    t = [("count", "l", 1), ("reason", "S", reason.encode()), ("queue", "S", queue.encode()),
         ("time", "T", ts), ("exchange", "S", exchange.encode()),
         ("routing-keys", "A", [("S", k.encode()) for k in rks])]
    if original_expiration is not None:
        t.append(("original-expiration", "S", original_expiration.encode()))
    return ("F", t)


def sorted_death_table(n: int, reason: str, queue: str, ts: int, exchange: str, rks: list[str],
                       original_expiration: str | None = None) -> tuple:
    """An x-death entry created or updated by a later death: keys sorted bytewise."""
    t = [("count", "l", n), ("exchange", "S", exchange.encode())]
    if original_expiration is not None:
        t.append(("original-expiration", "S", original_expiration.encode()))
    t += [("queue", "S", queue.encode()), ("reason", "S", reason.encode()),
          ("routing-keys", "A", [("S", k.encode()) for k in rks]), ("time", "T", ts)]
    return ("F", t)


def death_times(headers: list) -> list[int]:
    xd = {k: v for k, _t, v in headers}["x-death"]
    return [{k: v for k, _t, v in table}["time"] for _f, table in xd]


def death_headers(conn, xdeath: list, first: tuple[str, str, str], last: tuple[str, str, str]) -> list:
    """The x-death / x-first-death-* headers (3.10: no x-last-death-*), in sorted key order.
    ``first``/``last`` are (reason, queue, exchange)."""
    out = [("x-death", "A", xdeath),
           ("x-first-death-exchange", "S", first[2].encode()),
           ("x-first-death-queue", "S", first[1].encode()),
           ("x-first-death-reason", "S", first[0].encode())]
    return out


# --------------------------------------------------------------------------- reasons

@pytest.mark.parametrize("how", ["reject", "nack"])
def test_rejected_requeue_false_dead_letters(conn, uniq, how):
    """basic.reject / basic.nack with requeue=false dead-letter the message with reason 'rejected'."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.basic_publish("", q, b"m")
    reject_one(ch, q, how)
    m, p, body = wait_message(ch, sink)
    assert body == b"m"
    assert (m.exchange, m.routing_key, m.redelivered) == ("", sink, False)
    (death,) = p.headers["x-death"]
    assert death["count"] == 1
    assert (death["reason"], death["queue"], death["exchange"], death["routing-keys"]) == \
        ("rejected", q, "", [q])
    assert "original-expiration" not in death
    assert (p.headers["x-first-death-reason"], p.headers["x-first-death-queue"],
            p.headers["x-first-death-exchange"]) == ("rejected", q, "")
    check_last_death(conn, p.headers, "rejected", q, "")
    assert count(ch, q) == 0


def test_nack_multiple_dead_letters_each_in_order(conn, uniq):
    """basic.nack(multiple, requeue=false) dead-letters every covered message, in delivery order."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    assert wait_count(ch, sink, 3) == 3
    got = []
    for _ in range(3):
        _m, p, body = ch.basic_get(sink, auto_ack=True)
        got.append((body, p.headers["x-death"][0]["reason"]))
    assert got == [(b"0", "rejected"), (b"1", "rejected"), (b"2", "rejected")]


def test_requeue_true_and_channel_close_do_not_dead_letter(conn, uniq):
    """Requeue (nack/reject requeue=true, or closing the channel with unacked messages) never dead-letters."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.basic_publish("", q, b"a")
    m, _, _ = ch.basic_get(q)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, _, _ = wait_message(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    other = conn.channel()
    assert wait_message(other, q, auto_ack=False)[2] == b"a"
    other.close()
    assert wait_count(ch, q, 1) == 1
    assert count(ch, sink) == 0


def test_purge_and_delete_do_not_dead_letter(conn, uniq):
    """queue.purge and queue.delete discard messages without dead-lettering them."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.basic_publish("", q, b"1")
    ch.queue_purge(q)
    ch.basic_publish("", q, b"2")
    ch.queue_delete(q)
    time.sleep(0.05)
    assert count(ch, sink) == 0


def test_expired_by_queue_ttl(conn, uniq):
    """Queue TTL expiry dead-letters with reason 'expired' and no original-expiration key."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink, **{"x-message-ttl": 50}))
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"k": "v"}))
    _m, p, _body = wait_message(ch, sink)
    (death,) = p.headers["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("expired", q, 1)
    assert list(death) == ["count", "reason", "queue", "time", "exchange", "routing-keys"]
    assert p.expiration is None
    assert p.headers["k"] == "v"
    check_last_death(conn, p.headers, "expired", q, "")


@pytest.mark.parametrize("queue_ttl", [None, 60000])
def test_expired_by_per_message_ttl_records_original_expiration(conn, uniq, queue_ttl):
    """Per-message TTL expiry: reason 'expired', the x-death entry gets original-expiration (the
    property's string as published) and the dead-lettered copy has NO expiration property (so it
    does not expire again in the target queue). The same with a higher queue TTL present."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    extra = {"x-message-ttl": queue_ttl} if queue_ttl else {}
    q = declare(ch, uniq + ".q", **dlx_to(sink, **extra))
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="60"))
    _m, p, _body = wait_message(ch, sink)
    (death,) = p.headers["x-death"]
    assert death["reason"] == "expired"
    assert death["original-expiration"] == "60"
    assert list(death)[-1] == "original-expiration"
    assert p.expiration is None


def test_queue_ttl_lower_than_expiration_still_records_original_expiration(conn, uniq):
    """original-expiration is recorded whenever the message had an expiration property, even if
    the (lower) queue TTL is what expired it."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink, **{"x-message-ttl": 50}))
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="600000"))
    _, p, _ = wait_message(ch, sink)
    assert p.headers["x-death"][0]["reason"] == "expired"
    assert p.headers["x-death"][0]["original-expiration"] == "600000"
    assert p.expiration is None


def test_rejected_message_with_expiration_loses_it_too(conn, uniq):
    """Any dead-lettering (here: rejected) strips expiration and records original-expiration."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="600000"))
    reject_one(ch, q)
    _, p, _ = wait_message(ch, sink)
    assert p.headers["x-death"][0]["reason"] == "rejected"
    assert p.headers["x-death"][0]["original-expiration"] == "600000"
    assert p.expiration is None


def test_maxlen_reason(conn, uniq):
    """x-max-length drop-head dead-letters the dropped head with reason 'maxlen'."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink, **{"x-max-length": 1}))
    ch.basic_publish("", q, b"old")
    ch.basic_publish("", q, b"new")
    _m, p, body = wait_message(ch, sink)
    assert body == b"old"
    assert (p.headers["x-death"][0]["reason"], p.headers["x-first-death-reason"]) == ("maxlen", "maxlen")
    check_last_death(conn, p.headers, "maxlen", q, "")


# --------------------------------------------------------------------------- routing

def test_dead_letter_to_default_exchange_with_routing_key(conn, uniq):
    """DLX '' + x-dead-letter-routing-key: delivered to the queue named by the key; basic.get-ok
    shows exchange '' and that routing key; redelivered is false."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.queue_bind(q, "amq.direct", uniq + ".rk")
    ch.basic_publish("amq.direct", uniq + ".rk", b"m")
    reject_one(ch, q)
    m, p, _ = wait_message(ch, sink)
    assert (m.exchange, m.routing_key, m.redelivered) == ("", sink, False)
    d = p.headers["x-death"][0]
    assert (d["exchange"], d["routing-keys"]) == ("amq.direct", [uniq + ".rk"])
    assert p.headers["x-first-death-exchange"] == "amq.direct"


def test_dead_letter_without_routing_key_uses_original_keys(conn, uniq, cleanup_exchanges):
    """Without x-dead-letter-routing-key the DLX routes by the message's original routing key."""
    ch = confirm_channel(conn)
    dlx = uniq + ".dlx"
    cleanup_exchanges.append(dlx)
    ch.exchange_declare(dlx, "direct")
    sink = declare(ch, uniq + ".sink")
    ch.queue_bind(sink, dlx, "orig")
    q = declare(ch, uniq + ".q", **{"x-dead-letter-exchange": dlx})
    ch.queue_bind(q, "amq.direct", "orig")
    ch.basic_publish("amq.direct", "orig", b"m")
    reject_one(ch, q)
    m, p, _ = wait_message(ch, sink)
    assert (m.exchange, m.routing_key) == (dlx, "orig")
    assert p.headers["x-death"][0]["exchange"] == "amq.direct"
    assert p.headers["x-death"][0]["routing-keys"] == ["orig"]


def test_default_exchange_dlx_without_routing_key_returns_rejected_to_same_queue(conn, uniq):
    """DLX '' without a routing key: the original key (the queue's own name) routes a rejected
    message straight back into the same queue, with x-death count growing each time."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **{"x-dead-letter-exchange": ""})
    ch.basic_publish("", q, b"m")
    for n in (1, 2, 3):
        reject_one(ch, q)
        m, p, body = wait_message(ch, q, auto_ack=False)
        assert (body, m.redelivered, m.exchange, m.routing_key) == (b"m", False, "", q)
        (d,) = p.headers["x-death"]
        assert (d["count"], d["reason"], d["queue"]) == (n, "rejected", q)
        ch.basic_nack(m.delivery_tag, requeue=True)


def test_dlx_fanout_copies_to_every_bound_queue(conn, uniq, cleanup_exchanges):
    """A fanout DLX delivers a dead-lettered copy to each bound queue."""
    ch = confirm_channel(conn)
    dlx = uniq + ".fan"
    cleanup_exchanges.append(dlx)
    ch.exchange_declare(dlx, "fanout")
    a, b = declare(ch, uniq + ".a"), declare(ch, uniq + ".b")
    ch.queue_bind(a, dlx)
    ch.queue_bind(b, dlx)
    q = declare(ch, uniq + ".q", **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"m")
    reject_one(ch, q)
    for target in (a, b):
        m, p, body = wait_message(ch, target)
        assert (body, m.exchange, m.routing_key) == (b"m", dlx, q)
        assert p.headers["x-death"][0]["queue"] == q


@pytest.mark.parametrize("cause", ["rejected", "expired"])
def test_missing_dlx_drops_silently(conn, uniq, cause):
    """x-dead-letter-exchange naming a missing exchange: the message is simply dropped; no error."""
    ch = confirm_channel(conn)
    extra = {"x-message-ttl": 30} if cause == "expired" else {}
    q = declare(ch, uniq + ".q", **{"x-dead-letter-exchange": uniq + ".missing", **extra})
    ch.basic_publish("", q, b"m")
    if cause == "rejected":
        reject_one(ch, q)
    else:
        assert wait_count(ch, q, 0) == 0
    time.sleep(0.05)
    assert count(ch, q) == 0
    assert ch.is_open and conn.is_open


def test_dlx_that_routes_nowhere_drops(conn, uniq):
    """A DLX that exists but routes the message nowhere (no such queue for the key): dropped."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **dlx_to(uniq + ".nonexistent", **{"x-message-ttl": 30}))
    ch.basic_publish("", q, b"m")
    assert wait_count(ch, q, 0) == 0
    assert ch.is_open


def test_cc_bcc_without_dlx_routing_key(conn, uniq, cleanup_exchanges):
    """Without a DLX routing key, re-routing uses ALL original keys: routing key, CC and even BCC
    (the BCC-bound queue gets a copy). x-death routing-keys lists the routing key and CC, not BCC;
    the CC header stays, BCC is gone."""
    ch = confirm_channel(conn)
    dlx = uniq + ".dlx"
    cleanup_exchanges.append(dlx)
    ch.exchange_declare(dlx, "direct")
    q = declare(ch, uniq + ".q", **{"x-dead-letter-exchange": dlx})
    cc_q, bcc_q = declare(ch, uniq + ".ccq"), declare(ch, uniq + ".bccq")
    via_rk = declare(ch, uniq + ".rkq")
    ch.queue_bind(via_rk, dlx, q)
    ch.queue_bind(cc_q, dlx, "cc-key")
    ch.queue_bind(bcc_q, dlx, "bcc-key")
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"CC": ["cc-key"], "BCC": ["bcc-key"]}))
    reject_one(ch, q)
    for target in (via_rk, cc_q, bcc_q):
        m, p, body = wait_message(ch, target)
        assert (body, m.exchange, m.routing_key) == (b"m", dlx, q)
        assert p.headers["x-death"][0]["routing-keys"] == [q, "cc-key"]
        assert p.headers["CC"] == ["cc-key"]
        assert "BCC" not in p.headers
    time.sleep(0.05)
    assert [count(ch, x) for x in (via_rk, cc_q, bcc_q)] == [0, 0, 0]  # one copy each


def test_dlx_routing_key_drops_cc_header(conn, uniq, cleanup_exchanges):
    """With x-dead-letter-routing-key only that key routes, and the CC header is removed from the
    dead-lettered copy; x-death routing-keys still records routing key + CC."""
    ch = confirm_channel(conn)
    dlx = uniq + ".dlx"
    cleanup_exchanges.append(dlx)
    ch.exchange_declare(dlx, "direct")
    sink, cc_q = declare(ch, uniq + ".sink"), declare(ch, uniq + ".ccq")
    ch.queue_bind(sink, dlx, "dl-key")
    ch.queue_bind(cc_q, dlx, "cc-key")
    q = declare(ch, uniq + ".q", **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl-key"})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"CC": ["cc-key"], "keep": 1}))
    reject_one(ch, q)
    m, p, _ = wait_message(ch, sink)
    assert (m.exchange, m.routing_key) == (dlx, "dl-key")
    assert "CC" not in p.headers
    assert p.headers["keep"] == 1
    assert p.headers["x-death"][0]["routing-keys"] == [q, "cc-key"]
    time.sleep(0.05)
    assert count(ch, cc_q) == 0


# --------------------------------------------------------------------------- raw x-death layout

def test_x_death_first_death_wire_layout(conn, rawc, uniq, cleanup):
    """Raw wire: the first death's headers, exact types and key order (RabbitMQ 3.10.8):
    the headers table is re-sorted bytewise by key (user headers included); x-death is an array
    of one table [count long, reason, queue, time timestamp, exchange, routing-keys array of
    longstr, original-expiration]; x-first-death-* are longstr. Other properties are untouched,
    except expiration, which is removed. (3.10: no x-last-death-*.)"""
    ch = confirm_channel(conn)
    sink, q = uniq + ".sink", uniq + ".q"
    cleanup.extend([sink, q])
    ch.queue_declare(sink)
    ch.queue_declare(q, arguments=dlx_to(sink))
    ch.queue_bind(q, "amq.direct", uniq + ".rk")
    props = pika.BasicProperties(
        content_type="text/plain", content_encoding="utf-8",
        headers={"zz": 1, "B": "b", "aa": "x"}, delivery_mode=2, priority=7, correlation_id="cid",
        reply_to="rt", expiration="600000", message_id="mid", timestamp=1700000000, type="ty",
        user_id="guest", app_id="app", cluster_id="cl")
    t_before = int(time.time())
    ch.basic_publish("amq.direct", uniq + ".rk", b"body", props)
    reject_one(ch, q)
    get_ok, p, body = raw_get(rawc, sink)
    t_after = int(time.time())
    assert body == b"body"
    assert (get_ok.exchange, get_ok.routing_key, get_ok.redelivered) == ("", sink, False)
    (ts,) = death_times(p["headers"])
    assert t_before - 5 <= ts <= t_after + 5  # seconds since the epoch
    xdeath = [first_death_table("rejected", q, ts, "amq.direct", [uniq + ".rk"], "600000")]
    expected_headers = ([("B", "S", b"b"), ("aa", "S", b"x")]
                        + death_headers(conn, xdeath, ("rejected", q, "amq.direct"),
                                        ("rejected", q, "amq.direct"))
                        + [("zz", "I", 1)])
    assert p["headers"] == expected_headers
    assert {k: v for k, v in p.items() if k != "headers"} == {
        "content_type": "text/plain", "content_encoding": "utf-8", "delivery_mode": 2, "priority": 7,
        "correlation_id": "cid", "reply_to": "rt", "message_id": "mid", "timestamp": 1700000000,
        "type": "ty", "user_id": "guest", "app_id": "app", "cluster_id": "cl"}


def test_x_death_second_death_prepends_sorted_table(conn, rawc, uniq, cleanup):
    """Raw wire: a second death (another queue/reason) prepends a NEW table whose keys are sorted
    (count, exchange, queue, reason, routing-keys, time); the first table keeps its original
    layout; x-first-death-* still name the first death. Routing-keys of the second death are the
    keys the message carried into that queue (the DLX routing key)."""
    ch = confirm_channel(conn)
    a, b, c = uniq + ".a", uniq + ".b", uniq + ".c"
    cleanup.extend([a, b, c])
    ch.queue_declare(c)
    ch.queue_bind(c, "amq.direct", uniq + ".crk")
    ch.queue_declare(b, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "amq.direct",
                                   "x-dead-letter-routing-key": uniq + ".crk"})
    ch.queue_declare(a, arguments=dlx_to(b))
    ch.basic_publish("", a, b"m", pika.BasicProperties(expiration="600000", headers={"CC": ["x"]}))
    reject_one(ch, a)
    get_ok, p, _ = raw_get(rawc, c)
    assert (get_ok.exchange, get_ok.routing_key) == ("amq.direct", uniq + ".crk")
    ts_b, ts_a = death_times(p["headers"])
    xdeath = [sorted_death_table(1, "expired", b, ts_b, "", [b]),
              first_death_table("rejected", a, ts_a, "", [a, "x"], "600000")]
    assert p["headers"] == death_headers(conn, xdeath, ("rejected", a, ""), ("expired", b, ""))
    assert "expiration" not in p


def test_x_death_count_increments_in_a_real_cycle(conn, rawc, uniq, cleanup):
    """A cycle through the same queues for the same reasons: queue A (TTL) dead-letters to B, a
    client rejects from B back to A, ... The (queue, reason) entries are updated in place (count
    is a long that grows), the most recently updated entry comes first, 'time' stays the time of
    that entry's FIRST death, and x-first-death-* never change."""
    ch = confirm_channel(conn)
    a, b = uniq + ".a", uniq + ".b"
    cleanup.extend([a, b])
    ch.queue_declare(a, arguments=dlx_to(b, **{"x-message-ttl": 50}))
    ch.queue_declare(b, arguments=dlx_to(a))
    ch.basic_publish("", a, b"cyc")
    # first arrival in B: remember when A's death was recorded; make the clock tick a second
    m, p, _ = wait_message(ch, b, auto_ack=False)
    t_a = int(p.headers["x-death"][0]["time"].timestamp())
    while int(time.time()) <= t_a:
        time.sleep(0.02)
    ch.basic_reject(m.delivery_tag, requeue=False)   # B rejected #1 -> A -> expired #2 -> B
    reject_one(ch, b)                                 # B rejected #2 -> A -> expired #3 -> B
    _, props, body = raw_get(rawc, b)
    assert body == b"cyc"
    ts_a, ts_b = death_times(props["headers"])
    assert ts_a == t_a          # the expired@A entry keeps its first time
    assert ts_b > t_a           # rejected@B was first recorded after the clock ticked
    xdeath = [sorted_death_table(3, "expired", a, ts_a, "", [a]),
              sorted_death_table(2, "rejected", b, ts_b, "", [b])]
    assert props["headers"] == death_headers(conn, xdeath, ("expired", a, ""), ("expired", a, ""))


def test_self_cycle_of_rejections_counts_up(conn, uniq):
    """A queue dead-lettering rejected messages to itself keeps them cycling; one entry, count 1,2,3."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **dlx_to(uniq + ".q"))
    ch.basic_publish("", q, b"m")
    seen = []
    for _ in range(3):
        reject_one(ch, q)
        m, p, _ = wait_message(ch, q, auto_ack=False)
        seen.append([(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]])
        check_last_death(conn, p.headers, "rejected", q, "")
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert seen == [[(q, "rejected", 1)], [(q, "rejected", 2)], [(q, "rejected", 3)]]


def test_expired_cycle_without_rejection_is_dropped(conn, uniq):
    """A fully automatic cycle (no 'rejected' death in it) is broken by dropping the message:
    A(TTL 40) -> B(TTL 300) -> A: the message dies in A, sits in B, dies there, and is dropped
    instead of entering A again."""
    ch = confirm_channel(conn)
    a, b = uniq + ".a", uniq + ".b"
    ch.queue_declare(a, exclusive=True, arguments=dlx_to(b, **{"x-message-ttl": 40}))
    ch.queue_declare(b, exclusive=True, arguments=dlx_to(a, **{"x-message-ttl": 300}))
    ch.basic_publish("", a, b"m")
    assert wait_count(ch, b, 1) == 1  # reached B
    assert count(ch, a) == 0
    assert wait_count(ch, b, 0) == 0  # B's TTL passed
    for _ in range(3):
        time.sleep(0.1)
        assert (count(ch, a), count(ch, b)) == (0, 0)


def test_expired_self_cycle_is_dropped(conn, uniq):
    """A queue whose TTL-expired messages dead-letter back to itself: dropped after the first death."""
    ch = confirm_channel(conn)
    q = declare(ch, uniq + ".q", **dlx_to(uniq + ".q", **{"x-message-ttl": 100}))
    ch.basic_publish("", q, b"m")
    assert count(ch, q) == 1
    assert wait_count(ch, q, 0) == 0
    for _ in range(3):
        time.sleep(0.1)
        assert count(ch, q) == 0


def test_cycle_with_a_rejection_keeps_going(conn, uniq):
    """A cycle containing a client rejection is not broken: A(TTL) -> B, reject in B -> A -> B again."""
    ch = confirm_channel(conn)
    a, b = uniq + ".a", uniq + ".b"
    ch.queue_declare(a, exclusive=True, arguments=dlx_to(b, **{"x-message-ttl": 40}))
    ch.queue_declare(b, exclusive=True, arguments=dlx_to(a))
    ch.basic_publish("", a, b"m")
    reject_one(ch, b)
    _m, p, _ = wait_message(ch, b)
    assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == \
        [(a, "expired", 2), (b, "rejected", 1)]


def test_x_death_older_entries_reversed_on_each_death(conn, rawc, uniq, cleanup):
    """RabbitMQ 3.10 quirk, raw wire: on every death the entries OTHER than the new/updated one
    come out in reverse order (its grouping step folds the list into an accumulator), so the
    array is only "most recent first" for its first two entries. Chain: rejected in A, then
    expired in B, C and D, read in E: x-death = [D, B, A, C] (3.13+ would give [D, C, B, A]).
    D, B and C were recorded after the first death, so their keys are sorted; A keeps the
    first-death layout."""
    ch = confirm_channel(conn)
    a, b, c, d, e = (f"{uniq}.{x}" for x in "abcde")
    cleanup.extend([a, b, c, d, e])
    ch.queue_declare(e)
    ch.queue_declare(d, arguments=dlx_to(e, **{"x-message-ttl": 30}))
    ch.queue_declare(c, arguments=dlx_to(d, **{"x-message-ttl": 30}))
    ch.queue_declare(b, arguments=dlx_to(c, **{"x-message-ttl": 30}))
    ch.queue_declare(a, arguments=dlx_to(b))
    ch.basic_publish("", a, b"m")
    reject_one(ch, a)
    _, p, _ = raw_get(rawc, e)
    ts_d, ts_b, ts_a, ts_c = death_times(p["headers"])
    xdeath = [sorted_death_table(1, "expired", d, ts_d, "", [d]),
              sorted_death_table(1, "expired", b, ts_b, "", [b]),
              first_death_table("rejected", a, ts_a, "", [a]),
              sorted_death_table(1, "expired", c, ts_c, "", [c])]
    assert p["headers"] == death_headers(conn, xdeath, ("rejected", a, ""), ("expired", d, ""))


def test_expired_cycle_after_a_rejection_is_not_detected(conn, uniq):
    """RabbitMQ 3.10: rejected in A -> B(TTL) -> A(TTL) -> B ... is NOT recognised as an automatic
    cycle, because the entry reversal above puts 'A rejected' between the newest death and B's
    entry; the message keeps cycling. On its second visit to B the x-death array is
    [A expired 1, A rejected 1, B expired 1]. (3.13+ keeps true recency order and drops it.)"""
    ch = confirm_channel(conn)
    a, b = uniq + ".a", uniq + ".b"
    ch.queue_declare(a, exclusive=True, arguments=dlx_to(b, **{"x-message-ttl": 100}))
    ch.queue_declare(b, exclusive=True, arguments=dlx_to(a, **{"x-message-ttl": 150}))
    ch.basic_publish("", a, b"m")
    m, _, _ = ch.basic_get(a)  # well before A's TTL
    assert m is not None
    ch.basic_reject(m.delivery_tag, requeue=False)  # -> B, expires there -> A
    m, p, _ = wait_message(ch, a, auto_ack=False)
    assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == \
        [(b, "expired", 1), (a, "rejected", 1)]
    ch.basic_nack(m.delivery_tag, requeue=True)  # back to A (not a death); its TTL keeps running
    m, p, _ = wait_message(ch, b)  # A's TTL passed: it was dead-lettered to B again, not dropped
    assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == \
        [(a, "expired", 1), (a, "rejected", 1), (b, "expired", 1)]


def test_republished_x_death_continues_counting(conn, uniq):
    """RabbitMQ 3.10 trusts an x-death array published by a client (e.g. a retry republish):
    the next death of the same (queue, reason) increments its count."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.basic_publish("", q, b"m")
    reject_one(ch, q)
    _, p, body = wait_message(ch, sink)
    ch.basic_publish("", q, body, pika.BasicProperties(headers=p.headers))
    reject_one(ch, q)
    _, p2, _ = wait_message(ch, sink)
    assert [(d["queue"], d["reason"], d["count"]) for d in p2.headers["x-death"]] == [(q, "rejected", 2)]
    assert p2.headers["x-first-death-queue"] == q


def test_invalid_x_death_header_is_replaced(conn, rawc, uniq, cleanup):
    """A client-supplied x-death that is not an array is replaced by a fresh array (count 1, first
    death layout) and, since x-death already existed, no x-first-death-* headers are added."""
    ch = confirm_channel(conn)
    sink, q = uniq + ".sink", uniq + ".q"
    cleanup.extend([sink, q])
    ch.queue_declare(sink)
    ch.queue_declare(q, arguments=dlx_to(sink))
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"x-death": "garbage"}))
    reject_one(ch, q)
    _, p, _ = raw_get(rawc, sink)
    (ts,) = death_times(p["headers"])
    assert p["headers"][0] == ("x-death", "A", [first_death_table("rejected", q, ts, "", [q])])
    if not is_leveret(conn):
        assert len(p["headers"]) == 1


# --------------------------------------------------------------------------- preserved properties

def test_properties_and_persistence_preserved(conn, uniq):
    """All properties except expiration/headers survive dead-lettering; delivery_mode 2 stays 2."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink, **{"x-message-ttl": 30}))
    props = pika.BasicProperties(content_type="application/json", content_encoding="gzip",
                                 delivery_mode=2, priority=9, correlation_id="c-1", reply_to="r-1",
                                 expiration="600000", message_id="m-1", timestamp=1234567890,
                                 type="t-1", user_id="guest", app_id="a-1")
    ch.basic_publish("", q, b"\x00\x01binary", props)
    _, p, body = wait_message(ch, sink)
    assert body == b"\x00\x01binary"
    assert (p.content_type, p.content_encoding, p.delivery_mode, p.priority, p.correlation_id,
            p.reply_to, p.expiration, p.message_id, p.timestamp, p.type, p.user_id, p.app_id) == \
        ("application/json", "gzip", 2, 9, "c-1", "r-1", None, "m-1", 1234567890, "t-1", "guest", "a-1")


def test_transient_message_stays_transient(conn, uniq):
    """delivery_mode 1 (and absent) is preserved as published."""
    ch = confirm_channel(conn)
    sink = declare(ch, uniq + ".sink")
    q = declare(ch, uniq + ".q", **dlx_to(sink))
    ch.basic_publish("", q, b"1", pika.BasicProperties(delivery_mode=1))
    ch.basic_publish("", q, b"none")
    reject_one(ch, q)
    reject_one(ch, q)
    got = []
    for _ in range(2):
        _, p, body = wait_message(ch, sink)
        got.append((body, p.delivery_mode))
    assert got == [(b"1", 1), (b"none", None)]


# --------------------------------------------------------------------------- argument validation

@pytest.mark.parametrize("args,text", [
    ({"x-dead-letter-routing-key": "k"},
     ("PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': "
     "routing_key_but_no_dlx_defined")),
    ({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": 5},
     ("PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': "
     "{unacceptable_type,signedint}")),
    ({"x-dead-letter-routing-key": True},
     ("PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': "
     "{unacceptable_type,bool}")),
    ({"x-dead-letter-exchange": 5},
     ("PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' "
     "in vhost '/'")),
    ({"x-dead-letter-exchange": b"dlx"},
     ("PRECONDITION_FAILED - invalid type 'binary' for arg 'x-dead-letter-exchange' in queue '{q}' "
     "in vhost '/'")),
    ({"x-dead-letter-exchange": None},
     ("PRECONDITION_FAILED - invalid type 'void' for arg 'x-dead-letter-exchange' in queue '{q}' "
     "in vhost '/'")),
    # the DLX type is checked before every other argument
    ({"x-expires": 0, "x-dead-letter-exchange": True},
     ("PRECONDITION_FAILED - invalid type 'bool' for arg 'x-dead-letter-exchange' in queue '{q}' "
     "in vhost '/'")),
])
def test_invalid_dead_letter_args(conn, uniq, args, text):
    """Invalid x-dead-letter-* arguments: 406 with the exact texts (note the two different formats)."""
    ch = conn.channel()
    q = uniq + ".q"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments=args)
    closed_with(ei, 406, text.replace("{q}", q))


def test_dead_letter_exchange_need_not_exist_at_declare(ch, uniq):
    """A DLX naming a missing exchange (or '' / an amq.* name) is accepted at declare time."""
    for i, dlx in enumerate((uniq + ".missing", "", "amq.nonexistent")):
        ok = ch.queue_declare(f"{uniq}.{i}", exclusive=True,
                              arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": ""})
        assert ok.method.queue == f"{uniq}.{i}"


# --------------------------------------------------------------------------- aio-pika

class TestAioPika:
    """TTL and dead-lettering through aio-pika."""

    async def test_queue_ttl_dead_letters_to_consumer(self, broker_url, uniq):
        """aio-pika: x-message-ttl expiry dead-letters to a consumed DLX queue with x-death."""
        async with await aio_pika.connect(broker_url) as conn:
            ch = await conn.channel()
            sink = await ch.declare_queue(uniq + ".sink", exclusive=True)
            q = await ch.declare_queue(uniq + ".q", exclusive=True, arguments=dlx_to(sink.name, **{"x-message-ttl": 60}))
            await ch.default_exchange.publish(aio_pika.Message(b"ttl", headers={"n": 1}), routing_key=q.name)
            async with sink.iterator() as it:
                msg = await asyncio.wait_for(it.__anext__(), 3)
                await msg.ack()
            assert msg.body == b"ttl"
            assert (msg.exchange, msg.routing_key) == ("", sink.name)
            (death,) = msg.headers["x-death"]
            assert (death["reason"], death["queue"], death["count"], death["exchange"],
                    death["routing-keys"]) == ("expired", q.name, 1, "", [q.name])
            assert msg.headers["x-first-death-reason"] == "expired"
            assert msg.headers["n"] == 1
            assert not [k for k in msg.headers if k.startswith("x-last-death-")]

    async def test_reject_and_nack_dead_letter(self, broker_url, uniq):
        """aio-pika: message.reject(requeue=False) and message.nack(requeue=False) dead-letter ('rejected')."""
        async with await aio_pika.connect(broker_url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            sink = await ch.declare_queue(uniq + ".sink", exclusive=True)
            q = await ch.declare_queue(uniq + ".q", exclusive=True, arguments=dlx_to(sink.name))
            for body in (b"r", b"n"):
                await ch.default_exchange.publish(aio_pika.Message(body), routing_key=q.name)
            first = await q.get(timeout=2)
            second = await q.get(timeout=2)
            await first.reject(requeue=False)
            await second.nack(requeue=False)
            got = []
            deadline = time.monotonic() + 2
            while len(got) < 2 and time.monotonic() < deadline:
                m = await sink.get(no_ack=True, fail=False)
                if m is None:
                    await asyncio.sleep(0.01)
                    continue
                got.append((m.body, m.headers["x-death"][0]["reason"], m.headers["x-death"][0]["count"]))
            assert got == [(b"r", "rejected", 1), (b"n", "rejected", 1)]

    async def test_per_message_expiration_original_expiration(self, broker_url, uniq):
        """aio-pika: Message(expiration=0.05) is sent as '50'; the dead-lettered copy has no
        expiration and x-death original-expiration '50'."""
        async with await aio_pika.connect(broker_url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            sink = await ch.declare_queue(uniq + ".sink", exclusive=True)
            q = await ch.declare_queue(uniq + ".q", exclusive=True, arguments=dlx_to(sink.name))
            await ch.default_exchange.publish(aio_pika.Message(b"e", expiration=0.05), routing_key=q.name)
            m = await aio_wait_get(sink)
            assert m.body == b"e"
            assert m.properties.expiration is None
            assert m.headers["x-death"][0]["reason"] == "expired"
            assert m.headers["x-death"][0]["original-expiration"] == "50"

    async def test_reject_publish_dlx_nack_and_dead_letter(self, broker_url, uniq):
        """aio-pika: reject-publish-dlx -> the publish raises DeliveryError (basic.nack) and the
        message is dead-lettered with reason 'maxlen'."""
        async with await aio_pika.connect(broker_url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            sink = await ch.declare_queue(uniq + ".sink", exclusive=True)
            q = await ch.declare_queue(uniq + ".q", exclusive=True, arguments=dlx_to(
                sink.name, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"}))
            await ch.default_exchange.publish(aio_pika.Message(b"kept"), routing_key=q.name)
            with pytest.raises(aio_pika.exceptions.DeliveryError):
                await ch.default_exchange.publish(aio_pika.Message(b"over"), routing_key=q.name)
            m = await aio_wait_get(sink)
            assert m.body == b"over"
            assert m.headers["x-death"][0]["reason"] == "maxlen"
            assert m.headers["x-first-death-queue"] == q.name
            kept = await q.get(no_ack=True, timeout=2)
            assert kept.body == b"kept"

    async def test_ttl_cycle_count(self, broker_url, uniq):
        """aio-pika: A(TTL) -> B, reject in B -> A -> B: counts 2 (expired@A) and 1 (rejected@B),
        most recent first."""
        async with await aio_pika.connect(broker_url) as conn:
            ch = await conn.channel()
            a_name, b_name = uniq + ".a", uniq + ".b"
            a = await ch.declare_queue(a_name, exclusive=True, arguments=dlx_to(b_name, **{"x-message-ttl": 40}))
            b = await ch.declare_queue(b_name, exclusive=True, arguments=dlx_to(a_name))
            await ch.default_exchange.publish(aio_pika.Message(b"c"), routing_key=a.name)
            async with b.iterator() as it:
                first = await asyncio.wait_for(it.__anext__(), 3)
                await first.reject(requeue=False)
                second = await asyncio.wait_for(it.__anext__(), 3)
                await second.ack()
            assert [(d["queue"], d["reason"], d["count"]) for d in second.headers["x-death"]] == \
                [(a_name, "expired", 2), (b_name, "rejected", 1)]
