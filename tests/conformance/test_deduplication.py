"""Message deduplication, compatible with noxdafox/rabbitmq-message-deduplication (0.6.x for RabbitMQ
3.10, lib/rabbitmq_message_deduplication/*.ex) and LavinMQ's argument names (src/lavinmq/deduplication.cr).

RabbitMQ 3.10 here has no such plugin (and it cannot be built on this machine: it is Elixir), so every
test is Leveret-only; the expectations are the plugin's semantics as read from its source, plus the
LavinMQ-style switch on ordinary exchanges and Leveret's restart persistence.

Exchange level
  * type 'x-message-deduplication' (the plugin): routes like fanout (every binding, routing key
    ignored). Arguments: x-cache-size (required, integer > 0), x-cache-ttl (optional, integer > 0, ms),
    x-cache-persistence ('disk' | 'memory').
  * argument x-message-deduplication = true on an exchange of any type (LavinMQ): routes by its own type;
    x-cache-size optional (default 128), x-cache-ttl optional, x-deduplication-header (argument) names the
    message header holding the key (default 'x-deduplication-header').
  * Key: the value of the message header 'x-deduplication-header'; no header -> never deduplicated.
    First sighting caches the key (with expiry now + per-message header x-cache-ttl, else the exchange's
    x-cache-ttl, else none) and routes; a hit routes nowhere: unroutable (mandatory -> basic.return 312
    NO_ROUTE, confirms -> basic.ack). A hit does not refresh the entry. Full cache -> one entry evicted
    (the plugin: an arbitrary one; Leveret: the oldest, as LavinMQ).
Queue level (x-message-deduplication = true queue argument)
  * A message is not enqueued while a message with the same key is in the queue (ready or unacked).
    The key is released when the message leaves: ack, auto-ack delivery, reject/nack without requeue,
    expiry, max-length drop, purge. A requeue keeps it. A duplicate is dropped; under confirms the
    publisher gets basic.nack (RabbitMQ 3.10 + plugin 0.6: is_duplicate -> {true, reject}); no
    basic.return (the message was routed to the queue).
Leveret: durable exchanges keep their cache and durable queues their keys across a restart.
"""
from __future__ import annotations

import decimal
import os
import time

import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from .helpers import bodies, temp_queue, wait_count

pytestmark = pytest.mark.leveret_only

DEDUP_X = "x-message-deduplication"
HDR = "x-deduplication-header"


# --------------------------------------------------------------------------- helpers
def norm(text: str) -> str:
    """The plugin's texts come from Elixir strings with a backslash-newline continuation, so they hold
    a run of indentation spaces; compare with whitespace collapsed."""
    return " ".join(text.split())


def dedup_exchange(ch, name, cleanup_exchanges, durable=False, **args):
    ch.exchange_declare(name, DEDUP_X, durable=durable, arguments={"x-cache-size": 100, **args})
    cleanup_exchanges.append(name)
    return name


def bound_queue(ch, x, key=""):
    q = temp_queue(ch)
    ch.queue_bind(q, x, key)
    return q


def pub(ch, x, key, body, dedup=None, headers=None, **props):
    h = dict(headers or {})
    if dedup is not None:
        h[HDR] = dedup
    ch.basic_publish(x, key, body, pika.BasicProperties(headers=h or None, **props))


def settle(ch, q, n):
    """Wait until ``q`` holds ``n`` messages, then a little longer for any that should not come."""
    wait_count(ch, q, n, timeout=1.0)
    time.sleep(0.05)


# --------------------------------------------------------------------------- exchange type: validation
@pytest.mark.parametrize("args", [{}, {"x-cache-size": 0}, {"x-cache-size": -1}, {"x-cache-size": "abc"},
                                  {"x-cache-size": True}, {"x-cache-size": decimal.Decimal("1.5")}],
                         ids=["missing", "zero", "negative", "word", "bool", "decimal"])
def test_exchange_type_requires_cache_size(ch, uniq, args):
    """x-cache-size is required and must be an integer > 0 (a bool is not an integer)."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DEDUP_X, arguments=args)
    assert ei.value.reply_code == 406
    assert norm(ei.value.reply_text) == \
        "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"


def test_exchange_type_cache_size_numeric_string_accepted(ch, uniq, cleanup_exchanges):
    """The plugin also takes a longstr of digits for x-cache-size (and x-cache-ttl)."""
    ch.exchange_declare(uniq + ".x", DEDUP_X, arguments={"x-cache-size": "10", "x-cache-ttl": "1000"})
    cleanup_exchanges.append(uniq + ".x")


@pytest.mark.parametrize("ttl", [0, -5, "abc", True], ids=["zero", "negative", "word", "bool"])
def test_exchange_type_bad_cache_ttl(ch, uniq, ttl):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DEDUP_X, arguments={"x-cache-size": 10, "x-cache-ttl": ttl})
    assert ei.value.reply_code == 406
    assert norm(ei.value.reply_text) == \
        "PRECONDITION_FAILED - Invalid argument, 'x-cache-ttl' must be an integer greater than 0"


def test_exchange_type_bad_persistence(ch, uniq, cleanup_exchanges):
    """x-cache-persistence must be 'disk' or 'memory'; both are accepted."""
    for ok in ("disk", "memory"):
        ch.exchange_declare(f"{uniq}.{ok}", DEDUP_X, arguments={"x-cache-size": 10, "x-cache-persistence": ok})
        cleanup_exchanges.append(f"{uniq}.{ok}")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DEDUP_X, arguments={"x-cache-size": 10, "x-cache-persistence": "ssd"})
    assert ei.value.reply_code == 406
    assert norm(ei.value.reply_text) == \
        "PRECONDITION_FAILED - Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"


def test_exchange_type_validation_order(ch, uniq):
    """Checked in the order x-cache-size, x-cache-ttl, x-cache-persistence: the first failure is reported."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DEDUP_X, arguments={"x-cache-ttl": 0, "x-cache-persistence": "ssd"})
    assert "'x-cache-size'" in ei.value.reply_text


# --------------------------------------------------------------------------- exchange type: behaviour
def test_exchange_type_routes_like_fanout(ch, uniq, cleanup_exchanges):
    """Every bound queue gets the message whatever the binding and routing keys."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges)
    q1, q2 = bound_queue(ch, x, "a"), bound_queue(ch, x, "b")
    pub(ch, x, "zzz", b"m")
    settle(ch, q2, 1)
    assert (bodies(ch, q1), bodies(ch, q2)) == ([b"m"], [b"m"])


def test_exchange_drops_duplicates(ch, uniq, cleanup_exchanges):
    """Same x-deduplication-header value -> routed once; other values and header-less messages pass."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges)
    q = bound_queue(ch, x)
    pub(ch, x, "", b"1", dedup="a")
    pub(ch, x, "", b"2", dedup="a")
    pub(ch, x, "", b"3", dedup="b")
    pub(ch, x, "", b"4")
    pub(ch, x, "", b"5")
    pub(ch, x, "", b"6", dedup="b")
    settle(ch, q, 4)
    assert bodies(ch, q) == [b"1", b"3", b"4", b"5"]


def test_exchange_key_is_the_value_not_its_field_type(ch, rawc, uniq, cleanup_exchanges):
    """The key is the header's value as Erlang sees it: "1" (longstr), 1 (integer) and true (bool) are
    three keys (beware Python's True == 1); the integer 1 is one key whatever its width (pika sends
    'I', pamqp 'b'); the bytes b"1" ('x') equal the string "1" (both are binaries)."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges)
    q = bound_queue(ch, x)
    pub(ch, x, "", b"str", dedup="1")
    pub(ch, x, "", b"int", dedup=1)
    pub(ch, x, "", b"bool", dedup=True)
    pub(ch, x, "", b"long", dedup=1 << 40)
    pub(ch, x, "", b"bytes", dedup=b"1")
    ch.exchange_declare(x, passive=True)      # round trip: the publishes above are done
    r = rawc()
    r.open_channel(1)
    r.publish(1, x, "", b"int8", spec.Basic.Properties(headers={HDR: 1}))        # 'b' 1: seen as 'I' 1
    r.publish(1, x, "", b"int16", spec.Basic.Properties(headers={HDR: 1000}))    # 's' 1000: new
    r.send_method(1, spec.Exchange.Declare(exchange=x, passive=True))
    r.expect(spec.Exchange.DeclareOk, 1)
    pub(ch, x, "", b"int32", dedup=1000)                                           # 'I' 1000: seen
    pub(ch, x, "", b"str-again", dedup="1")
    pub(ch, x, "", b"bool-again", dedup=True)
    settle(ch, q, 5)
    assert bodies(ch, q) == [b"str", b"int", b"bool", b"long", b"int16"]


def test_exchange_caches_key_even_when_unroutable(ch, uniq, cleanup_exchanges):
    """The first sighting caches the key although no queue is bound yet; its later copies are dropped."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges)
    pub(ch, x, "", b"first", dedup="k")
    ch.exchange_declare(x, passive=True)
    q = bound_queue(ch, x)
    pub(ch, x, "", b"second", dedup="k")
    pub(ch, x, "", b"other", dedup="k2")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"other"]


def test_exchange_duplicate_is_unroutable_for_mandatory_and_confirms(conn, uniq, cleanup_exchanges):
    """A duplicate routes nowhere: mandatory -> basic.return 312 NO_ROUTE; under confirms it is acked
    (no nack); a non-mandatory duplicate publish just succeeds."""
    ch = conn.channel()
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges)
    q = bound_queue(ch, x)
    returned = []
    ch.add_on_return_callback(lambda _c, m, p, b: returned.append((m.reply_code, m.reply_text, b, p.headers)))
    ch.basic_publish(x, "", b"1", pika.BasicProperties(headers={HDR: "a"}), mandatory=True)
    ch.basic_publish(x, "", b"2", pika.BasicProperties(headers={HDR: "a"}), mandatory=True)
    ch.exchange_declare(x, passive=True)
    conn.process_data_events(0)
    assert returned == [(312, "NO_ROUTE", b"2", {HDR: "a"})]
    ch.confirm_delivery()
    ch.basic_publish(x, "", b"3", pika.BasicProperties(headers={HDR: "a"}))      # acked, not nacked
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "", b"4", pika.BasicProperties(headers={HDR: "a"}), mandatory=True)
    assert bodies(ch, q) == [b"1"]


def test_exchange_duplicate_goes_to_alternate_exchange(ch, uniq, cleanup_exchanges):
    """Routing nowhere means the alternate-exchange (if any) gets the duplicate."""
    ae = uniq + ".ae"
    ch.exchange_declare(ae, "fanout")
    cleanup_exchanges.append(ae)
    qae = bound_queue(ch, ae)
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges, **{"alternate-exchange": ae})
    q = bound_queue(ch, x)
    pub(ch, x, "", b"1", dedup="a")
    pub(ch, x, "", b"2", dedup="a")
    settle(ch, qae, 1)
    assert (bodies(ch, q), bodies(ch, qae)) == ([b"1"], [b"2"])


def test_exchange_cache_ttl(ch, uniq, cleanup_exchanges):
    """x-cache-ttl (ms): the key is forgotten that long after it was cached; a duplicate inside the
    window does not extend it."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges, **{"x-cache-ttl": 250})
    q = bound_queue(ch, x)
    pub(ch, x, "", b"1", dedup="a")
    time.sleep(0.15)
    pub(ch, x, "", b"2", dedup="a")          # dropped, and does not refresh the entry
    time.sleep(0.15)                          # 300 ms after the first: expired
    pub(ch, x, "", b"3", dedup="a")
    pub(ch, x, "", b"4", dedup="a")
    settle(ch, q, 2)
    assert bodies(ch, q) == [b"1", b"3"]


def test_message_cache_ttl_header_overrides_exchange_ttl(ch, uniq, cleanup_exchanges):
    """The message header x-cache-ttl (integer ms) replaces the exchange's x-cache-ttl for that entry;
    also when the exchange has none."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges, **{"x-cache-ttl": 60000})
    y = dedup_exchange(ch, uniq + ".y", cleanup_exchanges)
    qx, qy = bound_queue(ch, x), bound_queue(ch, y)
    for e in (x, y):
        pub(ch, e, "", b"short", dedup="s", headers={"x-cache-ttl": 150})
        pub(ch, e, "", b"long", dedup="l")
    time.sleep(0.25)
    for e in (x, y):
        pub(ch, e, "", b"short-again", dedup="s")
        pub(ch, e, "", b"long-again", dedup="l")
    settle(ch, qy, 3)
    assert bodies(ch, qx) == bodies(ch, qy) == [b"short", b"long", b"short-again"]


def test_exchange_cache_size_evicts_oldest(ch, uniq, cleanup_exchanges):
    """x-cache-size 2: caching a third key evicts the oldest entry (Leveret: FIFO by insertion, as
    LavinMQ; the plugin evicts an arbitrary one)."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges, **{"x-cache-size": 2})
    q = bound_queue(ch, x)
    for k in ("a", "b", "c"):                 # cache: b, c   (a evicted)
        pub(ch, x, "", k.encode(), dedup=k)
    pub(ch, x, "", b"c-dup", dedup="c")       # hit
    pub(ch, x, "", b"a-again", dedup="a")     # miss -> cached, evicts b: cache c, a
    pub(ch, x, "", b"b-again", dedup="b")     # miss -> cached, evicts c: cache a, b
    pub(ch, x, "", b"a-dup", dedup="a")       # hit
    settle(ch, q, 5)
    assert bodies(ch, q) == [b"a", b"b", b"c", b"a-again", b"b-again"]


def test_exchange_delete_drops_cache(ch, uniq, cleanup_exchanges):
    """A re-declared exchange of the same name starts with an empty cache."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges)
    pub(ch, x, "", b"1", dedup="a")
    ch.exchange_delete(x)
    dedup_exchange(ch, x, cleanup_exchanges)
    q = bound_queue(ch, x)
    pub(ch, x, "", b"2", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"2"]


# --------------------------------------------------------------------------- LavinMQ style: argument on any exchange
def test_argument_on_direct_exchange_keeps_its_routing(ch, uniq, cleanup_exchanges):
    """x-message-deduplication=true on a direct exchange: deduplicates (x-cache-size optional) and
    still routes by routing key. Deduplication happens before routing: a duplicate with another
    routing key is dropped too."""
    x = uniq + ".d"
    ch.exchange_declare(x, "direct", arguments={DEDUP_X: True})
    cleanup_exchanges.append(x)
    qa, qb = bound_queue(ch, x, "a"), bound_queue(ch, x, "b")
    pub(ch, x, "a", b"1", dedup="k")
    pub(ch, x, "b", b"2", dedup="k")
    pub(ch, x, "b", b"3", dedup="k2")
    pub(ch, x, "c", b"4", dedup="k3")
    pub(ch, x, "a", b"5", dedup="k3")
    settle(ch, qb, 1)
    assert (bodies(ch, qa), bodies(ch, qb)) == ([b"1"], [b"3"])


def test_argument_false_means_no_deduplication(ch, uniq, cleanup_exchanges):
    x = uniq + ".d"
    ch.exchange_declare(x, "fanout", arguments={DEDUP_X: False, "x-cache-size": 5})
    cleanup_exchanges.append(x)
    q = bound_queue(ch, x)
    pub(ch, x, "", b"1", dedup="k")
    pub(ch, x, "", b"2", dedup="k")
    settle(ch, q, 2)
    assert bodies(ch, q) == [b"1", b"2"]


def test_argument_custom_key_header(ch, uniq, cleanup_exchanges):
    """The exchange argument x-deduplication-header names the message header that holds the key."""
    x = uniq + ".d"
    ch.exchange_declare(x, "fanout", arguments={DEDUP_X: True, HDR: "msg-id"})
    cleanup_exchanges.append(x)
    q = bound_queue(ch, x)
    pub(ch, x, "", b"1", headers={"msg-id": "m1"})
    pub(ch, x, "", b"2", headers={"msg-id": "m1", HDR: "other"})
    pub(ch, x, "", b"3", headers={HDR: "m1"})          # no msg-id header: not deduplicated
    pub(ch, x, "", b"4", headers={HDR: "m1"})
    settle(ch, q, 3)
    assert bodies(ch, q) == [b"1", b"3", b"4"]


def test_argument_cache_size_and_ttl(ch, uniq, cleanup_exchanges):
    """x-cache-size / x-cache-ttl work with the argument form too."""
    x = uniq + ".d"
    ch.exchange_declare(x, "topic", arguments={DEDUP_X: True, "x-cache-size": 1, "x-cache-ttl": 200})
    cleanup_exchanges.append(x)
    q = bound_queue(ch, x, "#")
    pub(ch, x, "r", b"a", dedup="a")
    pub(ch, x, "r", b"b", dedup="b")          # evicts a
    pub(ch, x, "r", b"a2", dedup="a")         # evicts b
    pub(ch, x, "r", b"a3", dedup="a")         # hit
    time.sleep(0.25)
    pub(ch, x, "r", b"a4", dedup="a")         # expired
    settle(ch, q, 4)
    assert bodies(ch, q) == [b"a", b"b", b"a2", b"a4"]


@pytest.mark.parametrize("args", [{"x-cache-size": "big"}, {"x-cache-ttl": "long"}, {"x-cache-size": 0},
                                  {HDR: 5}],
                         ids=["size-word", "ttl-word", "size-zero", "header-not-string"])
def test_argument_form_validation(ch, uniq, args):
    """Invalid companions of x-message-deduplication=true: 406 PRECONDITION_FAILED."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".d", "direct", arguments={DEDUP_X: True, **args})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text.startswith("PRECONDITION_FAILED - ")


# --------------------------------------------------------------------------- queue level
def dedup_queue(ch, name, cleanup, **args):
    ch.queue_declare(name, arguments={DEDUP_X: True, **args})
    cleanup.append(name)
    return name


def test_queue_drops_duplicate_while_first_is_queued(ch, uniq, cleanup):
    q = dedup_queue(ch, uniq + ".q", cleanup)
    pub(ch, "", q, b"1", dedup="a")
    pub(ch, "", q, b"2", dedup="a")
    pub(ch, "", q, b"3", dedup="b")
    pub(ch, "", q, b"4")
    pub(ch, "", q, b"5")
    settle(ch, q, 4)
    assert bodies(ch, q) == [b"1", b"3", b"4", b"5"]


def test_queue_key_released_when_message_leaves(ch, uniq, cleanup):
    """basic.get with auto-ack removes the message and its key: the same key is accepted again."""
    q = dedup_queue(ch, uniq + ".q", cleanup)
    pub(ch, "", q, b"1", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"1"]
    pub(ch, "", q, b"2", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"2"]


def test_queue_unacked_message_still_holds_key_until_ack(ch, uniq, cleanup):
    """Delivered but unacked: still a duplicate. Requeue (nack requeue=true) keeps the key; ack frees it."""
    q = dedup_queue(ch, uniq + ".q", cleanup)
    pub(ch, "", q, b"1", dedup="a")
    settle(ch, q, 1)
    m, _, _ = ch.basic_get(q, auto_ack=False)
    pub(ch, "", q, b"2", dedup="a")
    ch.basic_nack(m.delivery_tag, requeue=True)
    pub(ch, "", q, b"3", dedup="a")
    settle(ch, q, 1)
    m, _, body = ch.basic_get(q, auto_ack=False)
    assert body == b"1"
    ch.basic_ack(m.delivery_tag)
    pub(ch, "", q, b"4", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"4"]


def test_queue_reject_without_requeue_frees_key(ch, uniq, cleanup):
    q = dedup_queue(ch, uniq + ".q", cleanup)
    pub(ch, "", q, b"1", dedup="a")
    settle(ch, q, 1)
    m, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    pub(ch, "", q, b"2", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"2"]


def test_queue_purge_frees_keys(ch, uniq, cleanup):
    q = dedup_queue(ch, uniq + ".q", cleanup)
    pub(ch, "", q, b"1", dedup="a")
    settle(ch, q, 1)
    ch.queue_purge(q)
    pub(ch, "", q, b"2", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"2"]


def test_queue_expired_message_frees_key(ch, uniq, cleanup):
    """Per-message TTL (expiration) and queue x-message-ttl: once the message expired its key is free."""
    q = dedup_queue(ch, uniq + ".q", cleanup)
    pub(ch, "", q, b"1", dedup="a", expiration="100")
    time.sleep(0.2)
    pub(ch, "", q, b"2", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"2"]
    q2 = dedup_queue(ch, uniq + ".q2", cleanup, **{"x-message-ttl": 100})
    pub(ch, "", q2, b"1", dedup="a")
    time.sleep(0.2)
    pub(ch, "", q2, b"2", dedup="a")
    settle(ch, q2, 1)
    assert bodies(ch, q2) == [b"2"]


def test_queue_max_length_drop_frees_key(ch, uniq, cleanup):
    """x-max-length 1 (drop-head): the dropped head's key is free again."""
    q = dedup_queue(ch, uniq + ".q", cleanup, **{"x-max-length": 1})
    pub(ch, "", q, b"1", dedup="a")
    pub(ch, "", q, b"2", dedup="b")            # drops 1
    pub(ch, "", q, b"3", dedup="a")            # drops 2
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"3"]


def test_queue_duplicate_nacked_under_confirms_not_returned(conn, uniq, cleanup):
    """A duplicate refused by the queue: under confirms basic.nack (pika: NackError); mandatory gives no
    basic.return (it was routed to the queue)."""
    ch = conn.channel()
    q = dedup_queue(ch, uniq + ".q", cleanup)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"1", pika.BasicProperties(headers={HDR: "a"}), mandatory=True)
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"2", pika.BasicProperties(headers={HDR: "a"}), mandatory=True)
    assert bodies(ch, q) == [b"1"]


def test_queue_without_argument_keeps_duplicates(ch, uniq, cleanup):
    q = uniq + ".q"
    ch.queue_declare(q, arguments={DEDUP_X: False})
    cleanup.append(q)
    pub(ch, "", q, b"1", dedup="a")
    pub(ch, "", q, b"2", dedup="a")
    settle(ch, q, 2)
    assert bodies(ch, q) == [b"1", b"2"]


def test_queue_and_exchange_together(ch, uniq, cleanup, cleanup_exchanges):
    """Exchange-level keys and queue-level keys are separate: a message that passed the exchange is
    still refused by a queue holding its key."""
    x = dedup_exchange(ch, uniq + ".x", cleanup_exchanges, **{"x-cache-ttl": 100})
    q = dedup_queue(ch, uniq + ".q", cleanup)
    ch.queue_bind(q, x, "")
    pub(ch, x, "", b"1", dedup="a")
    time.sleep(0.15)                            # exchange entry expired; queue still holds "a"
    pub(ch, x, "", b"2", dedup="a")
    settle(ch, q, 1)
    assert bodies(ch, q) == [b"1"]


# --------------------------------------------------------------------------- restart (Leveret)
def _open(server):
    c = pika.BlockingConnection(pika.URLParameters(server.url))
    return c, c.channel()


def test_exchange_cache_survives_restart(leveret_server, tmp_path):
    """A durable deduplication exchange (type or argument form) keeps its cache across a restart,
    TTLs included (an entry that expired meanwhile is gone)."""
    data = str(tmp_path / "data")
    os.makedirs(data)
    s = leveret_server(data_dir=data)
    c, ch = _open(s)
    ch.exchange_declare("dx", DEDUP_X, durable=True, arguments={"x-cache-size": 10})
    ch.exchange_declare("ax", "fanout", durable=True, arguments={DEDUP_X: True})
    ch.queue_declare("q", durable=True)
    ch.queue_bind("q", "dx", "")
    ch.queue_bind("q", "ax", "")
    for x in ("dx", "ax"):
        pub(ch, x, "", b"first-" + x.encode(), dedup="k", delivery_mode=2)
        pub(ch, x, "", b"short-" + x.encode(), dedup="s", headers={"x-cache-ttl": 300}, delivery_mode=2)
    wait_count(ch, "q", 4)
    c.close()
    s.stop()
    time.sleep(0.3)
    s2 = leveret_server(data_dir=data, port=s.port)
    c2, ch2 = _open(s2)
    assert bodies(ch2, "q") == [b"first-dx", b"short-dx", b"first-ax", b"short-ax"]
    for x in ("dx", "ax"):
        pub(ch2, x, "", b"again-" + x.encode(), dedup="k", delivery_mode=2)
        pub(ch2, x, "", b"short-again-" + x.encode(), dedup="s", delivery_mode=2)
    settle(ch2, "q", 2)
    assert bodies(ch2, "q") == [b"short-again-dx", b"short-again-ax"]
    c2.close()


def test_queue_keys_survive_restart(leveret_server, tmp_path):
    """A durable deduplication queue still refuses the key of a persistent message it recovered; the
    key of a transient message (lost in the restart) is free."""
    data = str(tmp_path / "data")
    os.makedirs(data)
    s = leveret_server(data_dir=data)
    c, ch = _open(s)
    ch.queue_declare("q", durable=True, arguments={DEDUP_X: True})
    pub(ch, "", "q", b"persistent", dedup="p", delivery_mode=2)
    pub(ch, "", "q", b"transient", dedup="t", delivery_mode=1)
    wait_count(ch, "q", 2)
    c.close()
    s.stop()
    s2 = leveret_server(data_dir=data, port=s.port)
    c2, ch2 = _open(s2)
    pub(ch2, "", "q", b"p-again", dedup="p", delivery_mode=2)
    pub(ch2, "", "q", b"t-again", dedup="t", delivery_mode=2)
    settle(ch2, "q", 2)
    assert bodies(ch2, "q") == [b"persistent", b"t-again"]
    pub(ch2, "", "q", b"p-third", dedup="p", delivery_mode=2)
    settle(ch2, "q", 1)
    assert bodies(ch2, "q") == [b"p-third"]
    c2.close()


def test_non_durable_exchange_cache_does_not_survive(leveret_server, tmp_path):
    """A transient deduplication exchange is gone after a restart; re-declared, its cache is empty."""
    data = str(tmp_path / "data")
    os.makedirs(data)
    s = leveret_server(data_dir=data)
    c, ch = _open(s)
    ch.exchange_declare("tx", DEDUP_X, durable=False, arguments={"x-cache-size": 10})
    pub(ch, "tx", "", b"1", dedup="k")
    ch.exchange_declare("tx", passive=True)
    c.close()
    s.stop()
    s2 = leveret_server(data_dir=data, port=s.port)
    c2, ch2 = _open(s2)
    ch2.exchange_declare("tx", DEDUP_X, durable=False, arguments={"x-cache-size": 10})
    ch2.queue_declare("q", durable=True)
    ch2.queue_bind("q", "tx", "")
    pub(ch2, "tx", "", b"2", dedup="k")
    settle(ch2, "q", 1)
    assert bodies(ch2, "q") == [b"2"]
    c2.close()
