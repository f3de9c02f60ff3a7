"""Delayed message exchange: type ``x-delayed-message`` as in rabbitmq-delayed-message-exchange.

RabbitMQ 3.10 on the reference machine has no such plugin, so against an external broker these
tests skip unless the broker knows the exchange type (probed once); against Leveret they always run.

What the plugin does (src/rabbit_exchange_type_delayed_message.erl, rabbit_delayed_message.erl,
rabbit_delayed_message_utils.erl):
  * exchange.declare type 'x-delayed-message' needs the argument 'x-delayed-type' (a string naming an
    existing exchange type other than 'x-delayed-message'); routing after the delay is that type's.
  * 'x-delay' header: integer types are used as is, longstr/shortstr are parsed as an integer, float/double
    truncated. A delay d with 0 < d <= 4294967295 holds the message for d ms; anything else (absent,
    0, negative, larger, bool, ...) routes at once as the underlying type would.
  * At publish time a held message routes nowhere: mandatory -> basic.return 312 NO_ROUTE right away,
    and under confirms the basic.ack comes right away too; an alternate-exchange gets a copy right
    away (and another at the due time if nothing matches then). The message is still delivered later.
  * Delivery is by due time (publish time + delay, ms); equal due times keep publish order. Bindings are
    looked up at delivery time. The plugin re-routes the held copy with x-delay negated in its decoded
    properties only, so a delayed exchange further down an e2e chain does not delay it again, while
    consumers get the content header exactly as published (3.x keeps the original properties bytes:
    rabbitmq-delayed-message-exchange#64; the README's "negated x-delay" is not what 3.10 sends).
  * Held messages are on disk (Mnesia disc_copies) and survive a restart.

Verified against RabbitMQ 3.10.8 with the plugin built from its v3.10.x source (commit e6c8b16).
"""
from __future__ import annotations

import decimal
import os
import struct
import time

import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from .helpers import bodies, closed_with, safe, temp_queue, wait_count

DELAYED = "x-delayed-message"
LATE_OK = 0.5          # generous bound on lateness (s); the real bound is measured by a benchmark
EARLY_TOLERANCE = 0.005


# --------------------------------------------------------------------------- helpers
def declare_delayed(ch, name, xtype="direct", durable=False, cleanup_exchanges=None, **arguments):
    """Declare a delayed exchange; returns its name (made pamqp-safe: parametrized ids have brackets)."""
    name = safe(name)
    args = {"x-delayed-type": xtype, **arguments}
    ch.exchange_declare(name, DELAYED, durable=durable, arguments=args)
    if cleanup_exchanges is not None:
        cleanup_exchanges.append(name)
    return name


def publish(ch, exchange, key, body, delay=None, headers=None, **props):
    h = dict(headers or {})
    if delay is not None:
        h["x-delay"] = delay
    ch.basic_publish(exchange, key, body, pika.BasicProperties(headers=h or None, **props))


def collect(conn, ch, q, n, timeout):
    """Consume until ``n`` messages arrived or ``timeout`` passed -> [(monotonic time, body, headers)]."""
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append((time.monotonic(), b, p.headers)), auto_ack=True)
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.005)
    ch.basic_cancel(tag)
    return got


# --------------------------------------------------------------------------- declare / validation
def test_declare_requires_x_delayed_type(ch, uniq, delayed_ok):
    """Missing x-delayed-type: channel closed 406 with the plugin's text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DELAYED)
    closed_with(ei, 406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type")


def test_declare_x_delayed_type_not_a_string(ch, uniq, delayed_ok):
    """A non-string x-delayed-type gets the same 406 as a missing one."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DELAYED, arguments={"x-delayed-type": 1})
    closed_with(ei, 406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type")


def test_declare_x_delayed_type_self(ch, uniq, delayed_ok):
    """x-delayed-type 'x-delayed-message' is refused with its own text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DELAYED, arguments={"x-delayed-type": DELAYED})
    closed_with(ei, 406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'")


def test_declare_x_delayed_type_unknown(connect, uniq, delayed_ok):
    """An unknown x-delayed-type fails like an unknown exchange type: connection closed 503."""
    c = connect()
    ch = c.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.exchange_declare(uniq + ".x", DELAYED, arguments={"x-delayed-type": "x-no-such-type"})
    closed_with(ei, 503, "COMMAND_INVALID - unknown exchange type 'x-no-such-type'")


def test_declare_ok_and_equivalence(ch, uniq, cleanup_exchanges, delayed_ok):
    """Redeclare with the same flags is fine; a different x-delayed-type is NOT checked (RabbitMQ only
    compares 'alternate-exchange' among exchange arguments), but the exchange type itself is."""
    x = declare_delayed(ch, uniq + ".x", "direct", cleanup_exchanges=cleanup_exchanges)
    ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": "direct"})
    ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.exchange_declare(x, passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "direct")
    # The type is an Erlang atom printed with ~p inside quotes: one needing quotes comes out doubled.
    closed_with(ei, 406, f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': "
                         f"received 'direct' but current is ''{DELAYED}''")


def test_redeclare_other_x_delayed_type_keeps_routing(ch, uniq, cleanup_exchanges, delayed_ok):
    """The silently accepted redeclare with another x-delayed-type does not change the routing."""
    x = declare_delayed(ch, uniq + ".x", "direct", cleanup_exchanges=cleanup_exchanges)
    ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": "fanout"})
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "other", b"no")
    publish(ch, x, "k", b"yes")
    assert wait_count(ch, q, 1) == 1
    assert bodies(ch, q) == [b"yes"]


# --------------------------------------------------------------------------- the x-delay header
def test_delay_holds_message_then_delivers(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    """x-delay 300: not in the queue before its time, delivered within LATE_OK after it, with its
    headers (x-delay included) exactly as published."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    t0 = time.monotonic()
    publish(ch, x, "k", b"later", delay=300, headers={"a": "b", "n": 7})
    time.sleep(0.15)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    got = collect(conn, ch, q, 1, 0.3 + LATE_OK + 0.5)
    assert [b for _, b, _ in got] == [b"later"]
    elapsed = got[0][0] - t0
    assert 0.3 - EARLY_TOLERANCE <= elapsed <= 0.3 + LATE_OK, elapsed
    assert got[0][2] == {"a": "b", "n": 7, "x-delay": 300}


@pytest.mark.parametrize("delay", [0, -250, 4294967296, True], ids=["zero", "negative", "over-max", "bool"])
def test_no_delay_values_route_at_once(ch, uniq, cleanup_exchanges, delayed_ok, delay):
    """x-delay 0, negative, > 4294967295 (Erlang's max timer) or not a number: routed at once, header untouched."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "k", b"now", delay=delay)
    assert wait_count(ch, q, 1, timeout=0.2) == 1
    _m, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"now"
    assert props.headers == {"x-delay": delay}


def test_absent_header_routes_at_once(ch, uniq, cleanup_exchanges, delayed_ok):
    """No x-delay (no headers at all, or other headers only): routed at once, headers as sent."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "k", b"a")
    publish(ch, x, "k", b"b", headers={"other": 1})
    assert wait_count(ch, q, 2, timeout=0.2) == 2
    _, p1, b1 = ch.basic_get(q, auto_ack=True)
    _, p2, b2 = ch.basic_get(q, auto_ack=True)
    assert (b1, p1.headers, b2, p2.headers) == (b"a", None, b"b", {"other": 1})


@pytest.mark.parametrize("delay", ["250", "+250", 250.9], ids=["string", "plus-string", "float"])
def test_string_and_float_delays(conn, ch, rawc, uniq, cleanup_exchanges, delayed_ok, delay):
    """A longstr is parsed as an integer (Erlang binary_to_integer: optional sign, digits only), a
    float/double truncated: all delay 250 ms; the header is delivered as published. (Published on the
    raw client: pika cannot encode floats; pamqp sends a Python float as 'f'.)"""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    r = rawc()
    r.open_channel(1)
    t0 = time.monotonic()
    r.publish(1, x, "k", b"m", spec.Basic.Properties(headers={"x-delay": delay}))
    got = collect(conn, ch, q, 1, 0.25 + LATE_OK + 0.5)
    assert len(got) == 1
    assert 0.25 - EARLY_TOLERANCE <= got[0][0] - t0 <= 0.25 + LATE_OK
    if isinstance(delay, str):
        assert got[0][2] == {"x-delay": delay}


def test_negative_string_delay_routes_at_once(ch, uniq, cleanup_exchanges, delayed_ok):
    """"-250" parses to -250: no delay."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "k", b"now", delay="-250")
    assert wait_count(ch, q, 1, timeout=0.2) == 1


@pytest.mark.parametrize("delay", ["soon", " 250", "250.5", decimal.Decimal("250.5")],
                         ids=["word", "leading-space", "dotted", "decimal"])
def test_unparsable_delay_closes_connection_541(rawc, ch, uniq, cleanup_exchanges, delayed_ok, delay):
    """A longstr that binary_to_integer rejects, or a decimal ('D', which trunc/1 rejects), crashes the
    plugin inside the channel: connection.close 541 INTERNAL_ERROR (class 0, method 0), nothing routed."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    r = rawc()
    r.open_channel(1)
    r.publish(1, x, "k", b"m", spec.Basic.Properties(headers={"x-delay": delay}))
    close = r.expect(spec.Connection.Close, 0)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (541, "INTERNAL_ERROR", 0, 0)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def _short(s: bytes) -> bytes:
    return bytes([len(s)]) + s


def _long(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def test_delayed_content_header_byte_exact(rawc, ch, uniq, cleanup, cleanup_exchanges, delayed_ok):
    """The delivered content header is byte-for-byte the published one: header table order and field
    types (x-delay 'I' 200 stays 'I' 200, not negated, not re-sorted)."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = ch.queue_declare(uniq + ".q").method.queue
    cleanup.append(q)
    ch.queue_bind(q, x, "k")
    table = (_short(b"zeta") + b"S" + _long(b"z") + _short(b"x-delay") + b"I" + struct.pack(">i", 200)
             + _short(b"alpha") + b"l" + struct.pack(">q", 1))
    body = b"payload"
    flags = (1 << 13) | (1 << 12)             # headers, delivery_mode
    header_payload = struct.pack(">HHQH", 60, 0, len(body), flags) + _long(table) + b"\x01"
    r = rawc()
    r.open_channel(1)
    r.send_method(1, spec.Basic.Publish(exchange=x, routing_key="k"))
    r.send_frame(2, 1, header_payload)
    r.send_frame(3, 1, body)
    assert wait_count(ch, q, 1, timeout=0.2 + LATE_OK) == 1
    r.send_method(1, spec.Basic.Get(queue=q, no_ack=True))
    r.expect(spec.Basic.GetOk, 1)
    assert r.read_raw_frame() == (2, 1, header_payload)
    assert r.read_raw_frame() == (3, 1, body)


# --------------------------------------------------------------------------- ordering
def test_delivery_in_due_time_order(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    """Messages come out by due time, whatever the publish order (the plugin's delay_order test)."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "")
    delays = [400, 50, 250, 150, 320]
    for d in delays:
        publish(ch, x, "", str(d).encode(), delay=d)
    got = collect(conn, ch, q, len(delays), 0.4 + LATE_OK + 0.5)
    assert [b for _, b, _ in got] == [str(d).encode() for d in sorted(delays)]


def test_equal_delays_keep_publish_order(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    """Messages with the same x-delay published in a burst are delivered in publish order."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "")
    bodies = [str(i).encode() for i in range(30)]
    for b in bodies:
        publish(ch, x, "", b, delay=150)
    got = collect(conn, ch, q, len(bodies), 0.15 + LATE_OK + 1.0)
    assert [b for _, b, _ in got] == bodies


# --------------------------------------------------------------------------- routing by x-delayed-type
def _bind_and_check(conn, ch, x, binds, publishes, expected, delay=100):
    """Bind one queue per (name, routing_key, arguments) in ``binds``; publish (rk, headers, body) with
    ``delay``; wait until every expected body arrived (plus a margin) -> dict queue-name -> bodies."""
    qs = {}
    for name, rk, args in binds:
        q = temp_queue(ch)
        ch.queue_bind(q, x, rk, arguments=args)
        qs[name] = q
    for rk, headers, body in publishes:
        publish(ch, x, rk, body, delay=delay, headers=headers)
    time.sleep(delay / 1000 + 0.05)
    deadline = time.monotonic() + LATE_OK
    while time.monotonic() < deadline:
        if all(ch.queue_declare(qs[n], passive=True).method.message_count >= len(v) for n, v in expected.items()):
            break
        time.sleep(0.02)
    time.sleep(0.05)  # anything misrouted would have arrived by now too
    return {n: bodies(ch, q) for n, q in qs.items()}


def test_routing_direct(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    x = declare_delayed(ch, uniq + ".x", "direct", cleanup_exchanges=cleanup_exchanges)
    got = _bind_and_check(conn, ch, x, [("a", "ka", None), ("b", "kb", None)],
                          [("ka", None, b"1"), ("kb", None, b"2"), ("kc", None, b"3")],
                          {"a": [b"1"], "b": [b"2"]})
    assert got == {"a": [b"1"], "b": [b"2"]}


def test_routing_topic(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    x = declare_delayed(ch, uniq + ".x", "topic", cleanup_exchanges=cleanup_exchanges)
    got = _bind_and_check(conn, ch, x, [("star", "a.*.c", None), ("hash", "a.#", None)],
                          [("a.b.c", None, b"1"), ("a.z", None, b"2"), ("b.b.c", None, b"3")],
                          {"star": [b"1"], "hash": [b"1", b"2"]})
    assert got == {"star": [b"1"], "hash": [b"1", b"2"]}


def test_routing_fanout(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    x = declare_delayed(ch, uniq + ".x", "fanout", cleanup_exchanges=cleanup_exchanges)
    got = _bind_and_check(conn, ch, x, [("a", "whatever", None), ("b", "", None)],
                          [("k1", None, b"1"), ("", None, b"2")],
                          {"a": [b"1", b"2"], "b": [b"1", b"2"]})
    assert got == {"a": [b"1", b"2"], "b": [b"1", b"2"]}


def test_routing_headers(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    """x-delayed-type headers: x-match all/any against the message headers (x-delay itself is ignored
    by the match, as every x- header is)."""
    x = declare_delayed(ch, uniq + ".x", "headers", cleanup_exchanges=cleanup_exchanges)
    got = _bind_and_check(conn, ch, x,
                          [("all", "", {"x-match": "all", "c": "red", "s": 1}),
                           ("any", "", {"x-match": "any", "c": "blue", "s": 1})],
                          [("", {"c": "red", "s": 1}, b"1"), ("", {"c": "blue"}, b"2"), ("", {"c": "green"}, b"3")],
                          {"all": [b"1"], "any": [b"1", b"2"]})
    assert got == {"all": [b"1"], "any": [b"1", b"2"]}


def test_undelayed_message_routes_by_type_at_once(ch, uniq, cleanup_exchanges, delayed_ok):
    """Without x-delay the exchange is a plain proxy for its x-delayed-type (topic here)."""
    x = declare_delayed(ch, uniq + ".x", "topic", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "a.#")
    publish(ch, x, "a.b", b"1")
    publish(ch, x, "b.a", b"2")
    assert wait_count(ch, q, 1, timeout=0.2) == 1
    assert bodies(ch, q) == [b"1"]


# --------------------------------------------------------------------------- bindings at delivery time
def test_bindings_are_looked_up_at_delivery_time(ch, uniq, cleanup_exchanges, delayed_ok):
    """A queue bound after the publish but before the due time gets the message; one unbound
    meanwhile does not."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    early, late = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(early, x, "k")
    publish(ch, x, "k", b"m", delay=250)
    ch.queue_bind(late, x, "k")
    ch.queue_unbind(early, x, "k")
    assert wait_count(ch, late, 1, timeout=0.25 + LATE_OK) == 1
    time.sleep(0.05)
    assert (bodies(ch, early), bodies(ch, late)) == ([], [b"m"])


def test_exchange_to_exchange_destination(ch, uniq, cleanup_exchanges, delayed_ok):
    """Delayed exchange -> direct exchange -> queue: the held message follows the e2e binding at
    its due time."""
    x = declare_delayed(ch, uniq + ".x", "fanout", cleanup_exchanges=cleanup_exchanges)
    d = uniq + ".d"
    ch.exchange_declare(d, "direct")
    cleanup_exchanges.append(d)
    ch.exchange_bind(d, x, "")
    q = temp_queue(ch)
    ch.queue_bind(q, d, "k")
    publish(ch, x, "k", b"m", delay=150)
    time.sleep(0.08)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert wait_count(ch, q, 1, timeout=0.07 + LATE_OK) == 1


def test_exchange_to_exchange_source_is_delayed_too(ch, uniq, cleanup_exchanges, delayed_ok):
    """A message reaching the delayed exchange through an e2e binding is held like a published one."""
    src = uniq + ".src"
    ch.exchange_declare(src, "direct")
    cleanup_exchanges.append(src)
    x = declare_delayed(ch, uniq + ".x", "direct", cleanup_exchanges=cleanup_exchanges)
    ch.exchange_bind(x, src, "k")
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, src, "k", b"m", delay=200)
    time.sleep(0.1)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert wait_count(ch, q, 1, timeout=0.1 + LATE_OK) == 1


def test_chained_delayed_exchanges_delay_once(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    """Delayed -> delayed -> queue: the second exchange does not hold the re-routed copy again, so it
    arrives after ~one delay, not two (x-delay still 300 on delivery)."""
    x1 = declare_delayed(ch, uniq + ".x1", "fanout", cleanup_exchanges=cleanup_exchanges)
    x2 = declare_delayed(ch, uniq + ".x2", "fanout", cleanup_exchanges=cleanup_exchanges)
    ch.exchange_bind(x2, x1, "")
    q = temp_queue(ch)
    ch.queue_bind(q, x2, "")
    t0 = time.monotonic()
    publish(ch, x1, "", b"m", delay=300)
    got = collect(conn, ch, q, 1, 2.0)
    assert len(got) == 1
    assert 0.3 - EARLY_TOLERANCE <= got[0][0] - t0 < 0.6 - 0.05
    assert got[0][2] == {"x-delay": 300}


# --------------------------------------------------------------------------- mandatory / confirms
def test_mandatory_delayed_message_is_returned_at_once_and_still_delivered(conn, ch, uniq, cleanup_exchanges,
                                                                            delayed_ok):
    """The plugin routes a held message to no queue at publish time: mandatory -> basic.return
    312 NO_ROUTE immediately (headers as published), although the message is delivered later."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    returned = []
    ch.add_on_return_callback(lambda _c, m, p, b: returned.append((m.reply_code, m.reply_text, m.exchange,
                                                                   m.routing_key, b, p.headers)))
    ch.basic_publish(x, "k", b"m", pika.BasicProperties(headers={"x-delay": 200}), mandatory=True)
    ch.exchange_declare(x, passive=True)    # round trip: a return precedes the declare-ok
    conn.process_data_events(0)
    assert returned == [(312, "NO_ROUTE", x, "k", b"m", {"x-delay": 200})]
    assert wait_count(ch, q, 1, timeout=0.2 + LATE_OK) == 1


def test_mandatory_undelayed_message_routes_normally(conn, ch, uniq, cleanup_exchanges, delayed_ok):
    """Without x-delay the mandatory flag works as usual: routed -> no return; unroutable -> 312."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    returned = []
    ch.add_on_return_callback(lambda _c, m, p, b: returned.append((m.reply_code, b)))
    ch.basic_publish(x, "k", b"ok", mandatory=True)
    ch.basic_publish(x, "nope", b"lost", mandatory=True)
    ch.exchange_declare(x, passive=True)
    conn.process_data_events(0)
    assert returned == [(312, b"lost")]
    assert wait_count(ch, q, 1, timeout=0.2) == 1


def test_confirm_comes_at_publish_time(conn, uniq, cleanup_exchanges, delayed_ok):
    """Under publisher confirms a held message is acked at once (pika's publish returns long before
    the due time); a mandatory one raises UnroutableError (its return)."""
    ch = conn.channel()
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    ch.confirm_delivery()
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"m", pika.BasicProperties(headers={"x-delay": 1000}))
    assert time.monotonic() - t0 < 0.5
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "k", b"m2", pika.BasicProperties(headers={"x-delay": 1000}), mandatory=True)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_alternate_exchange_gets_held_messages_at_once(ch, uniq, cleanup_exchanges, delayed_ok):
    """A delayed exchange with an alternate-exchange: every held message routes nowhere at publish
    time, so the AE gets a copy at once (rabbitmq-delayed-message-exchange#36). At the due time the
    message goes to its bound queue; one that still matches no binding goes to the AE a second time.
    A mandatory publish taken by the AE is not returned."""
    ae = uniq + ".ae"
    ch.exchange_declare(ae, "fanout")
    cleanup_exchanges.append(ae)
    qae = temp_queue(ch)
    ch.queue_bind(qae, ae, "")
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges, **{"alternate-exchange": ae})
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish(x, "k", b"bound", pika.BasicProperties(headers={"x-delay": 200}), mandatory=True)
    ch.basic_publish(x, "nope", b"unbound", pika.BasicProperties(headers={"x-delay": 200}))
    assert wait_count(ch, qae, 2, timeout=0.15) == 2
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert wait_count(ch, q, 1, timeout=0.2 + LATE_OK) == 1
    assert wait_count(ch, qae, 3, timeout=0.2) == 3
    assert (bodies(ch, qae), bodies(ch, q), returned) == ([b"bound", b"unbound", b"unbound"], [b"bound"], [])


# --------------------------------------------------------------------------- deletion
@pytest.mark.leveret_only
def test_deleting_exchange_drops_held_messages(ch, uniq, cleanup_exchanges):
    """Leveret: exchange.delete discards its held messages; a re-declared exchange of the same name
    with the same binding gets nothing. (The plugin keeps them and delivers them through a
    re-created namesake, rabbitmq-delayed-message-exchange#220.)"""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "k", b"m", delay=200)
    ch.exchange_delete(x)
    declare_delayed(ch, x)
    ch.queue_bind(q, x, "k")
    time.sleep(0.2 + 0.3)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_deleted_exchange_delivers_nothing(ch, uniq, delayed_ok):
    """Held messages of a deleted exchange reach no queue (its bindings are gone with it)."""
    x = declare_delayed(ch, uniq + ".x")
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "k", b"m", delay=150)
    ch.exchange_delete(x)
    time.sleep(0.15 + 0.25)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_delete_if_unused(ch, uniq, cleanup_exchanges, delayed_ok):
    """exchange.delete if-unused refuses while a queue is bound, as for any exchange."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete(x, if_unused=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use")


# --------------------------------------------------------------------------- restart
@pytest.mark.leveret_only
def test_held_messages_survive_restart(leveret_server, tmp_path):
    """Durable delayed exchange + durable queue: messages held across a restart are delivered at their
    due time afterwards (the one due during the downtime right after start). Like the plugin, the
    held copy is on disk whatever its delivery mode; the transient one then lands in the durable
    queue as a transient message."""
    data = str(tmp_path / "data")
    os.makedirs(data)
    s = leveret_server(data_dir=data)
    c = pika.BlockingConnection(pika.URLParameters(s.url))
    ch = c.channel()
    ch.exchange_declare("dx", DELAYED, durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("dq", durable=True)
    ch.queue_bind("dq", "dx", "k")
    t0 = time.time()
    publish(ch, "dx", "k", b"soon", delay=300, delivery_mode=2)
    publish(ch, "dx", "k", b"later", delay=4000, delivery_mode=2)
    publish(ch, "dx", "k", b"transient", delay=4000, delivery_mode=1)
    c.close()
    s.stop()
    time.sleep(0.4)                                 # "soon" falls due while the broker is down
    s2 = leveret_server(data_dir=data, port=s.port)
    c2 = pika.BlockingConnection(pika.URLParameters(s2.url))
    ch2 = c2.channel()
    assert wait_count(ch2, "dq", 1, timeout=1.0) == 1
    _m, props, body = ch2.basic_get("dq", auto_ack=True)
    assert (body, props.headers) == (b"soon", {"x-delay": 300})
    if time.time() - t0 > 4.0 - 0.2:
        pytest.fail("the restart took too long for this test's timing")
    assert ch2.queue_declare("dq", passive=True).method.message_count == 0
    assert wait_count(ch2, "dq", 2, timeout=4.0 - (time.time() - t0) + LATE_OK + 0.5) == 2
    assert time.time() - t0 >= 4.0 - EARLY_TOLERANCE
    got = [ch2.basic_get("dq", auto_ack=True) for _ in range(2)]
    assert [(b, p.delivery_mode) for _, p, b in got] == [(b"later", 2), (b"transient", 1)]
    c2.close()


@pytest.mark.leveret_only
def test_non_durable_delayed_exchange_loses_held_messages_on_restart(leveret_server, tmp_path):
    """A transient delayed exchange is gone after a restart, and so are its held messages."""
    data = str(tmp_path / "data")
    os.makedirs(data)
    s = leveret_server(data_dir=data)
    c = pika.BlockingConnection(pika.URLParameters(s.url))
    ch = c.channel()
    ch.exchange_declare("tx", DELAYED, durable=False, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("dq", durable=True)
    ch.queue_bind("dq", "tx", "k")
    publish(ch, "tx", "k", b"m", delay=300, delivery_mode=2)
    c.close()
    s.stop()
    s2 = leveret_server(data_dir=data, port=s.port)
    c2 = pika.BlockingConnection(pika.URLParameters(s2.url))
    ch2 = c2.channel()
    time.sleep(0.5)
    assert ch2.queue_declare("dq", passive=True).method.message_count == 0
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch2.exchange_declare("tx", passive=True)
    c2.close()


def test_header_bytes_containing_cc_are_still_delayed(ch, uniq, cleanup_exchanges, delayed_ok):
    """Regression: a content header whose bytes happen to contain "CC" (here a header named ACCT)
    took Leveret's sender-selected routing path, which did not hold the message (found by the
    1M-message benchmark, where some x-delay values encode as 00 00 43 43)."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    publish(ch, x, "k", b"m", delay=300, headers={"ACCT": "x"})
    time.sleep(0.1)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert wait_count(ch, q, 1, timeout=0.2 + LATE_OK) == 1


@pytest.mark.leveret_only
def test_cc_keys_route_when_released(ch, uniq, cleanup_exchanges, delayed_ok):
    """A held message with a CC header is held once and released to its routing key and CC keys."""
    x = declare_delayed(ch, uniq + ".x", cleanup_exchanges=cleanup_exchanges)
    q1, q2 = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(q1, x, "a")
    ch.queue_bind(q2, x, "b")
    publish(ch, x, "a", b"m", delay=200, headers={"CC": ["b"]})
    time.sleep(0.1)
    assert (ch.queue_declare(q1, passive=True).method.message_count,
            ch.queue_declare(q2, passive=True).method.message_count) == (0, 0)
    assert (wait_count(ch, q1, 1, timeout=0.1 + LATE_OK), wait_count(ch, q2, 1, timeout=0.2)) == (1, 1)
    assert bodies(ch, q1) == [b"m"]


@pytest.mark.leveret_only
def test_confirmed_held_messages_survive_kill_9(leveret_server, tmp_path):
    """A publisher confirm for a held message means it is on disk: after SIGKILL and a restart, every
    confirmed message is delivered once, at its time (one was due during the downtime)."""
    data = str(tmp_path / "data")
    os.makedirs(data)
    s = leveret_server(data_dir=data)
    c = pika.BlockingConnection(pika.URLParameters(s.url))
    ch = c.channel()
    ch.exchange_declare("dx", DELAYED, durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("dq", durable=True)
    ch.queue_bind("dq", "dx", "k")
    ch.confirm_delivery()
    t0 = time.time()
    publish(ch, "dx", "k", b"soon", delay=200, delivery_mode=2)          # returns once confirmed
    for i in range(50):
        publish(ch, "dx", "k", b"later-%d" % i, delay=3000, delivery_mode=2)
    s.proc.kill()
    s.proc.wait(10)
    s2 = leveret_server(data_dir=data, port=s.port)
    c2 = pika.BlockingConnection(pika.URLParameters(s2.url))
    ch2 = c2.channel()
    assert wait_count(ch2, "dq", 1, timeout=1.0) == 1
    assert bodies(ch2, "dq") == [b"soon"]
    if time.time() - t0 > 3.0 - 0.2:
        pytest.fail("the restart took too long for this test's timing")
    assert wait_count(ch2, "dq", 50, timeout=3.0 - (time.time() - t0) + LATE_OK + 0.5) == 50
    assert time.time() - t0 >= 3.0 - EARLY_TOLERANCE
    assert bodies(ch2, "dq") == [b"later-%d" % i for i in range(50)]
    c2.close()
