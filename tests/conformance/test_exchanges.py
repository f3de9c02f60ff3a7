"""Exchange conformance: declare/delete/bind semantics and routing, as RabbitMQ 3.10 does it.

pika BlockingConnection everywhere except the headers-exchange section, which uses aio-pika.
"""
from __future__ import annotations

import decimal
import uuid

import aio_pika
import aiormq.exceptions
import pytest

from .helpers import bodies, channel_error, connection_error, exchange_exists, safe, temp_queue


# --------------------------------------------------------------------------- helpers
def publish_and_collect_returns(conn, ch, exchange, key, body=b"m", mandatory=True):
    """Publish and return the list of basic.return methods it caused (synchronised by a round-trip)."""
    returned = []
    ch.add_on_return_callback(lambda _c, method, _p, b: returned.append((method, b)))
    ch.basic_publish(exchange, key, body, mandatory=mandatory)
    ch.exchange_declare("amq.direct", passive=True)  # round-trip: any return precedes its reply
    conn.process_data_events(0)
    return returned


# --------------------------------------------------------------------------- default exchange
def test_default_exchange_routes_by_queue_name(ch, uniq):
    """'' delivers to the queue whose name equals the routing key; other keys go nowhere."""
    q = ch.queue_declare(uniq + ".q").method.queue
    try:
        ch.basic_publish("", q, b"direct-to-queue")
        ch.basic_publish("", q + ".nope", b"lost")
        assert bodies(ch, q) == [b"direct-to-queue"]
    finally:
        ch.queue_delete(q)


def test_default_exchange_unroutable_mandatory_returned(conn, ch, uniq):
    """Mandatory publish via '' to a missing queue: basic.return 312 NO_ROUTE."""
    ret = publish_and_collect_returns(conn, ch, "", uniq + ".missing")
    assert len(ret) == 1
    m = ret[0][0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (312, "NO_ROUTE", "", uniq + ".missing")


DEFAULT_REFUSED = (403, "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_declare_default_exchange_refused(ch):
    """exchange.declare '' (even passive): 403 'operation not permitted on the default exchange'."""
    assert channel_error(ch.exchange_declare, "", "direct") == DEFAULT_REFUSED


def test_declare_default_exchange_passive_refused(ch):
    """Passive exchange.declare '': 403 'operation not permitted on the default exchange'."""
    assert channel_error(ch.exchange_declare, "", "direct", passive=True) == DEFAULT_REFUSED


def test_delete_default_exchange_refused(ch):
    """exchange.delete '': 403 'operation not permitted on the default exchange'."""
    assert channel_error(ch.exchange_delete, "") == DEFAULT_REFUSED


def test_queue_bind_default_exchange_refused(ch):
    """queue.bind to '': 403 'operation not permitted on the default exchange'."""
    q = temp_queue(ch)
    assert channel_error(ch.queue_bind, q, "", routing_key="x") == DEFAULT_REFUSED


def test_queue_unbind_default_exchange_refused(ch):
    """queue.unbind from '' (even the implicit binding): 403 'operation not permitted on the default exchange'."""
    q = temp_queue(ch)
    assert channel_error(ch.queue_unbind, q, "", routing_key=q) == DEFAULT_REFUSED


def test_exchange_bind_default_as_source_or_destination_refused(conn, uniq, cleanup_exchanges):
    """exchange.bind with '' as source or destination: 403 'operation not permitted on the default exchange'."""
    ch = conn.channel()
    ch.exchange_declare(uniq + ".x", "fanout")
    cleanup_exchanges.append(uniq + ".x")
    assert channel_error(ch.exchange_bind, uniq + ".x", "", routing_key="k") == DEFAULT_REFUSED
    ch = conn.channel()
    assert channel_error(ch.exchange_bind, "", uniq + ".x", routing_key="k") == DEFAULT_REFUSED


def test_amq_default_is_not_an_alias_on_the_wire(ch):
    """RabbitMQ 3.10: 'amq.default' is not found by passive declare (404)."""
    assert channel_error(ch.exchange_declare, "amq.default", passive=True) == (
        404, "NOT_FOUND - no exchange 'amq.default' in vhost '/'")


def test_amq_default_declare_refused(ch):
    """Declaring 'amq.default': 403 reserved prefix."""
    assert channel_error(ch.exchange_declare, "amq.default", "direct") == (
        403, "ACCESS_REFUSED - exchange name 'amq.default' contains reserved prefix 'amq.*'")


def test_amq_default_delete_refused(ch):
    """Deleting 'amq.default': 403 'deletion of system exchange ... not allowed'."""
    assert channel_error(ch.exchange_delete, "amq.default") == (
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.default' in vhost '/' not allowed")


def test_amq_default_bind_not_found(ch):
    """queue.bind to 'amq.default': 404 no exchange."""
    q = temp_queue(ch)
    assert channel_error(ch.queue_bind, q, "amq.default", routing_key="x") == (
        404, "NOT_FOUND - no exchange 'amq.default' in vhost '/'")


def test_publish_to_amq_default_not_found(conn, ch):
    """basic.publish to 'amq.default': channel closed 404 no exchange (RabbitMQ 3.10)."""
    q = temp_queue(ch)
    ch.basic_publish("amq.default", q, b"x")
    assert channel_error(ch.queue_declare, "", exclusive=True) == (
        404, "NOT_FOUND - no exchange 'amq.default' in vhost '/'")


# --------------------------------------------------------------------------- predeclared exchanges
@pytest.mark.parametrize("name,type_", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"),
])
def test_predeclared_exchange_exists_with_type(ch, name, type_):
    """amq.* exchanges exist (passive ok) and re-declaring with their type, durable=true, is ok."""
    ch.exchange_declare(name, passive=True)
    ch.exchange_declare(name, type_, durable=True)


@pytest.mark.parametrize("name,type_", [
    ("amq.direct", "fanout"), ("amq.fanout", "direct"), ("amq.topic", "direct"), ("amq.headers", "topic"),
    ("amq.match", "direct"),
])
def test_predeclared_exchange_type_mismatch(ch, name, type_):
    """Re-declaring an amq.* exchange with another type: 406 inequivalent arg 'type'."""
    actual = {"amq.direct": "direct", "amq.fanout": "fanout", "amq.topic": "topic",
              "amq.headers": "headers", "amq.match": "headers"}[name]
    assert channel_error(ch.exchange_declare, name, type_, durable=True) == (
        406, f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '/': "
             f"received '{type_}' but current is '{actual}'")


def test_amq_rabbitmq_trace_exists(ch):
    """amq.rabbitmq.trace exists (durable, internal topic) on RabbitMQ 3.10; amq.rabbitmq.log does not."""
    ch.exchange_declare("amq.rabbitmq.trace", passive=True)
    ch.exchange_declare("amq.rabbitmq.trace", "topic", durable=True, internal=True)
    assert channel_error(ch.exchange_declare, "amq.rabbitmq.log", passive=True) == (
        404, "NOT_FOUND - no exchange 'amq.rabbitmq.log' in vhost '/'")


def test_delete_predeclared_refused(ch):
    """exchange.delete amq.direct: 403 'deletion of system exchange ... not allowed'."""
    assert channel_error(ch.exchange_delete, "amq.direct") == (
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed")


def test_declare_amq_prefixed_name_refused(ch, uniq):
    """Declaring a new 'amq.'-prefixed exchange: 403 reserved prefix 'amq.*'."""
    name = "amq." + uniq
    assert channel_error(ch.exchange_declare, name, "direct") == (
        403, f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'")


def test_passive_amq_prefixed_missing_is_not_found(ch, uniq):
    """Passive declare of a missing 'amq.'-prefixed name: 404, not 403."""
    name = "amq." + uniq
    assert channel_error(ch.exchange_declare, name, "direct", passive=True) == (
        404, f"NOT_FOUND - no exchange '{name}' in vhost '/'")


# --------------------------------------------------------------------------- declare / delete
def test_passive_declare_missing(ch, uniq):
    """Passive declare of a missing exchange: 404 "no exchange 'X' in vhost '/'"."""
    assert channel_error(ch.exchange_declare, uniq + ".x", passive=True) == (
        404, f"NOT_FOUND - no exchange '{uniq}.x' in vhost '/'")


def test_passive_declare_ignores_properties(ch, uniq, cleanup_exchanges):
    """Passive declare of an existing exchange succeeds whatever type/durable it names."""
    ch.exchange_declare(uniq + ".x", "direct")
    cleanup_exchanges.append(uniq + ".x")
    ch.exchange_declare(uniq + ".x", "fanout", passive=True)
    ch.exchange_declare(uniq + ".x", "topic", durable=True, auto_delete=True, passive=True)


def test_redeclare_same_is_ok(ch, uniq, cleanup_exchanges):
    """Re-declaring with identical properties returns declare-ok."""
    ch.exchange_declare(uniq + ".x", "topic", durable=True)
    cleanup_exchanges.append(uniq + ".x")
    ch.exchange_declare(uniq + ".x", "topic", durable=True)


@pytest.mark.parametrize("first,second,text", [
    (dict(exchange_type="direct"), dict(exchange_type="fanout"),
     "inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'fanout' but current is 'direct'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", durable=True),
     "inequivalent arg 'durable' for exchange '{x}' in vhost '/': received 'true' but current is 'false'"),
    (dict(exchange_type="direct", durable=True), dict(exchange_type="direct"),
     "inequivalent arg 'durable' for exchange '{x}' in vhost '/': received 'false' but current is 'true'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", auto_delete=True),
     "inequivalent arg 'auto_delete' for exchange '{x}' in vhost '/': received 'true' but current is 'false'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", internal=True),
     "inequivalent arg 'internal' for exchange '{x}' in vhost '/': received 'true' but current is 'false'"),
    (dict(exchange_type="direct"), dict(exchange_type="direct", arguments={"alternate-exchange": "foo"}),
     "inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '/': "
     "received the value 'foo' of type 'longstr' but current is none"),
    (dict(exchange_type="direct", arguments={"alternate-exchange": "foo"}), dict(exchange_type="direct"),
     "inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '/': "
     "received none but current is the value 'foo' of type 'longstr'"),
])
def test_redeclare_inequivalent(ch, uniq, cleanup_exchanges, first, second, text):
    """Re-declare with a different type/durable/auto_delete/internal/alternate-exchange: 406 PRECONDITION_FAILED."""
    x = uniq + ".x"
    ch.exchange_declare(x, **first)
    cleanup_exchanges.append(x)
    assert channel_error(ch.exchange_declare, x, **second) == (406, "PRECONDITION_FAILED - " + text.format(x=x))


def test_redeclare_with_other_unknown_argument_is_ok(ch, uniq, cleanup_exchanges):
    """Arguments other than alternate-exchange are not compared on re-declare."""
    x = uniq + ".x"
    ch.exchange_declare(x, "direct", arguments={"x-foo": "a"})
    cleanup_exchanges.append(x)
    ch.exchange_declare(x, "direct", arguments={"x-foo": "b"})
    ch.exchange_declare(x, "direct")


def test_unknown_exchange_type_is_connection_error(conn, uniq):
    """Unknown exchange type: connection.close 503 COMMAND_INVALID "unknown exchange type 'T'".

    (RabbitMQ says "invalid exchange type" instead when T happens to be an existing Erlang atom,
    e.g. 'foo' or ''; a type name never seen before always gives "unknown".)"""
    t = "x-no-such-type-" + uuid.uuid4().hex[:8]
    ch = conn.channel()
    assert connection_error(ch.exchange_declare, uniq + ".x", t) == (
        503, f"COMMAND_INVALID - unknown exchange type '{t}'")
    assert conn.is_closed


def test_unknown_type_passive_on_missing_is_not_found(ch, uniq):
    """Passive declare with a bogus type of a missing exchange: 404 (type not checked)."""
    assert channel_error(ch.exchange_declare, uniq + ".x", "x-bogus-type", passive=True) == (
        404, f"NOT_FOUND - no exchange '{uniq}.x' in vhost '/'")


def test_delete_missing_exchange_is_ok(ch, uniq):
    """exchange.delete of a missing exchange returns delete-ok (also with if_unused)."""
    ch.exchange_delete(uniq + ".missing")
    ch.exchange_delete(uniq + ".missing", if_unused=True)


def test_delete_if_unused_with_queue_binding(ch, uniq, cleanup_exchanges):
    """exchange.delete if_unused on an exchange with a queue binding: 406 "exchange 'X' in vhost '/' in use"."""
    x = uniq + ".x"
    ch.exchange_declare(x, "fanout")
    cleanup_exchanges.append(x)
    ch.queue_bind(temp_queue(ch), x)
    assert channel_error(ch.exchange_delete, x, if_unused=True) == (
        406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use")


def test_delete_if_unused_with_e2e_bindings(conn, uniq, cleanup_exchanges, broker_url):
    """if_unused: being the source of an e2e binding counts as used; being only a destination does not."""
    ch = conn.channel()
    src, dst = uniq + ".src", uniq + ".dst"
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    cleanup_exchanges.extend([src, dst])
    ch.exchange_bind(dst, src)
    assert channel_error(ch.exchange_delete, src, if_unused=True) == (
        406, f"PRECONDITION_FAILED - exchange '{src}' in vhost '/' in use")
    ch = conn.channel()
    ch.exchange_delete(dst, if_unused=True)
    assert not exchange_exists(broker_url, dst)


def test_delete_if_unused_unbound(ch, uniq, broker_url):
    """exchange.delete if_unused on an exchange without bindings deletes it."""
    x = uniq + ".x"
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x, if_unused=True)
    assert not exchange_exists(broker_url, x)


def test_delete_removes_bindings(ch, uniq, broker_url):
    """Deleting and re-creating an exchange: old bindings are gone."""
    x = uniq + ".x"
    q = temp_queue(ch)
    ch.exchange_declare(x, "fanout")
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    try:
        ch.basic_publish(x, "", b"after-recreate")
        assert bodies(ch, q) == []
    finally:
        ch.exchange_delete(x)


def test_auto_delete_when_last_binding_removed(ch, uniq, broker_url):
    """auto_delete exchange: survives with no bindings ever, is deleted when its last queue binding goes."""
    x = uniq + ".x"
    ch.exchange_declare(x, "fanout", auto_delete=True)
    assert exchange_exists(broker_url, x)
    q1, q2 = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(q1, x)
    ch.queue_bind(q2, x)
    ch.queue_unbind(q1, x)
    assert exchange_exists(broker_url, x)
    ch.queue_unbind(q2, x)
    assert not exchange_exists(broker_url, x)


def test_auto_delete_when_bound_queue_deleted(ch, uniq, broker_url):
    """auto_delete exchange is deleted when the only bound queue is deleted."""
    x = uniq + ".x"
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = temp_queue(ch)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    assert not exchange_exists(broker_url, x)


def test_auto_delete_e2e_source_vs_destination(ch, uniq, broker_url):
    """auto_delete counts bindings where it is the source; removing one where it is destination keeps it."""
    src, dst = uniq + ".src", uniq + ".dst"
    ch.exchange_declare(src, "fanout", auto_delete=True)
    ch.exchange_declare(dst, "fanout", auto_delete=True)
    try:
        ch.exchange_bind(dst, src)
        ch.exchange_unbind(dst, src)
        assert not exchange_exists(broker_url, src)
        assert exchange_exists(broker_url, dst)
    finally:
        ch.exchange_delete(dst)
        ch.exchange_delete(src)


def test_publish_to_internal_exchange_refused(ch, uniq, cleanup_exchanges):
    """basic.publish to an internal exchange: channel closed 403 'cannot publish to internal exchange'."""
    x = uniq + ".int"
    ch.exchange_declare(x, "fanout", internal=True)
    cleanup_exchanges.append(x)
    ch.basic_publish(x, "", b"x")
    assert channel_error(ch.queue_declare, "", exclusive=True) == (
        403, f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'")


def test_internal_exchange_reachable_via_e2e(ch, uniq, cleanup_exchanges):
    """An internal exchange still routes messages arriving through an exchange-to-exchange binding."""
    x, internal = uniq + ".x", uniq + ".int"
    ch.exchange_declare(x, "fanout")
    ch.exchange_declare(internal, "fanout", internal=True)
    cleanup_exchanges.extend([x, internal])
    q = temp_queue(ch)
    ch.queue_bind(q, internal)
    ch.exchange_bind(internal, x)
    ch.basic_publish(x, "", b"via-e2e")
    assert bodies(ch, q) == [b"via-e2e"]


def test_publish_to_missing_exchange(ch, uniq):
    """basic.publish to a missing exchange: channel closed 404 "no exchange 'X' in vhost '/'"."""
    ch.basic_publish(uniq + ".missing", "k", b"x")
    assert channel_error(ch.queue_declare, "", exclusive=True) == (
        404, f"NOT_FOUND - no exchange '{uniq}.missing' in vhost '/'")


def test_queue_bind_missing_exchange_or_queue(conn, uniq):
    """queue.bind: missing exchange -> 404 no exchange; missing queue -> 404 no queue."""
    ch = conn.channel()
    q = temp_queue(ch)
    assert channel_error(ch.queue_bind, q, uniq + ".missing", "k") == (
        404, f"NOT_FOUND - no exchange '{uniq}.missing' in vhost '/'")
    ch = conn.channel()
    assert channel_error(ch.queue_bind, uniq + ".noq", "amq.direct", "k") == (
        404, f"NOT_FOUND - no queue '{uniq}.noq' in vhost '/'")


def test_queue_unbind_nonexistent_is_ok(ch, uniq):
    """queue.unbind of a binding/queue/exchange that does not exist returns unbind-ok (3.10)."""
    q = temp_queue(ch)
    ch.queue_unbind(q, "amq.direct", uniq + ".never-bound")
    ch.queue_unbind(uniq + ".noq", "amq.direct", "k")
    ch.queue_unbind(q, uniq + ".nox", "k")


# --------------------------------------------------------------------------- direct / fanout
def test_direct_routing(ch, uniq, cleanup_exchanges):
    """Direct: exact, case-sensitive key match; one message per matching queue; unmatched keys dropped."""
    x = uniq + ".d"
    ch.exchange_declare(x, "direct")
    cleanup_exchanges.append(x)
    q1, q2 = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(q1, x, "k")
    ch.queue_bind(q2, x, "k")
    ch.queue_bind(q1, x, "K")
    ch.queue_bind(q1, x, "")
    for body, key in [(b"1", "k"), (b"2", "K"), (b"3", "k "), (b"4", ""), (b"5", "other")]:
        ch.basic_publish(x, key, body)
    assert bodies(ch, q1) == [b"1", b"2", b"4"]
    assert bodies(ch, q2) == [b"1"]


def test_direct_same_binding_twice_is_one_binding(ch, uniq, cleanup_exchanges):
    """Binding the same queue/key twice delivers once, and one unbind removes it."""
    x = uniq + ".d"
    ch.exchange_declare(x, "direct")
    cleanup_exchanges.append(x)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k")
    ch.basic_publish(x, "k", b"once")
    assert bodies(ch, q) == [b"once"]
    ch.queue_unbind(q, x, "k")
    ch.basic_publish(x, "k", b"gone")
    assert bodies(ch, q) == []


def test_fanout_ignores_routing_key(ch, uniq, cleanup_exchanges):
    """Fanout: every bound queue gets every message regardless of routing/binding keys."""
    x = uniq + ".f"
    ch.exchange_declare(x, "fanout")
    cleanup_exchanges.append(x)
    q1, q2 = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(q1, x, "a")
    ch.queue_bind(q2, x, "b")
    ch.queue_bind(q2, x, "c")  # second binding to the same queue: still one copy
    ch.basic_publish(x, "zzz", b"m1")
    ch.basic_publish(x, "", b"m2")
    assert bodies(ch, q1) == [b"m1", b"m2"]
    assert bodies(ch, q2) == [b"m1", b"m2"]


# --------------------------------------------------------------------------- topic
TOPIC_KEYS = ["", "a", "b", "a.b", "a.b.c", "b.a", "a..b", ".a", "a.", ".", "..", "x.a.y", "a.a", "#", "*",
              "a.b.c.d"]

TOPIC_CASES = {
    "#": TOPIC_KEYS,
    "#.#": TOPIC_KEYS,
    "*": ["a", "b", "#", "*"],
    "a.#": ["a", "a.b", "a.b.c", "a..b", "a.", "a.a", "a.b.c.d"],
    "a.#.#": ["a", "a.b", "a.b.c", "a..b", "a.", "a.a", "a.b.c.d"],
    "#.a": ["a", "b.a", ".a", "a.a"],
    "#.a.#": ["a", "a.b", "a.b.c", "b.a", "a..b", ".a", "a.", "x.a.y", "a.a", "a.b.c.d"],
    "*.*": ["a.b", "b.a", ".a", "a.", ".", "a.a"],
    "a.*": ["a.b", "a.", "a.a"],
    "*.a": ["b.a", ".a", "a.a"],
    "a.*.#": ["a.b", "a.b.c", "a..b", "a.", "a.a", "a.b.c.d"],
    "a..b": ["a..b"],
    "*.*.*": ["a.b.c", "a..b", "..", "x.a.y"],
    ".": ["."],
    "*.": ["a.", "."],
    "#.": ["a.", ".", ".."],
    "a.#.b": ["a.b", "a..b"],
    "#.b.#.c": ["a.b.c"],
    "": [""],
    "*.#": [k for k in TOPIC_KEYS if k != ""],
    "#.*": [k for k in TOPIC_KEYS if k != ""],
    "a.*.c": ["a.b.c"],
}


@pytest.mark.parametrize("pattern", list(TOPIC_CASES))
def test_topic_matching(ch, uniq, cleanup_exchanges, pattern):
    """Topic binding patterns ('*' one word, '#' zero or more, empty words count) select exactly these keys."""
    x = uniq + ".t"
    ch.exchange_declare(x, "topic")
    cleanup_exchanges.append(x)
    q = temp_queue(ch)
    ch.queue_bind(q, x, pattern)
    for k in TOPIC_KEYS:
        ch.basic_publish(x, k, k.encode())
    assert [b.decode() for b in bodies(ch, q)] == TOPIC_CASES[pattern]


def test_topic_overlapping_bindings_deliver_once(ch, uniq, cleanup_exchanges):
    """Several matching bindings from one topic exchange to one queue deliver a single copy."""
    x = uniq + ".t"
    ch.exchange_declare(x, "topic")
    cleanup_exchanges.append(x)
    q = temp_queue(ch)
    for p in ["a.*", "#", "a.b", "*.b", "a.#"]:
        ch.queue_bind(q, x, p)
    ch.basic_publish(x, "a.b", b"once")
    assert bodies(ch, q) == [b"once"]
    ch.queue_unbind(q, x, "#")
    ch.basic_publish(x, "z.z", b"no-match-now")
    ch.basic_publish(x, "a.c", b"a-star")
    assert bodies(ch, q) == [b"a-star"]


def test_amq_topic_routes(ch, uniq):
    """The predeclared amq.topic routes like any topic exchange."""
    q = temp_queue(ch)
    ch.queue_bind(q, "amq.topic", uniq + ".*")
    ch.basic_publish("amq.topic", uniq + ".x", b"hit")
    ch.basic_publish("amq.topic", uniq + ".x.y", b"miss")
    assert bodies(ch, q) == [b"hit"]


# --------------------------------------------------------------------------- headers (aio-pika)
HEADER_MSGS = [None, {}, {"a": 1}, {"a": 1, "b": 2}, {"a": "1"}, {"b": 2}, {"a": 1, "b": 3},
               {"a": 1, "x-foo": "y"}, {"x-foo": "y"}, {"a": 1, "b": 2, "c": 3}]

HEADER_CASES = [
    ({}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ({"a": 1}, [2, 3, 6, 7, 9]),                                  # default x-match is all
    ({"a": 1, "b": 2}, [3, 9]),
    ({"x-match": "all", "a": 1, "b": 2}, [3, 9]),
    ({"x-match": "any", "a": 1, "b": 2}, [2, 3, 5, 6, 7, 9]),
    ({"x-match": "all"}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ({"x-match": "any"}, []),
    ({"x-match": "all", "x-foo": "y"}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),   # x-* binding keys ignored
    ({"x-match": "any", "x-foo": "y"}, []),
    ({"x-match": "all", "a": 1, "x-foo": "z"}, [2, 3, 6, 7, 9]),
    ({"x-match": "all-with-x", "x-foo": "y"}, [7, 8]),
    ({"x-match": "any-with-x", "x-foo": "y"}, [7, 8]),
    ({"x-match": "all-with-x", "a": 1, "x-foo": "y"}, [7]),
    ({"x-match": "any-with-x", "b": 2, "x-foo": "y"}, [3, 5, 7, 8, 9]),
    ({"a": "1"}, [4]),                                            # string '1' != integer 1
]

TYPE_MSGS = [{"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}, {"v": bytearray(b"1")}, {"v": decimal.Decimal("1")},
             {"v": None}, {"v": 2 ** 40}, {"v": -1}, {"v": 300}, {"v": 0}, {"v": False}, {}, {"v": [1]},
             {"v": {"a": 1}}]

TYPE_CASES = [
    ({"v": 1}, [0, 1]),            # int matches equal float; not True
    ({"v": 1.0}, [0, 1]),
    ({"v": True}, [2]),
    ({"v": "1"}, [3, 4]),          # longstr matches equal byte array
    ({"v": bytearray(b"1")}, [3, 4]),
    ({"v": decimal.Decimal("1")}, [5]),
    ({"v": None}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14]),   # void = key present, any value
    ({"v": 2 ** 40}, [7]),
    ({"v": 300}, [9]),
    ({"v": 0}, [10]),              # 0 does not match False
    ({"v": [1]}, [13]),
]


async def _headers_route(broker_url, uniq, bind_args, messages) -> list[int]:
    conn = await aio_pika.connect(broker_url)
    try:
        ch = await conn.channel()
        x = await ch.declare_exchange(safe(uniq) + ".h", aio_pika.ExchangeType.HEADERS, auto_delete=False)
        try:
            q = await ch.declare_queue("", exclusive=True)
            await q.bind(x, "", arguments=bind_args)
            for i, h in enumerate(messages):
                await x.publish(aio_pika.Message(str(i).encode(), headers=h), "")
            got = []
            while (m := await q.get(no_ack=True, fail=False)) is not None:
                got.append(int(m.body))
            return got
        finally:
            await x.delete()
    finally:
        await conn.close()


@pytest.mark.parametrize("bind_args,expected", HEADER_CASES, ids=[str(a) for a, _ in HEADER_CASES])
async def test_headers_x_match(broker_url, uniq, bind_args, expected):
    """Headers exchange x-match all/any/all-with-x/any-with-x (default all; x-* keys ignored unless -with-x)."""
    assert await _headers_route(broker_url, uniq, bind_args, HEADER_MSGS) == expected


@pytest.mark.parametrize("bind_args,expected", TYPE_CASES, ids=[str(a) for a, _ in TYPE_CASES])
async def test_headers_value_types(broker_url, uniq, bind_args, expected):
    """Headers value matching across AMQP field types, as RabbitMQ 3.10 compares them."""
    assert await _headers_route(broker_url, uniq, bind_args, TYPE_MSGS) == expected


@pytest.mark.parametrize("x_match,text", [
    ("foo", 'PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x'),
    ("ALL", 'PRECONDITION_FAILED - Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x'),
    (1, "PRECONDITION_FAILED - Invalid x-match field type byte (value 1); expected longstr"),
])
async def test_headers_invalid_x_match(broker_url, uniq, x_match, text):
    """queue.bind with a bad x-match value/type: channel closed 406 with RabbitMQ's text."""
    conn = await aio_pika.connect(broker_url)
    try:
        ch = await conn.channel()
        x = await ch.declare_exchange(safe(uniq) + ".h", aio_pika.ExchangeType.HEADERS)
        q = await ch.declare_queue("", exclusive=True)
        try:
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as ei:
                await q.bind(x, "", arguments={"x-match": x_match, "a": 1})
            # aiormq maps reply code 406 to ChannelPreconditionFailed; args[0] is the reply text
            assert ei.value.args[0] == text
        finally:
            ch2 = await conn.channel()
            await ch2.exchange_delete(safe(uniq) + ".h")
    finally:
        await conn.close()


async def test_amq_match_is_headers(broker_url, uniq):
    """amq.match and amq.headers route by headers."""
    conn = await aio_pika.connect(broker_url)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        for name in ("amq.match", "amq.headers"):
            x = await ch.get_exchange(name)
            await q.bind(x, "", arguments={"x-match": "all", "t": uniq})
            await x.publish(aio_pika.Message(name.encode(), headers={"t": uniq}), "")
            await x.publish(aio_pika.Message(b"miss", headers={"t": "other"}), "")
            await q.unbind(x, "", arguments={"x-match": "all", "t": uniq})
        got = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            got.append(m.body)
        assert got == [b"amq.match", b"amq.headers"]
    finally:
        await conn.close()


# --------------------------------------------------------------------------- exchange-to-exchange
def test_e2e_bind_routes_through_destination(ch, uniq, cleanup_exchanges):
    """exchange.bind(dest, source, key): source routes by its type to dest, which routes by its own type."""
    src, dst = uniq + ".src", uniq + ".dst"
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "topic")
    cleanup_exchanges.extend([src, dst])
    ch.exchange_bind(dst, src, "k.x")
    q = temp_queue(ch)
    ch.queue_bind(q, dst, "*.x")
    ch.basic_publish(src, "k.x", b"through")
    ch.basic_publish(src, "k.y", b"not-bound-at-source")
    ch.basic_publish(dst, "j.x", b"direct-to-dst")
    assert bodies(ch, q) == [b"through", b"direct-to-dst"]


def test_e2e_chain(ch, uniq, cleanup_exchanges):
    """A chain a->b->c of fanouts delivers to queues on every hop."""
    a, b, c = uniq + ".a", uniq + ".b", uniq + ".c"
    for n in (a, b, c):
        ch.exchange_declare(n, "fanout")
    cleanup_exchanges.extend([a, b, c])
    ch.exchange_bind(b, a)
    ch.exchange_bind(c, b)
    qb, qc = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(qb, b)
    ch.queue_bind(qc, c)
    ch.basic_publish(a, "", b"hop")
    assert bodies(ch, qb) == [b"hop"]
    assert bodies(ch, qc) == [b"hop"]


def test_e2e_cycle_delivers_once(ch, uniq, cleanup_exchanges):
    """A cycle a->b->c->a (plus a self-binding) terminates and each queue gets exactly one copy."""
    a, b, c = uniq + ".a", uniq + ".b", uniq + ".c"
    for n in (a, b, c):
        ch.exchange_declare(n, "fanout")
    cleanup_exchanges.extend([a, b, c])
    ch.exchange_bind(b, a)
    ch.exchange_bind(c, b)
    ch.exchange_bind(a, c)
    ch.exchange_bind(a, a)
    q = temp_queue(ch)
    ch.queue_bind(q, b)
    ch.queue_bind(q, c)
    ch.queue_bind(q, a)
    ch.basic_publish(a, "", b"cycle")
    assert bodies(ch, q) == [b"cycle"]


def test_e2e_unbind(ch, uniq, cleanup_exchanges):
    """exchange.unbind removes the route."""
    src, dst = uniq + ".src", uniq + ".dst"
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "fanout")
    cleanup_exchanges.extend([src, dst])
    q = temp_queue(ch)
    ch.queue_bind(q, dst)
    ch.exchange_bind(dst, src, "k")
    ch.basic_publish(src, "k", b"before")
    ch.exchange_unbind(dst, src, "k")
    ch.basic_publish(src, "k", b"after")
    assert bodies(ch, q) == [b"before"]


def test_e2e_unbind_nonexistent_is_ok(ch, uniq):
    """exchange.unbind of a binding that does not exist (even missing exchanges) returns unbind-ok."""
    ch.exchange_unbind("amq.direct", "amq.fanout", uniq)
    ch.exchange_unbind("amq.direct", uniq + ".missing", "k")
    ch.exchange_unbind(uniq + ".missing", "amq.direct", "k")


def test_e2e_bind_missing_exchange(conn, uniq):
    """exchange.bind with a missing source or destination: 404 no exchange (both missing: the source is named)."""
    ch = conn.channel()
    assert channel_error(ch.exchange_bind, "amq.fanout", uniq + ".nosrc") == (
        404, f"NOT_FOUND - no exchange '{uniq}.nosrc' in vhost '/'")
    ch = conn.channel()
    assert channel_error(ch.exchange_bind, uniq + ".nodst", "amq.fanout") == (
        404, f"NOT_FOUND - no exchange '{uniq}.nodst' in vhost '/'")
    ch = conn.channel()
    assert channel_error(ch.exchange_bind, uniq + ".nodst", uniq + ".nosrc") == (
        404, f"NOT_FOUND - no exchange '{uniq}.nosrc' in vhost '/'")


def test_e2e_chain_to_nowhere_is_returned(conn, ch, uniq, cleanup_exchanges):
    """Mandatory publish that reaches an exchange but no queue: basic.return 312 NO_ROUTE naming the first exchange."""
    x1, x2 = uniq + ".x1", uniq + ".x2"
    ch.exchange_declare(x1, "direct")
    ch.exchange_declare(x2, "fanout")
    cleanup_exchanges.extend([x1, x2])
    ch.exchange_bind(x2, x1, "k")
    ret = publish_and_collect_returns(conn, ch, x1, "k")
    assert [(m.reply_code, m.reply_text, m.exchange, m.routing_key) for m, _ in ret] == [
        (312, "NO_ROUTE", x1, "k")]


# --------------------------------------------------------------------------- alternate exchange
def test_alternate_exchange_gets_unroutable(conn, ch, uniq, cleanup_exchanges):
    """Unroutable messages go to the alternate-exchange; mandatory then produces no basic.return."""
    ae, main = uniq + ".ae", uniq + ".main"
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
    cleanup_exchanges.extend([main, ae])
    qa, qm = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(qa, ae)
    ch.queue_bind(qm, main, "k")
    assert publish_and_collect_returns(conn, ch, main, "k", b"routed") == []
    assert publish_and_collect_returns(conn, ch, main, "other", b"unroutable") == []
    assert bodies(ch, qm) == [b"routed"]
    assert bodies(ch, qa) == [b"unroutable"]


def test_alternate_exchange_missing_or_unrouting_returns(conn, ch, uniq, cleanup_exchanges):
    """If the alternate-exchange is missing or routes nowhere, a mandatory message is returned 312 NO_ROUTE."""
    ae, m1, m2 = uniq + ".ae", uniq + ".m1", uniq + ".m2"
    ch.exchange_declare(ae, "direct")
    ch.exchange_declare(m1, "direct", arguments={"alternate-exchange": uniq + ".missing"})
    ch.exchange_declare(m2, "direct", arguments={"alternate-exchange": ae})
    cleanup_exchanges.extend([m1, m2, ae])
    for x in (m1, m2):
        ret = publish_and_collect_returns(conn, ch, x, "nokey")
        assert [(m.reply_code, m.reply_text, m.exchange, m.routing_key) for m, _ in ret] == [
            (312, "NO_ROUTE", x, "nokey")]


def test_alternate_exchange_keeps_routing_key(ch, uniq, cleanup_exchanges):
    """The alternate-exchange routes with the original routing key."""
    ae, main = uniq + ".ae", uniq + ".main"
    ch.exchange_declare(ae, "direct")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
    cleanup_exchanges.extend([main, ae])
    q = temp_queue(ch)
    ch.queue_bind(q, ae, "lost.key")
    ch.basic_publish(main, "lost.key", b"via-ae")
    ch.basic_publish(main, "other.key", b"dropped")
    assert bodies(ch, q) == [b"via-ae"]
