"""Conformance tests for queue types: ``x-queue-type`` (classic / quorum / unknown), the properties
and arguments each type refuses, quorum ``x-delivery-limit`` and the ``x-delivery-count`` header,
quorum requeue positions, and quorum ``x-overflow``.

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
"""
from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest
from pamqp import commands as C

from .helpers import (channel_error, closed_with, count, invalid_arg, publish, published, pump, raw_wait_get,
                      read_content, wait_count, wait_message)

QQ = {"x-queue-type": "quorum"}


# --------------------------------------------------------------------------- helpers

def invalid_arg_of_type(arg: str, q: str, qtype: str) -> str:
    return (f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/' "
            f"of queue type rabbit_{qtype}_queue")


def declare_error(connect, q: str, **kw) -> tuple[int, str]:
    """queue.declare on a fresh channel; it must fail. Returns (code, text)."""
    return channel_error(connect().channel().queue_declare, q, **kw)


def quorum(ch, cleanup, name: str, **args) -> str:
    cleanup.append(name)
    ch.queue_declare(name, durable=True, arguments={**QQ, **args})
    return name


def drain(ch, q: str) -> list[tuple[str, bool, int | None]]:
    """All messages by basic.get auto-ack: (body, redelivered, x-delivery-count header)."""
    out = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((body.decode(), m.redelivered, (p.headers or {}).get("x-delivery-count")))


def raw_read_message(c) -> tuple[list, bytes]:
    """After a Deliver/GetOk method frame: read header + body frames -> (typed headers, body)."""
    props, body = read_content(c)
    return props["headers"], body


# --------------------------------------------------------------------------- declare: properties

@pytest.mark.parametrize("kwargs,prop", [
    (dict(durable=False), "non-durable"),
    (dict(durable=True, exclusive=True), "exclusive-owner"),
    (dict(durable=False, exclusive=True), "exclusive-owner"),
    (dict(durable=True, auto_delete=True), "auto-delete"),
    (dict(durable=False, auto_delete=True), "auto-delete"),
    (dict(durable=True, exclusive=True, auto_delete=True), "auto-delete"),
    (dict(durable=False, exclusive=True, auto_delete=True), "auto-delete"),
], ids=["nondurable", "excl", "excl-nondurable", "autodel", "autodel-nondurable", "excl-autodel",
        "all-three"])
def test_quorum_invalid_properties_and_precedence(connect, uniq, kwargs, prop):
    """Quorum queues must be durable, non-exclusive, non-auto-delete; checked in the order
    auto-delete, exclusive-owner, non-durable (the first failing one is reported)."""
    q = uniq + ".qq"
    assert declare_error(connect, q, arguments=QQ, **kwargs) == \
        (406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'")


def test_quorum_server_named_refused(ch):
    """A quorum queue cannot be server-named."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", durable=True, arguments=QQ)
    closed_with(ei, 406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue")


@pytest.mark.parametrize("kwargs", [dict(durable=True), dict(durable=False, exclusive=True, auto_delete=True),
                                    dict(auto_delete=True)], ids=["durable", "excl-autodel", "autodel"])
def test_x_queue_type_classic_any_flags(ch, uniq, cleanup, kwargs):
    """x-queue-type=classic accepts every flag combination; the queue works."""
    q = uniq + ".c"
    if not kwargs.get("exclusive"):
        cleanup.append(q)
    ok = ch.queue_declare(q, arguments={"x-queue-type": "classic"}, **kwargs).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    publish(ch, q, "m")
    assert wait_count(ch, q, 1) == 1


def test_x_queue_type_classic_server_named(ch):
    """Classic queues can be server-named even with an explicit x-queue-type."""
    q = ch.queue_declare("", exclusive=True, arguments={"x-queue-type": "classic"}).method.queue
    assert q.startswith("amq.gen-")


# --------------------------------------------------------------------------- declare: x-queue-type values

@pytest.mark.parametrize("value,detail", [
    ("bogus", "\"unsupported queue type 'bogus'\""),
    ("", "\"unsupported queue type ''\""),
    ("Quorum", "\"unsupported queue type 'Quorum'\""),
    (5, "{unacceptable_type,signedint}"),
    (b"quorum", "{unacceptable_type,binary}"),
], ids=["bogus", "empty", "case", "int", "binary"])
@pytest.mark.parametrize("kwargs", [dict(durable=True), dict(exclusive=True)], ids=["durable", "excl"])
def test_x_queue_type_invalid(connect, uniq, value, detail, kwargs):
    """Unknown or non-string queue types are refused before any property check (case-sensitive)."""
    q = uniq + ".bad"
    assert declare_error(connect, q, arguments={"x-queue-type": value}, **kwargs) == \
        (406, invalid_arg("x-queue-type", q, detail))


# --------------------------------------------------------------------------- declare: per-type arguments

@pytest.mark.parametrize("arg,value", [
    ("x-max-priority", 5), ("x-queue-mode", "lazy"), ("x-queue-master-locator", "min-masters"),
    ("x-queue-version", 2),
])
def test_quorum_refuses_classic_only_args(connect, uniq, arg, value):
    """Arguments only classic queues know are refused by quorum queues."""
    q = uniq + ".qq"
    assert declare_error(connect, q, durable=True, arguments={**QQ, arg: value}) == \
        (406, invalid_arg_of_type(arg, q, "quorum"))


def test_quorum_unsupported_arg_value_not_validated(connect, uniq):
    """An argument the type does not support is refused by name; its (invalid) value is not looked at."""
    q = uniq + ".qq"
    assert declare_error(connect, q, durable=True, arguments={**QQ, "x-max-priority": "zz"}) == \
        (406, invalid_arg_of_type("x-max-priority", q, "quorum"))


@pytest.mark.parametrize("order", [("x-max-priority", "x-queue-mode"), ("x-queue-mode", "x-max-priority")])
def test_quorum_first_unsupported_arg_in_table_order(connect, uniq, order):
    """With several unsupported arguments, the first one in the table's wire order is reported."""
    q = uniq + ".qq"
    values = {"x-max-priority": 2, "x-queue-mode": "lazy"}
    args = {**QQ, **{k: values[k] for k in order}}
    assert declare_error(connect, q, durable=True, arguments=args) == \
        (406, invalid_arg_of_type(order[0], q, "quorum"))


def test_argument_check_precedes_property_check(connect, uniq):
    """A non-durable quorum queue with an unsupported argument reports the argument."""
    q = uniq + ".qq"
    assert declare_error(connect, q, durable=False, arguments={**QQ, "x-max-priority": 3}) == \
        (406, invalid_arg_of_type("x-max-priority", q, "quorum"))


def test_bad_arg_value_precedes_property_check(connect, uniq):
    """A supported argument with a bad value is reported before the quorum property checks."""
    q = uniq + ".qq"
    assert declare_error(connect, q, durable=False, arguments={**QQ, "x-max-length": "a"}) == \
        (406, invalid_arg("x-max-length", q, '"expected integer, got longstr"'))


@pytest.mark.parametrize("arg,value", [
    ("x-delivery-limit", 2), ("x-quorum-initial-group-size", 1), ("x-dead-letter-strategy", "at-least-once"),
    ("x-max-in-memory-length", 2), ("x-max-in-memory-bytes", 2), ("x-queue-leader-locator", "client-local"),
])
@pytest.mark.parametrize("explicit", [False, True], ids=["implicit", "explicit"])
def test_classic_refuses_quorum_only_args(connect, uniq, arg, value, explicit):
    """Arguments only quorum queues know are refused by classic queues (default type or explicit)."""
    q = uniq + ".c"
    args = {"x-queue-type": "classic"} if explicit else {}
    assert declare_error(connect, q, durable=True, arguments={**args, arg: value}) == \
        (406, invalid_arg_of_type(arg, q, "classic"))


def test_quorum_accepts_its_arguments(ch, uniq, cleanup):
    """Every argument quorum queues support, plus an unknown x- argument, declare fine together."""
    sink = quorum(ch, cleanup, uniq + ".dlq")
    q = quorum(ch, cleanup, uniq + ".qq", **{
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink,
        "x-dead-letter-strategy": "at-most-once", "x-expires": 600000, "x-max-length": 10,
        "x-max-length-bytes": 100000, "x-max-in-memory-length": 5, "x-max-in-memory-bytes": 50000,
        "x-overflow": "drop-head", "x-single-active-consumer": False, "x-quorum-initial-group-size": 1,
        "x-delivery-limit": 3, "x-message-ttl": 600000, "x-queue-leader-locator": "client-local",
        "x-foo": "bar"})
    publish(ch, q, "m")
    assert wait_count(ch, q, 1) == 1


# --------------------------------------------------------------------------- equivalence

@pytest.mark.parametrize("first,second", [({}, {"x-queue-type": "classic"}), ({"x-queue-type": "classic"}, {})],
                         ids=["implicit-then-explicit", "explicit-then-implicit"])
def test_classic_explicit_and_implicit_equivalent(ch, uniq, cleanup, first, second):
    """A classic queue declared without x-queue-type is equivalent to x-queue-type=classic."""
    q = uniq + ".c"
    cleanup.append(q)
    ch.queue_declare(q, durable=True, arguments=first)
    assert ch.queue_declare(q, durable=True, arguments=second).method.queue == q


@pytest.mark.parametrize("first,second,detail", [
    (QQ, {"x-queue-type": "classic"}, "inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
                                      "received 'classic' but current is 'quorum'"),
    ({"x-queue-type": "classic"}, QQ, "inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
                                      "received 'quorum' but current is 'classic'"),
    ({}, QQ, "inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
             "received the value 'quorum' of type 'longstr' but current is none"),
    (QQ, {**QQ, "x-delivery-limit": 3}, "inequivalent arg 'x-delivery-limit' for queue '{q}' in vhost '/': "
                                        "received the value '3' of type 'signedint' but current is none"),
], ids=["quorum-classic", "classic-quorum", "implicit-classic-quorum", "delivery-limit-added"])
def test_queue_type_inequivalent(connect, uniq, cleanup, first, second, detail):
    """Changing the type (or a quorum argument) on redeclare is a 406."""
    q = uniq + ".q"
    cleanup.append(q)
    connect().channel().queue_declare(q, durable=True, arguments=first)
    assert declare_error(connect, q, durable=True, arguments=second) == \
        (406, "PRECONDITION_FAILED - " + detail.format(q=q))


@pytest.mark.parametrize("first,second,arg,detail", [
    # quorum order: dead-letter arguments first, ..., x-delivery-limit, then x-message-ttl
    ({**QQ, "x-message-ttl": 1000, "x-delivery-limit": 2}, {**QQ, "x-message-ttl": 2000, "x-delivery-limit": 3},
     "x-delivery-limit", "received '3' but current is '2'"),
    ({**QQ, "x-expires": 100000, "x-dead-letter-exchange": "a"},
     {**QQ, "x-expires": 200000, "x-dead-letter-exchange": "b"},
     "x-dead-letter-exchange", "received 'b' but current is 'a'"),
    ({**QQ, "x-overflow": "reject-publish", "x-single-active-consumer": True},
     {**QQ, "x-overflow": "drop-head", "x-single-active-consumer": False},
     "x-overflow", "received 'drop-head' but current is 'reject-publish'"),
    ({**QQ, "x-single-active-consumer": True}, {"x-queue-type": "classic", "x-single-active-consumer": False},
     "x-single-active-consumer", "received 'false' but current is 'true'"),
    ({**QQ, "x-delivery-limit": 1}, {"x-delivery-limit": 2},
     "x-queue-type", "received none but current is the value 'quorum' of type 'longstr'"),
    # quorum-only arguments take part in a quorum queue's equivalence
    ({**QQ, "x-dead-letter-strategy": "at-most-once"}, QQ,
     "x-dead-letter-strategy", "received none but current is the value 'at-most-once' of type 'longstr'"),
    ({**QQ, "x-max-in-memory-length": 3}, QQ,
     "x-max-in-memory-length", "received none but current is the value '3' of type 'signedint'"),
    ({**QQ, "x-quorum-initial-group-size": 1}, QQ,
     "x-quorum-initial-group-size", "received none but current is the value '1' of type 'signedint'"),
    ({**QQ, "x-queue-leader-locator": "client-local", "x-message-ttl": 5}, {**QQ, "x-message-ttl": 6},
     "x-message-ttl", "received '6' but current is '5'"),
    ({**QQ, "x-queue-leader-locator": "client-local"}, QQ,
     "x-queue-leader-locator", "received none but current is the value 'client-local' of type 'longstr'"),
    # classic order: x-expires first, x-queue-version before x-single-active-consumer
    ({"x-expires": 100000, "x-dead-letter-exchange": "a"}, {"x-expires": 200000, "x-dead-letter-exchange": "b"},
     "x-expires", "received '200000' but current is '100000'"),
    ({"x-single-active-consumer": True, "x-queue-version": 1}, {"x-single-active-consumer": False, "x-queue-version": 2},
     "x-queue-version", "received '2' but current is '1'"),
    ({"x-queue-master-locator": "min-masters", "x-queue-type": "classic"},
     {"x-queue-master-locator": "client-local", "x-queue-type": "quorum"},
     "x-queue-type", "received 'quorum' but current is 'classic'"),
], ids=["qq-delivery-limit-before-ttl", "qq-dlx-before-expires", "qq-overflow-before-sac", "qq-sac-before-type",
        "qq-type-before-delivery-limit", "qq-dl-strategy", "qq-in-memory-length", "qq-initial-group-size",
        "qq-ttl", "qq-leader-locator", "classic-expires-before-dlx", "classic-version-before-sac",
        "classic-type-before-locator"])
def test_equivalence_follows_the_existing_queues_type(connect, uniq, cleanup, first, second, arg, detail):
    """A redeclare compares the arguments of the EXISTING queue's type (RabbitMQ's queue_arguments list of
    that type), in that list's order: the first difference in that order is the one reported."""
    q = uniq + ".q"
    cleanup.append(q)
    connect().channel().queue_declare(q, durable=True, arguments=first)
    assert declare_error(connect, q, durable=True, arguments=second) == \
        (406, f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{q}' in vhost '/': {detail}")


@pytest.mark.parametrize("first,second", [
    (QQ, {**QQ, "x-max-priority": 5, "x-queue-mode": "lazy", "x-queue-version": 2,
          "x-queue-master-locator": "min-masters", "x-consumer-timeout": 5}),
    ({}, {"x-delivery-limit": 3, "x-max-in-memory-length": 3, "x-max-in-memory-bytes": 3,
          "x-dead-letter-strategy": "at-least-once", "x-quorum-initial-group-size": 3,
          "x-queue-leader-locator": "balanced", "x-consumer-timeout": 5}),
    ({"x-max-in-memory-length": 1, "x-foo": 1} | QQ, {**QQ, "x-max-in-memory-length": 1, "x-foo": 2}),
], ids=["quorum", "classic", "unknown"])
def test_redeclare_ignores_arguments_outside_the_types_list(ch, uniq, cleanup, first, second):
    """Arguments outside the existing queue's type's list are ignored on redeclare, even those the type
    would refuse on a new queue (a redeclare is not validated)."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, durable=True, arguments=first)
    assert ch.queue_declare(q, durable=True, arguments=second).method.queue == q


def test_quorum_redeclare_non_durable_inequivalent(connect, ch, uniq, cleanup):
    """Redeclaring an existing quorum queue as non-durable hits the durable equivalence check first."""
    q = quorum(ch, cleanup, uniq + ".qq")
    assert declare_error(connect, q, durable=False, arguments=QQ) == \
        (406, f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
              "received 'false' but current is 'true'")


# --------------------------------------------------------------------------- queue.delete flags

@pytest.mark.parametrize("flags,flag", [
    (dict(if_unused=True), "if-unused"), (dict(if_empty=True), "if-empty"),
    (dict(if_unused=True, if_empty=True), "if-unused"),
], ids=["if-unused", "if-empty", "both"])
@pytest.mark.parametrize("busy", [False, True], ids=["idle-empty", "consumer-and-message"])
def test_quorum_delete_with_flags_not_implemented(rawc, ch, uniq, cleanup, flags, flag, busy):
    """queue.delete of a quorum queue with if-unused or if-empty set closes the CONNECTION with 540
    NOT_IMPLEMENTED (class 50, method 40), whether or not the queue is in use or empty; if-unused is
    reported when both are set. The queue is not deleted."""
    q = quorum(ch, cleanup, uniq + ".qq")
    if busy:
        publish(ch, q, "m")
        ch.basic_consume(q, lambda *a: None)
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Queue.Delete(queue=q, **flags))
    close = c.expect(C.Connection.Close, 0)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        540, f"NOT_IMPLEMENTED - cannot delete queue '{q}' in vhost '/'. queue.delete operations with "
             f"{flag} flag set are not supported by quorum queues", 50, 40)
    assert ch.queue_declare(q, passive=True).method.queue == q


@pytest.mark.parametrize("flags,text", [(dict(if_unused=True), "in use"), (dict(if_empty=True), "not empty")],
                         ids=["if-unused", "if-empty"])
def test_classic_delete_with_flags(connect, ch, uniq, cleanup, flags, text):
    """The same flags on a classic queue: 406 (channel) while in use / not empty, delete-ok otherwise."""
    q = uniq + ".c"
    cleanup.append(q)
    ch.queue_declare(q, durable=True)
    assert ch.queue_delete(q, **flags).method.message_count == 0
    ch.queue_declare(q, durable=True)
    if "if_unused" in flags:
        ch.basic_consume(q, lambda *a: None, auto_ack=False)
    else:
        publish(ch, q, "m")
        assert wait_count(ch, q, 1) == 1
    assert channel_error(connect().channel().queue_delete, q, **flags) == \
        (406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' {text}")


# --------------------------------------------------------------------------- x-delivery-limit

@pytest.mark.parametrize("limit", [0, 1, 2])
def test_delivery_limit_dead_letters_after_limit_plus_one_deliveries(ch, uniq, cleanup, limit):
    """x-delivery-limit N allows N+1 deliveries; the (N+1)th requeue dead-letters the message with
    reason delivery_limit. x-delivery-count on basic.get runs 0..N; the dead-lettered copy carries
    no x-delivery-count (read here from a classic queue, which adds none)."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue   # classic: adds no header
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-delivery-limit": limit, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"a": 1}))
    seen = []
    for _ in range(limit + 1):
        m, p, _ = wait_message(ch, q, auto_ack=False)
        seen.append((m.redelivered, p.headers))
        ch.basic_reject(m.delivery_tag, requeue=True)
    assert seen == [(i > 0, {"x-delivery-count": i, "a": 1}) for i in range(limit + 1)]
    m, p, body = wait_message(ch, sink)
    assert body == b"m"
    assert ch.basic_get(q)[0] is None
    assert "x-delivery-count" not in p.headers
    assert p.headers["a"] == 1
    (death,) = p.headers["x-death"]
    assert (death["count"], death["reason"], death["queue"], death["exchange"], death["routing-keys"]) == \
        (1, "delivery_limit", q, "", [q])
    assert (p.headers["x-first-death-reason"], p.headers["x-first-death-queue"],
            p.headers["x-first-death-exchange"]) == ("delivery_limit", q, "")


@pytest.mark.parametrize("path,reason", [
    ("get-nack", "rejected"), ("get-requeue-get-nack", "rejected"), ("consumer-redelivered-reject", "rejected"),
    ("requeue-then-maxlen", "maxlen"), ("requeue-then-maxlen-with-limit", "maxlen"), ("requeue-then-expired", "expired"),
])
def test_quorum_dead_letters_carry_no_delivery_count(conn, ch, uniq, cleanup, path, reason):
    """A quorum queue dead-letters the message as it keeps it: whatever the reason, and however often
    it was delivered with x-delivery-count before, the dead-lettered copy has no x-delivery-count (its
    own headers are kept)."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue   # classic: adds no header
    args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink}
    if "maxlen" in path:
        args["x-max-length"] = 1
    if path.endswith("with-limit"):
        args["x-delivery-limit"] = 5
    if path.endswith("expired"):
        args["x-message-ttl"] = 200
    q = quorum(ch, cleanup, uniq + ".qq", **args)
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"z": 1, "a": "b"}))
    assert wait_count(ch, q, 1) == 1
    if path == "consumer-redelivered-reject":
        got = []
        k = conn.channel()
        k.basic_consume(q, lambda _c, m, p, _b: got.append((m, p)))
        pump(conn, lambda: got)
        k.basic_reject(got[0][0].delivery_tag, requeue=True)
        pump(conn, lambda: len(got) == 2)
        assert got[1][1].headers["x-delivery-count"] == 1
        k.basic_reject(got[1][0].delivery_tag, requeue=False)
    else:
        m, p, _ = wait_message(ch, q, auto_ack=False)
        assert p.headers["x-delivery-count"] == 0
        if path.startswith("get-nack"):
            ch.basic_nack(m.delivery_tag, requeue=False)
        else:
            if path.endswith("expired"):
                time.sleep(0.3)
            ch.basic_reject(m.delivery_tag, requeue=True)
            if path == "get-requeue-get-nack":
                m, p, _ = wait_message(ch, q, auto_ack=False)
                assert p.headers["x-delivery-count"] == 1
                ch.basic_nack(m.delivery_tag, requeue=False)
            elif "maxlen" in path:
                assert wait_count(ch, q, 1) == 1
                publish(ch, q, "n", "o")
    _, p, body = wait_message(ch, sink)
    assert (body, p.headers["x-death"][0]["reason"]) == (b"m", reason)
    assert "x-delivery-count" not in p.headers
    assert (p.headers["z"], p.headers["a"]) == (1, "b")


def test_delivery_limit_without_dlx_drops(ch, uniq, cleanup):
    """Without a dead-letter exchange the message is simply dropped after limit+1 deliveries."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-delivery-limit": 1})
    publish(ch, q, "m", "n")
    counts = []
    for _ in range(2):
        m, p, body = wait_message(ch, q, auto_ack=False)
        counts.append((body, p.headers["x-delivery-count"]))
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert counts == [(b"m", 0), (b"m", 1)]
    assert wait_count(ch, q, 1) == 1
    assert drain(ch, q) == [("n", False, 0)]


def test_delivery_limit_with_consumer_nack(conn, ch, uniq, cleanup):
    """Consumer path: the first delivery carries no x-delivery-count; requeued ones carry 1..N;
    after N+1 deliveries the message is dead-lettered."""
    sink = quorum(ch, cleanup, uniq + ".dlq")
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-delivery-limit": 2, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    publish(ch, q, "m")
    seen = []

    def on_msg(c, m, p, body):
        seen.append((m.redelivered, p.headers))
        c.basic_nack(m.delivery_tag, requeue=True)

    cch = conn.channel()
    cch.basic_consume(q, on_msg)
    pump(conn, lambda: count(ch, sink) > 0, timeout=2)
    assert seen == [(False, None), (True, {"x-delivery-count": 1}), (True, {"x-delivery-count": 2})]
    _m, p, _ = wait_message(ch, sink)
    assert p.headers["x-first-death-reason"] == "delivery_limit"


def test_delivery_limit_counts_channel_close_returns(connect, ch, uniq, cleanup):
    """Messages returned because their channel closed count as deliveries too."""
    sink = quorum(ch, cleanup, uniq + ".dlq")
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-delivery-limit": 1, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    publish(ch, q, "m")
    for expected in (0, 1):
        other = connect().channel()
        _, p, _ = wait_message(other, q, auto_ack=False)
        assert p.headers["x-delivery-count"] == expected
        other.close()
    _m, p, body = wait_message(ch, sink)
    assert (body, p.headers["x-first-death-reason"]) == (b"m", "delivery_limit")
    assert ch.basic_get(q)[0] is None


# --------------------------------------------------------------------------- x-delivery-count

def test_x_delivery_count_consumer_absent_then_counts(conn, ch, uniq, cleanup):
    """Quorum queue without a delivery limit: deliveries to a consumer carry no x-delivery-count
    (and redelivered=false) until the message was returned once; then 1, 2, ... (no dead-lettering)."""
    q = quorum(ch, cleanup, uniq + ".qq")
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"z": "y"}))
    ch.basic_publish("", q, b"n")
    seen = []

    def on_msg(c, m, p, body):
        seen.append((body.decode(), m.redelivered, p.headers))
        if len(seen) <= 4:
            c.basic_nack(m.delivery_tag, requeue=True)
        else:
            c.basic_ack(m.delivery_tag)

    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    cch.basic_consume(q, on_msg)
    pump(conn, lambda: len(seen) >= 6, timeout=2)
    # Without a delivery limit a requeued message goes to the back of the queue, so m and n alternate.
    assert seen == [("m", False, {"z": "y"}), ("n", False, None),
                    ("m", True, {"x-delivery-count": 1, "z": "y"}), ("n", True, {"x-delivery-count": 1}),
                    ("m", True, {"x-delivery-count": 2, "z": "y"}), ("n", True, {"x-delivery-count": 2})]


def test_x_delivery_count_basic_get_always_present(ch, uniq, cleanup):
    """basic.get from a quorum queue always carries x-delivery-count, 0 on the first delivery."""
    q = quorum(ch, cleanup, uniq + ".qq")
    ch.basic_publish("", q, b"m")
    ch.basic_publish("", q, b"n", pika.BasicProperties(headers={"h": "v"}))
    m, p, _ = wait_message(ch, q, auto_ack=False)
    assert (m.redelivered, p.headers) == (False, {"x-delivery-count": 0})
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, p, body = wait_message(ch, q)
    assert (body, m.redelivered, p.headers) == (b"n", False, {"x-delivery-count": 0, "h": "v"})
    m, p, body = wait_message(ch, q)
    assert (body, m.redelivered, p.headers) == (b"m", True, {"x-delivery-count": 1})


def test_x_delivery_count_wire_type_and_table_order(rawc, ch, uniq, cleanup):
    """x-delivery-count is a long-long ('l'). Whenever RabbitMQ adds it, the whole headers table is
    re-sorted bytewise by key; a first consumer delivery (no header added) keeps the publisher's order."""
    q = quorum(ch, cleanup, uniq + ".qq")
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"z": "y", "c": 1, "a": "b"}))
    assert wait_count(ch, q, 1) == 1
    published = [("z", "S", b"y"), ("c", "I", 1), ("a", "S", b"b")]

    def with_count(n):
        return [("a", "S", b"b"), ("c", "I", 1), ("x-delivery-count", "l", n), ("z", "S", b"y")]

    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Basic.Consume(queue=q, consumer_tag="t"))
    c.expect(C.Basic.ConsumeOk, 1)
    d1 = c.expect(C.Basic.Deliver, 1)
    assert d1.redelivered is False
    assert raw_read_message(c) == (published, b"m")
    c.send_method(1, C.Basic.Reject(delivery_tag=d1.delivery_tag, requeue=True))
    d2 = c.expect(C.Basic.Deliver, 1)
    assert d2.redelivered is True
    assert raw_read_message(c) == (with_count(1), b"m")
    c.send_method(1, C.Basic.Cancel(consumer_tag="t"))
    c.expect(C.Basic.CancelOk, 1)
    c.send_method(1, C.Basic.Reject(delivery_tag=d2.delivery_tag, requeue=True))
    reply = raw_wait_get(c, 1, q)
    assert reply.redelivered is True
    assert raw_read_message(c) == (with_count(2), b"m")


def test_x_delivery_count_basic_get_sorts_headers(rawc, ch, uniq, cleanup):
    """basic.get adds x-delivery-count 0 to a never-returned message, so its headers come sorted."""
    q = quorum(ch, cleanup, uniq + ".qq")
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"zz": 1, "b": "x", "y": "v"}))
    assert wait_count(ch, q, 1) == 1
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Basic.Get(queue=q, no_ack=True))
    assert c.expect(C.Basic.GetOk, 1).redelivered is False
    assert raw_read_message(c) == ([("b", "S", b"x"), ("x-delivery-count", "l", 0), ("y", "S", b"v"),
                                    ("zz", "I", 1)], b"m")


def test_classic_queue_has_no_x_delivery_count(ch):
    """Classic queues never add x-delivery-count, not even on redelivery."""
    q = ch.queue_declare("", exclusive=True).method.queue
    publish(ch, q, "m")
    m, p, _ = wait_message(ch, q, auto_ack=False)
    assert p.headers is None
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, p, _ = wait_message(ch, q)
    assert (m.redelivered, p.headers) == (True, None)


# --------------------------------------------------------------------------- quorum requeue position

@pytest.mark.parametrize("how", ["reject", "nack-multiple", "recover"])
@pytest.mark.parametrize("limited", [False, True], ids=["no-limit", "delivery-limit"])
def test_quorum_requeue_position(ch, uniq, cleanup, how, limited):
    """RabbitMQ 3.10 quorum queues: an explicit requeue (reject/nack/recover) puts messages at the
    BACK of the queue when no x-delivery-limit is set, and back at the FRONT when one is set."""
    args = {"x-delivery-limit": 5} if limited else {}
    q = quorum(ch, cleanup, uniq + ".qq", **args)
    publish(ch, q, "a", "b", "c")
    assert wait_count(ch, q, 3) == 3
    m1, _, _ = ch.basic_get(q)
    m2, _, _ = ch.basic_get(q)
    if how == "reject":
        ch.basic_reject(m2.delivery_tag, requeue=True)
        ch.basic_reject(m1.delivery_tag, requeue=True)
    elif how == "nack-multiple":
        ch.basic_nack(m2.delivery_tag, multiple=True, requeue=True)
    else:
        ch.basic_recover(requeue=True)
    assert wait_count(ch, q, 3) == 3
    got = drain(ch, q)
    if how == "reject":
        returned = [("b", True, 1), ("a", True, 1)]   # in the order they were rejected
    else:
        returned = [("a", True, 1), ("b", True, 1)]
    if limited:
        assert got == returned + [("c", False, 0)]
    else:
        assert got == [("c", False, 0)] + returned


@pytest.mark.parametrize("limited", [False, True], ids=["no-limit", "delivery-limit"])
def test_quorum_channel_close_returns_to_front(connect, ch, uniq, cleanup, limited):
    """Messages returned because their channel closed go back to the FRONT in either case."""
    args = {"x-delivery-limit": 5} if limited else {}
    q = quorum(ch, cleanup, uniq + ".qq", **args)
    publish(ch, q, "a", "b", "c")
    assert wait_count(ch, q, 3) == 3
    other = connect().channel()
    assert other.basic_get(q)[2] == b"a"
    other.close()
    assert wait_count(ch, q, 3) == 3
    assert drain(ch, q) == [("a", True, 1), ("b", False, 0), ("c", False, 0)]


@pytest.mark.parametrize("how", ["reject", "recover"])
def test_quorum_channel_close_return_goes_ahead_of_a_requeued_message(connect, ch, uniq, cleanup, how):
    """A message explicitly requeued without a delivery limit is a fresh entry at the back, not a
    return: a message a closed channel returns afterwards goes into rabbit_fifo's returns and is
    served before it (found by the lifecycle differential test, seed 10193)."""
    q = quorum(ch, cleanup, uniq + ".qq")
    publish(ch, q, "a", "b")
    assert wait_count(ch, q, 2) == 2
    m, _, _ = ch.basic_get(q)                 # a
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=True)
    else:
        ch.basic_recover(requeue=True)
    assert wait_count(ch, q, 2) == 2          # b, a
    other = connect().channel()
    assert other.basic_get(q)[2] == b"b"
    other.close()
    assert wait_count(ch, q, 2) == 2
    assert drain(ch, q) == [("b", True, 1), ("a", True, 1)]


# --------------------------------------------------------------------------- quorum x-overflow

@pytest.mark.parametrize("max_length", [1, 2, 5])
def test_quorum_reject_publish_admits_one_over_the_limit(conn, ch, uniq, cleanup, max_length):
    """Quorum reject-publish (3.10): a publish is refused only once the queue already holds MORE
    than x-max-length ready messages, so the queue fills to max+1; further confirmed publishes
    are nacked. A fresh channel's first publish is nacked too."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": max_length, "x-overflow": "reject-publish"})
    pub = conn.channel()
    pub.confirm_delivery()
    results = [published(pub, q, str(i)) for i in range(max_length + 3)]
    assert results == [True] * (max_length + 1) + [False, False]
    assert ch.queue_declare(q, passive=True).method.message_count == max_length + 1
    fresh = conn.channel()
    fresh.confirm_delivery()
    assert published(fresh, q, "x") is False
    assert [b for b, _, _ in drain(ch, q)] == [str(i) for i in range(max_length + 1)]


def test_quorum_reject_publish_unblocks_at_80_percent(conn, ch, uniq, cleanup):
    """Once refusing, a publisher stays refused until the ready count drops to 80% of the limit
    (trunc(0.8 * max)); being merely at or below the limit is not enough."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 5, "x-overflow": "reject-publish"})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, str(i)) for i in range(7)] == [True] * 6 + [False]
    assert ch.basic_get(q, auto_ack=True)[0] is not None      # 5 ready: == max, still blocked
    time.sleep(0.1)
    assert published(pub, q, "x") is False
    assert ch.basic_get(q, auto_ack=True)[0] is not None      # 4 ready: <= trunc(0.8 * 5)
    deadline = time.monotonic() + 2
    while not published(pub, q, "y"):                         # the unblock reaches the channel async
        assert time.monotonic() < deadline, "publisher never unblocked"
        time.sleep(0.02)
    assert ch.queue_declare(q, passive=True).method.message_count == 5


def test_quorum_reject_publish_dlx_acts_as_drop_head(conn, ch, uniq, cleanup):
    """x-overflow=reject-publish-dlx is accepted by a 3.10 quorum queue but it behaves as drop-head:
    publishes are confirmed and the oldest messages are dropped."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, b) for b in "abc"] == [True, True, True]
    assert wait_count(ch, q, 1) == 1
    assert drain(ch, q) == [("c", False, 0)]


def test_quorum_limits_count_ready_messages_only(conn, ch, uniq, cleanup):
    """A quorum queue's limits count ready messages: an unacked message does not count, so with
    one out the queue still fills to max + 1 ready messages before refusing."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, b) for b in "ab"] == [True, True]
    assert wait_message(ch, q, auto_ack=False)[2] == b"a"
    assert [published(pub, q, b) for b in "cde"] == [True, True, False]
    assert wait_count(ch, q, 3) == 3


@pytest.mark.parametrize("how", ["reject", "nack"])
def test_quorum_drop_head_trims_right_after_a_requeue(conn, ch, uniq, cleanup, how):
    """drop-head: a requeue that takes the queue over the limit drops from the head at once (here an
    explicit requeue without a delivery limit puts the message at the back, so a newer one goes)."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 2})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, b) for b in "ab"] == [True, True]
    m = wait_message(ch, q, auto_ack=False)[0]
    assert [published(pub, q, b) for b in "cde"] == [True] * 3
    assert wait_count(ch, q, 2) == 2
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=True)
    else:
        ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.1)
    assert drain(ch, q) == [("e", False, 0), ("a", True, 1)]


def test_quorum_returned_messages_go_to_consumers_before_the_limit_trims(connect, conn, ch, uniq, cleanup):
    """When several messages come back at once (their channel closed), a quorum queue first serves the
    consumers that can take them, then drops from the head what is still over the limit
    (rabbit_fifo: checkout, then evaluate_limit). A classic queue would trim first."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 1, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    other = connect()
    x = other.channel()
    held = []
    x.basic_consume(q, lambda _c, m, _p, b: held.append(b))
    pub = conn.channel()
    pub.confirm_delivery()
    for b in "012":
        assert published(pub, q, b)
        pump(other, lambda: len(held) == int(b) + 1)
    assert held == [b"0", b"1", b"2"]
    got = []
    y = conn.channel()
    y.basic_qos(prefetch_count=1)
    y.basic_consume(q, lambda _c, m, p, b: got.append((b, m.redelivered, p.headers)))
    other.close()
    pump(conn, lambda: got)
    assert got == [(b"0", True, {"x-delivery-count": 1})]
    _, p, body = wait_message(ch, sink)
    assert (body, p.headers["x-death"][0]["reason"]) == (b"1", "maxlen")
    assert [b for b, _, _ in drain(ch, q)] == ["2"]


def test_quorum_reject_publish_stops_publishers_when_a_requeue_goes_over(conn, ch, uniq, cleanup):
    """reject-publish: the queue tells its publishing channels to stop as soon as anything takes it
    over the limit, a requeue too, and they stay stopped until it is back at 80%. Each channel has
    its own status: a channel whose first publish comes while the queue is not over is accepted."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, b) for b in "ab"] == [True, True]
    m = wait_message(ch, q, auto_ack=False)[0]
    assert published(pub, q, "c")
    ch.basic_reject(m.delivery_tag, requeue=True)            # 3 ready: over the limit
    assert wait_count(ch, q, 3) == 3
    assert wait_message(ch, q)[2] == b"b"                      # 2 ready: at the limit, not below 80%
    time.sleep(0.05)
    assert published(pub, q, "d") is False
    fresh = conn.channel()
    fresh.confirm_delivery()
    assert published(fresh, q, "e") is True
    assert published(fresh, q, "f") is False
    assert wait_count(ch, q, 3) == 3


def test_quorum_reject_publish_never_refuses_dead_letters(conn, ch, uniq, cleanup):
    """Dead-lettered messages reach a full reject-publish quorum queue all the same (the dead-letter
    publish is untracked), and they stop its publishers."""
    target = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    src = ch.queue_declare(uniq + ".src", exclusive=True,
                           arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": target}).method.queue
    pub = conn.channel()
    pub.confirm_delivery()
    assert published(pub, target, "t0")
    publish(ch, src, *"0123")
    assert wait_count(ch, src, 4) == 4
    for _ in range(4):
        m = wait_message(ch, src, auto_ack=False)[0]
        ch.basic_reject(m.delivery_tag, requeue=False)
    assert wait_count(ch, target, 5) == 5
    time.sleep(0.05)
    assert published(pub, target, "t1") is False
    assert [b for b, _, _ in drain(ch, target)] == ["t0", "0", "1", "2", "3"]


def test_quorum_drop_head_keeps_exact_limit(conn, ch, uniq, cleanup):
    """x-overflow=drop-head (the default) on a quorum queue keeps exactly x-max-length messages."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 2})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, b) for b in "abcd"] == [True] * 4
    assert wait_count(ch, q, 2) == 2
    assert [b for b, _, _ in drain(ch, q)] == ["c", "d"]


def test_quorum_drop_head_dead_letters_the_last_dropped_first(conn, ch, uniq, cleanup):
    """When one publish makes a quorum queue drop several messages (here a byte limit), their
    dead-lettered copies reach the target newest first: rabbit_fifo's drop_head prepends each
    drop's dead-letter effect to the command's effects (lifecycle seed 10335)."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length-bytes": 20, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    pub = conn.channel()
    pub.confirm_delivery()
    assert [published(pub, q, b) for b in ("a", "bbbbbb", "ccccccccc", "dddddd")] == [True] * 4
    assert wait_count(ch, sink, 2) == 2
    assert [b for b, _, _ in drain(ch, sink)] == ["bbbbbb", "a"]
    assert [b for b, _, _ in drain(ch, q)] == ["ccccccccc", "dddddd"]


@pytest.mark.parametrize("how", ["recover", "nack"])
def test_quorum_requeue_without_delivery_limit_applies_one_message_at_a_time(conn, ch, uniq, cleanup, how):
    """A quorum queue without a delivery limit requeues what one settlement returns one message
    at a time: rabbit_fifo's leader turns the return into one ``requeue`` command per message (in
    message-id order, make_requeue), each to the back of the queue and each followed by its own
    checkout and length-limit check. So with ``x-max-length`` 1 the limit drops the message that
    was ready first, then the first message returned, and they are dead-lettered in that order
    (one command's drops would come newest first); the last one returned stays (lifecycle seed
    23247)."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 1, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    pub = conn.channel()
    pub.confirm_delivery()
    x = conn.channel()
    x.basic_qos(prefetch_count=3)
    got = []
    tag = x.basic_consume(q, lambda _c, m, _p, b: got.append((b, m.delivery_tag)))
    for b in ("a", "b"):
        assert published(pub, q, b)
    pump(conn, lambda: len(got) == 2)
    assert [b for b, _ in got] == [b"a", b"b"]
    x.basic_cancel(tag)                                     # a, b stay unacked
    assert published(pub, q, "c")                           # ready: c
    if how == "recover":
        x.basic_recover(requeue=True)
    else:
        x.basic_nack(got[-1][1], multiple=True, requeue=True)
    assert wait_count(ch, sink, 2) == 2
    assert [b for b, _, _ in drain(ch, sink)] == ["c", "a"]
    assert drain(ch, q) == [("b", True, 1)]


def test_quorum_requeue_drops_dead_letter_before_its_delivery_limit_ones(connect, conn, ch, uniq, cleanup):
    """One return (a consumer's channel closing) that both takes a quorum queue past its delivery
    limit and over its length limit: the messages the limit drops are dead-lettered first (newest
    first), then those past the delivery limit (rabbit_fifo: the return's effects, then
    evaluate_limit's prepended ahead of them)."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-max-length": 1, "x-delivery-limit": 1,
                                             "x-dead-letter-exchange": "", "x-dead-letter-routing-key": sink})
    pub = conn.channel()
    pub.confirm_delivery()
    assert published(pub, q, "a")
    other = connect()
    x = other.channel()
    m = wait_message(x, q, auto_ack=False)[0]
    x.basic_reject(m.delivery_tag, requeue=True)            # a: returned once
    assert wait_count(ch, q, 1) == 1
    held = [wait_message(x, q, auto_ack=False)[2]]           # a, to go past its limit
    for b in ("b", "c"):
        assert published(pub, q, b)
        held.append(wait_message(x, q, auto_ack=False)[2])
    assert held == [b"a", b"b", b"c"]
    other.close()                                           # a past its limit; b, c back: one over
    assert wait_count(ch, sink, 2) == 2
    got = []
    for _ in range(2):
        _, p, body = wait_message(ch, sink)
        got.append((body.decode(), p.headers["x-death"][0]["reason"]))
    assert got == [("b", "maxlen"), ("a", "delivery_limit")]
    assert drain(ch, q) == [("c", True, 1)]


def test_quorum_return_dead_letters_past_the_delivery_limit_before_the_expired(conn, ch, uniq, cleanup):
    """One return (a nack of two messages) where one message goes past the delivery limit and the
    other has expired meanwhile: the first is dead-lettered first (rabbit_fifo: return_one
    discards it, then the checkout expires the other at the head)."""
    sink = ch.queue_declare(uniq + ".dlq", exclusive=True).method.queue
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-delivery-limit": 1, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": sink})
    pub = conn.channel()
    pub.confirm_delivery()
    assert published(pub, q, "a")
    m = wait_message(ch, q, auto_ack=False)[0]
    ch.basic_nack(m.delivery_tag, requeue=True)              # a: returned once
    assert published(pub, q, "b", pika.BasicProperties(expiration="50"))
    c = conn.channel()
    got = []
    c.basic_consume(q, lambda _c, m, _p, b: got.append((b, m.delivery_tag)))
    pump(conn, lambda: len(got) == 2)
    assert [b for b, _ in got] == [b"a", b"b"]
    time.sleep(0.1)                                         # b's 50 ms pass while it is out
    c.basic_nack(got[-1][1], multiple=True, requeue=True)
    reasons = []
    for _ in range(2):
        _, p, body = wait_message(ch, sink)
        reasons.append((body, p.headers["x-death"][0]["reason"]))
    assert reasons == [(b"a", "delivery_limit"), (b"b", "expired")]


@pytest.mark.parametrize("how", ["nack", "reject"])
def test_quorum_return_past_the_delivery_limit_credits_the_consumer_twice(conn, ch, uniq, cleanup, how):
    """A consumer's nack or reject with requeue of a message that goes past the delivery limit
    gives it credit twice: rabbit_fifo's return credits each returned message, and complete/5,
    which discards the one past the limit, credits it again. With prefetch 1 the consumer then
    holds two messages (lifecycle seed 22253)."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-delivery-limit": 0})
    publish(ch, q, *"abcd")
    assert wait_count(ch, q, 4) == 4
    c = conn.channel()
    c.basic_qos(prefetch_count=1)
    got = []
    c.basic_consume(q, lambda _c, m, _p, b: got.append((b, m.delivery_tag)))
    pump(conn, lambda: got)
    assert got == [(b"a", 1)]
    if how == "nack":
        c.basic_nack(1, requeue=True)
    else:
        c.basic_reject(1, requeue=True)
    assert wait_count(ch, q, 1) == 1
    pump(conn, lambda: len(got) == 3)
    assert got == [(b"a", 1), (b"b", 2), (b"c", 3)]


# --------------------------------------------------------------------------- quorum consumer_count

def wait_consumers(ch, q: str, expected: int, timeout: float = 2.0) -> int:
    """Poll queue.declare(passive) until consumer_count == expected. RabbitMQ applies settlements to a
    quorum queue asynchronously and answers the declare from the leader's current state."""
    deadline = time.monotonic() + timeout
    while True:
        n = ch.queue_declare(q, passive=True).method.consumer_count
        if n == expected or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def test_quorum_consumer_count_counts_unsettled_gets(connect, ch, uniq, cleanup):
    """A quorum queue's declare-ok consumer_count counts every unsettled basic.get message (each is its
    own 'once' consumer in rabbit_fifo) until it is acked, rejected, nacked or its channel closes; a
    no-ack get does not count."""
    q = quorum(ch, cleanup, uniq + ".qq")
    publish(ch, q, *"012345")
    assert wait_count(ch, q, 6) == 6
    g = connect().channel()
    m1 = g.basic_get(q)[0]
    assert wait_consumers(ch, q, 1) == 1
    m2 = g.basic_get(q)[0]
    assert wait_consumers(ch, q, 2) == 2
    assert g.basic_get(q, auto_ack=True)[0] is not None
    assert wait_consumers(ch, q, 2) == 2
    g.basic_ack(m1.delivery_tag)
    assert wait_consumers(ch, q, 1) == 1
    g.basic_reject(m2.delivery_tag, requeue=True)
    assert wait_consumers(ch, q, 0) == 0
    m3 = g.basic_get(q)[0]
    assert wait_consumers(ch, q, 1) == 1
    g.basic_nack(m3.delivery_tag, requeue=False)
    assert wait_consumers(ch, q, 0) == 0
    g.basic_get(q)
    g.basic_get(q)
    assert wait_consumers(ch, q, 2) == 2
    g.close()
    assert wait_consumers(ch, q, 0) == 0


@pytest.mark.parametrize("settle", ["ack-then-reject", "close"])
def test_quorum_consumer_count_keeps_cancelled_consumer_with_unacked(connect, ch, uniq, cleanup, settle):
    """A cancelled consumer that still holds unacked messages still counts, until the last of them
    is settled or returned (or its channel closes)."""
    q = quorum(ch, cleanup, uniq + ".qq")
    publish(ch, q, *"0123")
    c = connect()
    k = c.channel()
    k.basic_qos(prefetch_count=2)
    got = []
    tag = k.basic_consume(q, lambda _c, m, _p, _b: got.append(m.delivery_tag))
    pump(c, lambda: len(got) == 2)
    assert wait_consumers(ch, q, 1) == 1
    k.basic_cancel(tag)
    assert wait_consumers(ch, q, 1) == 1
    if settle == "close":
        k.close()
    else:
        k.basic_ack(got[0])
        assert wait_consumers(ch, q, 1) == 1
        k.basic_reject(got[1], requeue=True)
    assert wait_consumers(ch, q, 0) == 0


def test_quorum_consumer_count_no_ack_consumer_cancel(connect, ch, uniq, cleanup):
    """A cancelled consumer that holds nothing (no-ack) is gone at once."""
    q = quorum(ch, cleanup, uniq + ".qq")
    publish(ch, q, "0")
    c = connect()
    k = c.channel()
    got = []
    tag = k.basic_consume(q, lambda *a: got.append(1), auto_ack=True)
    pump(c, lambda: got)
    assert wait_consumers(ch, q, 1) == 1
    k.basic_cancel(tag)
    assert wait_consumers(ch, q, 0) == 0


def test_quorum_sac_consumer_count_with_cancelled_active(connect, ch, uniq, cleanup):
    """Single active consumer: waiting consumers do not count; a cancelled active consumer holding
    unacked messages counts beside its successor until it settles them."""
    q = quorum(ch, cleanup, uniq + ".qq", **{"x-single-active-consumer": True})
    publish(ch, q, *"012")
    c = connect()
    a, b = c.channel(), c.channel()
    a.basic_qos(prefetch_count=1)
    b.basic_qos(prefetch_count=1)
    ga, gb = [], []
    ta = a.basic_consume(q, lambda _c, m, _p, _b: ga.append(m.delivery_tag))
    b.basic_consume(q, lambda _c, m, _p, _b: gb.append(m.delivery_tag))
    pump(c, lambda: ga)
    assert wait_consumers(ch, q, 1) == 1
    a.basic_cancel(ta)
    pump(c, lambda: gb)
    assert (len(ga), len(gb)) == (1, 1)
    assert wait_consumers(ch, q, 2) == 2
    a.basic_ack(ga[0])
    assert wait_consumers(ch, q, 1) == 1


# --------------------------------------------------------------------------- quorum: exclusive consume

@pytest.mark.parametrize("first,second", [(False, True), (True, False), (True, True)],
                         ids=["then-exclusive", "exclusive-then-plain", "both-exclusive"])
def test_quorum_ignores_exclusive_on_consume(conn, ch, uniq, cleanup, first, second):
    """A quorum queue ignores basic.consume's exclusive flag: an exclusive consume beside other
    consumers is accepted, other consumers can join an exclusive one, and they share the messages."""
    q = quorum(ch, cleanup, uniq + ".qq")
    got = []
    conn.channel().basic_consume(q, lambda _c, _m, _p, b: got.append(("A", b)), auto_ack=True, exclusive=first)
    conn.channel().basic_consume(q, lambda _c, _m, _p, b: got.append(("B", b)), auto_ack=True, exclusive=second)
    publish(ch, q, *"0123")
    pump(conn, lambda: len(got) == 4)
    assert sorted(got, key=lambda g: g[1]) == [("A", b"0"), ("B", b"1"), ("A", b"2"), ("B", b"3")]
    assert ch.queue_declare(q, passive=True).method.consumer_count == 2


# --------------------------------------------------------------------------- quorum: global qos

@pytest.mark.parametrize("no_ack", [False, True])
def test_quorum_consume_with_global_qos_not_implemented(rawc, ch, uniq, cleanup, no_ack):
    """basic.consume on a quorum queue from a channel with an active global prefetch limit closes the
    connection: 540 NOT_IMPLEMENTED (class 60, method 20)."""
    q = quorum(ch, cleanup, uniq + ".qq")
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Basic.Qos(prefetch_count=5, global_=True))
    c.expect(C.Basic.QosOk, 1)
    c.send_method(1, C.Basic.Consume(queue=q, consumer_tag="t", no_ack=no_ack))
    close = c.expect(C.Connection.Close, 0)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        540, f"NOT_IMPLEMENTED - queue '{q}' in vhost '/' does not support global qos", 60, 20)


@pytest.mark.parametrize("order", ["qos-0-then-consume", "consume-then-qos"])
def test_quorum_consume_global_qos_allowed_cases(rawc, ch, uniq, cleanup, order):
    """A global qos of 0 (no limit) does not count, and a global qos set after the consume is accepted."""
    q = quorum(ch, cleanup, uniq + ".qq")
    c = rawc()
    c.open_channel(1)
    steps = [("qos", 0), ("consume", None)] if order.startswith("qos") else [("consume", None), ("qos", 5)]
    for step, n in steps:
        if step == "qos":
            c.send_method(1, C.Basic.Qos(prefetch_count=n, global_=True))
            c.expect(C.Basic.QosOk, 1)
        else:
            c.send_method(1, C.Basic.Consume(queue=q, consumer_tag="t"))
            c.expect(C.Basic.ConsumeOk, 1)
