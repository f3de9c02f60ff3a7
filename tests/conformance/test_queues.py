"""Conformance tests for queue.* methods (declare, bind, unbind, purge, delete).

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
"""
from __future__ import annotations

import re
import time

import pika
import pika.exceptions
import pytest

from .helpers import closed_with, queue_exists, wait_count

SERVER_NAME_RE = re.compile(r"^amq\.gen-[A-Za-z0-9_-]{22}$")

LOCKED_TEXT = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. "
    "It could be originally declared on another connection or the exclusive property value "
    "does not match that of the original declaration."
)


# --------------------------------------------------------------------------- helpers

def rmq_text(text: str) -> str:
    """RabbitMQ sends reply texts as shortstr: longer than 255 bytes -> first 252 bytes + '...'."""
    raw = text.encode()
    if len(raw) <= 255:
        return text
    return raw[:252].decode(errors="ignore") + "..."


# --------------------------------------------------------------------------- declare basics

def test_server_named_queue(ch):
    """queue.declare with an empty name returns a server-generated 'amq.gen-' + 22 base64url chars name."""
    ok = ch.queue_declare("", exclusive=True).method
    assert SERVER_NAME_RE.match(ok.queue), ok.queue
    assert ok.message_count == 0 and ok.consumer_count == 0
    ok2 = ch.queue_declare("", exclusive=True).method
    assert ok2.queue != ok.queue
    # The generated queue really exists and is usable.
    ch.basic_publish("", ok.queue, b"x")
    assert wait_count(ch, ok.queue, 1) == 1


def test_server_named_queue_non_exclusive(ch, cleanup):
    """A server-named queue need not be exclusive; the name format is the same."""
    q = ch.queue_declare("", auto_delete=True).method.queue
    cleanup.append(q)
    assert SERVER_NAME_RE.match(q), q


def test_passive_declare_missing_queue(ch, uniq):
    """Passive declare of a missing queue closes the channel with 404 and the exact NOT_FOUND text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq + ".missing", passive=True)
    closed_with(ei, 404, f"NOT_FOUND - no queue '{uniq}.missing' in vhost '/'")


def test_passive_declare_existing_returns_counts(ch, uniq, cleanup):
    """Passive declare of an existing queue returns its name and counts without altering it."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, durable=True)
    for i in range(2):
        ch.basic_publish("", q, b"m")
    assert wait_count(ch, q, 2) == 2
    # Passive ignores durable/exclusive/auto_delete/arguments mismatches.
    ok = ch.queue_declare(q, passive=True, durable=False, auto_delete=True,
                          arguments={"x-max-length": 1}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 2, 0)


def test_passive_declare_empty_name(ch):
    """Passive declare of '' is a lookup of a queue literally named '' -> 404."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", passive=True)
    closed_with(ei, 404, "NOT_FOUND - no queue '' in vhost '/'")


def test_passive_declare_empty_name_ignores_last_queue(ch, uniq):
    """Passive declare of '' does NOT resolve to the channel's last declared queue (still 404)."""
    ch.queue_declare(uniq + ".q", exclusive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", passive=True)
    closed_with(ei, 404, "NOT_FOUND - no queue '' in vhost '/'")


def test_durable_queue_declare(ch, uniq, cleanup):
    """A durable queue declares fine and can be redeclared with identical flags."""
    q = uniq + ".d"
    cleanup.append(q)
    ok = ch.queue_declare(q, durable=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    assert ch.queue_declare(q, durable=True).method.queue == q


def test_declare_ok_counts(ch, uniq, cleanup):
    """declare-ok message_count counts only ready messages; consumer_count counts consumers."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 3) == 3
    ok = ch.queue_declare(q).method
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    m, _, _ = ch.basic_get(q)  # one becomes unacked: no longer counted
    assert m is not None
    ok = ch.queue_declare(q).method
    assert (ok.message_count, ok.consumer_count) == (2, 0)
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, lambda *a: None)
    ch.basic_consume(q, lambda *a: None)
    ok = ch.queue_declare(q).method
    assert ok.consumer_count == 2
    assert ok.message_count == 0  # each consumer took one (prefetch 1)


def test_reserved_amq_prefix_refused(ch):
    """Declaring a queue whose name starts with 'amq.' closes the channel with 403."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("amq.foo")
    closed_with(ei, 403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'")


def test_reserved_amq_gen_prefix_refused(ch):
    """Even an 'amq.gen-' name chosen by the client is refused with 403."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("amq.gen-abc")
    closed_with(ei, 403, "ACCESS_REFUSED - queue name 'amq.gen-abc' contains reserved prefix 'amq.*'")


def test_reserved_prefix_passive_is_just_not_found(ch):
    """A passive declare of a missing 'amq.' queue gives 404, not 403."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("amq.foo", passive=True)
    closed_with(ei, 404, "NOT_FOUND - no queue 'amq.foo' in vhost '/'")


# --------------------------------------------------------------------------- exclusive

def test_exclusive_queue_usable_from_other_channel_same_connection(conn):
    """An exclusive queue can be used from any channel of its owning connection."""
    ch1 = conn.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    ch2 = conn.channel()
    assert ch2.queue_declare(q, passive=True).method.queue == q
    ch2.basic_publish("", q, b"x")
    m, _, body = ch2.basic_get(q, auto_ack=True)
    assert body == b"x"


@pytest.mark.parametrize("op", ["declare", "declare_exclusive", "passive", "consume", "get",
                                "bind", "purge", "delete"])
def test_exclusive_queue_locked_for_other_connection(connect, uniq, op):
    """Any other connection touching an exclusive queue gets 405 RESOURCE_LOCKED with the exact text."""
    owner = connect().channel()
    q = uniq + ".ex"
    owner.queue_declare(q, exclusive=True)
    other = connect().channel()
    actions = {
        "declare": lambda: other.queue_declare(q),
        "declare_exclusive": lambda: other.queue_declare(q, exclusive=True),
        "passive": lambda: other.queue_declare(q, passive=True),
        "consume": lambda: other.basic_consume(q, lambda *a: None),
        "get": lambda: other.basic_get(q),
        "bind": lambda: other.queue_bind(q, "amq.direct", "k"),
        "purge": lambda: other.queue_purge(q),
        "delete": lambda: other.queue_delete(q),
    }
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        actions[op]()
    closed_with(ei, 405, rmq_text(LOCKED_TEXT.format(q=q)))
    # The owner is unaffected.
    assert owner.queue_declare(q, passive=True).method.queue == q


def test_long_reply_text_truncated_to_255(connect, uniq):
    """Reply texts over 255 bytes are cut to their first 252 bytes followed by '...'."""
    name = (uniq + ".").ljust(100, "q")
    owner = connect().channel()
    owner.queue_declare(name, exclusive=True)
    other = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        other.queue_declare(name)
    text = ei.value.reply_text
    assert len(text) == 255
    assert text == LOCKED_TEXT.format(q=name)[:252] + "..."
    assert text.endswith("It could be originally declared on another connection or the exclusive...")


def test_short_locked_text_not_truncated(connect):
    """With a short queue name the full RESOURCE_LOCKED text (226 chars here) is sent untruncated."""
    owner = connect().channel()
    q = owner.queue_declare("", exclusive=True).method.queue
    other = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        other.queue_declare(q, passive=True)
    closed_with(ei, 405, LOCKED_TEXT.format(q=q))
    assert ei.value.reply_text.endswith("does not match that of the original declaration.")


def test_publish_to_exclusive_queue_from_other_connection_allowed(connect, uniq):
    """Publishing (via the default exchange) to another connection's exclusive queue is allowed."""
    owner = connect().channel()
    q = uniq + ".ex"
    owner.queue_declare(q, exclusive=True)
    other = connect().channel()
    other.basic_publish("", q, b"from-other")
    assert wait_count(owner, q, 1) == 1
    assert owner.basic_get(q, auto_ack=True)[2] == b"from-other"


def test_owner_redeclare_exclusive_queue_as_non_exclusive(conn, uniq):
    """The owner redeclaring its exclusive queue with exclusive=False also gets 405 RESOURCE_LOCKED."""
    ch = conn.channel()
    q = uniq + ".ex"
    ch.queue_declare(q, exclusive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=False)
    closed_with(ei, 405, rmq_text(LOCKED_TEXT.format(q=q)))


def test_declare_existing_queue_as_exclusive(connect, uniq, cleanup):
    """Redeclaring a non-exclusive queue with exclusive=True gets 405 RESOURCE_LOCKED."""
    q = uniq + ".q"
    cleanup.append(q)
    ch = connect().channel()
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True)
    closed_with(ei, 405, rmq_text(LOCKED_TEXT.format(q=q)))


def test_exclusive_queue_deleted_when_connection_closes(connect, uniq):
    """An exclusive queue (with its messages) disappears when its owning connection closes."""
    c = connect()
    ch = c.channel()
    q = uniq + ".ex"
    ch.queue_declare(q, exclusive=True, durable=False)
    ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 1) == 1
    c.close()
    deadline = time.monotonic() + 2
    while queue_exists(connect, q) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_exists(connect, q)


# --------------------------------------------------------------------------- auto_delete

def test_auto_delete_after_last_consumer_cancels(connect, uniq, cleanup):
    """An auto-delete queue survives until its last consumer is cancelled, then is deleted."""
    q = uniq + ".ad"
    cleanup.append(q)
    ch = connect().channel()
    ch.queue_declare(q, auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    probe = connect().channel()
    assert probe.queue_declare(q, passive=True).method.consumer_count == 2
    ch.basic_cancel(t1)
    assert probe.queue_declare(q, passive=True).method.consumer_count == 1
    ch.basic_cancel(t2)
    time.sleep(0.1)
    assert not queue_exists(connect, q)


def test_auto_delete_never_consumed_survives(connect, uniq, cleanup):
    """An auto-delete queue that never had a consumer is NOT deleted, even after its declarer disconnects."""
    q = uniq + ".ad"
    cleanup.append(q)
    c = connect()
    c.channel().queue_declare(q, auto_delete=True)
    c.close()
    time.sleep(0.1)
    assert queue_exists(connect, q)


def test_auto_delete_when_consumer_connection_closes(connect, uniq, cleanup):
    """An auto-delete queue is deleted when the connection of its only consumer closes."""
    q = uniq + ".ad"
    cleanup.append(q)
    c = connect()
    ch = c.channel()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    c.close()
    deadline = time.monotonic() + 2
    while queue_exists(connect, q) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_exists(connect, q)


# --------------------------------------------------------------------------- equivalence

@pytest.mark.parametrize("first,second,text", [
    (dict(durable=False), dict(durable=True),
     "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
     "received 'true' but current is 'false'"),
    (dict(durable=True), dict(durable=False),
     "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
     "received 'false' but current is 'true'"),
    (dict(), dict(auto_delete=True),
     "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{q}' in vhost '/': "
     "received 'true' but current is 'false'"),
    (dict(), dict(arguments={"x-max-length": 10}),
     "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
     "received the value '10' of type 'signedint' but current is none"),
    (dict(arguments={"x-max-length": 5}), dict(arguments={"x-max-length": 6}),
     "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
     "received '6' but current is '5'"),
    # 3.10: omitting a previously given known argument is also inequivalent.
    (dict(arguments={"x-max-length": 5}), dict(),
     "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
     "received none but current is the value '5' of type 'signedint'"),
    (dict(), dict(arguments={"x-message-ttl": 10}),
     "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': "
     "received the value '10' of type 'signedint' but current is none"),
    (dict(), dict(arguments={"x-queue-type": "quorum"}),
     "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
     "received the value 'quorum' of type 'longstr' but current is none"),
], ids=["durable-f-t", "durable-t-f", "auto_delete", "xarg-added", "xarg-changed",
        "xarg-omitted", "ttl-added", "qtype-quorum"])
def test_redeclare_inequivalent(ch, uniq, cleanup, first, second, text):
    """Redeclaring with different flags/known x-arguments closes the channel with 406 and the exact text."""
    q = uniq + ".eq"
    cleanup.append(q)
    ch.queue_declare(q, **first)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, **second)
    closed_with(ei, 406, text.format(q=q))


def test_redeclare_quorum_without_type(ch, uniq, cleanup):
    """Redeclaring a quorum queue without x-queue-type is inequivalent (406)."""
    q = uniq + ".qq"
    cleanup.append(q)
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, durable=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' "
                         f"in vhost '/': received none but current is the value 'quorum' of type 'longstr'")


def test_redeclare_x_queue_type_classic_is_equivalent_to_default(ch, uniq, cleanup):
    """x-queue-type=classic is equivalent to no x-queue-type, in both directions."""
    q1, q2 = uniq + ".a", uniq + ".b"
    cleanup.extend([q1, q2])
    ch.queue_declare(q1)
    assert ch.queue_declare(q1, arguments={"x-queue-type": "classic"}).method.queue == q1
    ch.queue_declare(q2, arguments={"x-queue-type": "classic"})
    assert ch.queue_declare(q2).method.queue == q2


def test_redeclare_unknown_x_argument_change_ignored(ch, uniq, cleanup):
    """Arguments RabbitMQ does not know (x-foo) are not compared on redeclare."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, arguments={"x-foo": 5})
    assert ch.queue_declare(q, arguments={"x-foo": 6}).method.queue == q
    assert ch.queue_declare(q).method.queue == q


def test_redeclare_equivalent_returns_counts(ch, uniq, cleanup):
    """An equivalent redeclare succeeds and reports the current message count."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q, durable=True, arguments={"x-max-length": 100})
    ch.basic_publish("", q, b"1")
    assert wait_count(ch, q, 1) == 1
    ok = ch.queue_declare(q, durable=True, arguments={"x-max-length": 100}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 1, 0)


# --------------------------------------------------------------------------- queue types

def test_x_queue_type_classic_accepted(ch, uniq, cleanup):
    """x-queue-type=classic is accepted for any flag combination."""
    q = uniq + ".c"
    cleanup.append(q)
    ok = ch.queue_declare(q, arguments={"x-queue-type": "classic"}).method
    assert ok.queue == q
    ch.basic_publish("", q, b"c")
    assert wait_count(ch, q, 1) == 1


def test_x_queue_type_quorum_accepted(ch, uniq, cleanup):
    """A durable, non-exclusive, non-auto-delete quorum queue is accepted and works."""
    q = uniq + ".qq"
    cleanup.append(q)
    ok = ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    ch.basic_publish("", q, b"quorum-msg")
    assert wait_count(ch, q, 1) == 1
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"quorum-msg"


@pytest.mark.parametrize("kwargs,prop", [
    (dict(durable=False), "non-durable"),
    (dict(durable=True, exclusive=True), "exclusive-owner"),
    (dict(durable=True, auto_delete=True), "auto-delete"),
])
def test_x_queue_type_quorum_invalid_properties(ch, uniq, cleanup, kwargs, prop):
    """Quorum queues refuse non-durable/exclusive/auto-delete with 406 'invalid property'."""
    q = uniq + ".qq"
    cleanup.append(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-queue-type": "quorum"}, **kwargs)
    closed_with(ei, 406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'")


def test_x_queue_type_invalid(ch, uniq, cleanup):
    """An unknown x-queue-type closes the channel with 406 'unsupported queue type'."""
    q = uniq + ".bad"
    cleanup.append(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-queue-type": "bogus"})
    closed_with(ei, 406, f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': "
                         f"\"unsupported queue type 'bogus'\"")


# --------------------------------------------------------------------------- bind / unbind

def test_bind_and_route(ch):
    """queue.bind makes messages published with the binding key reach the queue; unbind stops it."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.direct", q + ".key")
    ch.basic_publish("amq.direct", q + ".key", b"routed")
    assert wait_count(ch, q, 1) == 1
    ch.queue_unbind(q, "amq.direct", q + ".key")
    ch.basic_publish("amq.direct", q + ".key", b"dropped")
    ch.basic_publish("", q, b"marker")
    assert wait_count(ch, q, 2) == 2
    assert [ch.basic_get(q, auto_ack=True)[2] for _ in range(2)] == [b"routed", b"marker"]


def test_bind_missing_exchange(ch, uniq):
    """Binding to a missing exchange closes the channel with 404 naming the exchange."""
    q = ch.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, uniq + ".nox", "k")
    closed_with(ei, 404, f"NOT_FOUND - no exchange '{uniq}.nox' in vhost '/'")


def test_bind_missing_queue(ch, uniq):
    """Binding a missing queue closes the channel with 404 naming the queue."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(uniq + ".noq", "amq.direct", "k")
    closed_with(ei, 404, f"NOT_FOUND - no queue '{uniq}.noq' in vhost '/'")


def test_bind_missing_queue_and_exchange(ch, uniq):
    """With both missing, the exchange is reported first."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(uniq + ".noq", uniq + ".nox", "k")
    closed_with(ei, 404, f"NOT_FOUND - no exchange '{uniq}.nox' in vhost '/'")


def test_unbind_nonexistent_binding_ok(ch):
    """Unbinding a binding that does not exist succeeds (unbind-ok)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ok = ch.queue_unbind(q, "amq.direct", "never-bound")
    assert isinstance(ok.method, pika.spec.Queue.UnbindOk)
    # Channel still usable.
    assert ch.queue_declare(q, passive=True).method.queue == q


def test_unbind_missing_queue_or_exchange_ok(ch, uniq):
    """3.10: unbind naming a missing queue or a missing exchange still answers unbind-ok."""
    ok = ch.queue_unbind(uniq + ".noq", "amq.direct", "k")
    assert isinstance(ok.method, pika.spec.Queue.UnbindOk)
    q = ch.queue_declare("", exclusive=True).method.queue
    ok = ch.queue_unbind(q, uniq + ".nox", "k")
    assert isinstance(ok.method, pika.spec.Queue.UnbindOk)


# --------------------------------------------------------------------------- purge / delete

def test_purge_returns_count(ch):
    """queue.purge returns the number of ready messages removed; unacked ones are kept."""
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert wait_count(ch, q, 3) == 3
    m, _, _ = ch.basic_get(q)  # unacked
    assert ch.queue_purge(q).method.message_count == 2
    assert ch.queue_purge(q).method.message_count == 0
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert wait_count(ch, q, 1) == 1


def test_purge_missing_queue(ch, uniq):
    """Purging a missing queue closes the channel with 404."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_purge(uniq + ".noq")
    closed_with(ei, 404, f"NOT_FOUND - no queue '{uniq}.noq' in vhost '/'")


def test_delete_returns_message_count(ch, uniq, connect):
    """queue.delete returns the number of ready messages (unacked not counted) and removes the queue."""
    q = uniq + ".q"
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 3) == 3
    assert ch.basic_get(q)[0] is not None
    assert ch.queue_delete(q).method.message_count == 2
    assert not queue_exists(connect, q)


def test_delete_missing_queue_ok(ch, uniq):
    """3.10: deleting a missing queue answers delete-ok with message_count 0 (no error)."""
    ok = ch.queue_delete(uniq + ".noq").method
    assert isinstance(ok, pika.spec.Queue.DeleteOk)
    assert ok.message_count == 0


def test_delete_if_unused_with_consumer(connect, uniq, cleanup):
    """delete(if_unused) on a queue with a consumer closes the channel with 406 'in use'."""
    q = uniq + ".q"
    cleanup.append(q)
    ch = connect().channel()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    other = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        other.queue_delete(q, if_unused=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
    assert queue_exists(connect, q)


def test_delete_if_unused_without_consumer(ch, uniq, connect):
    """delete(if_unused) on a queue without consumers deletes it even if it holds messages."""
    q = uniq + ".q"
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 1) == 1
    assert ch.queue_delete(q, if_unused=True).method.message_count == 1
    assert not queue_exists(connect, q)


def test_delete_if_empty_with_messages(ch, uniq, cleanup, connect):
    """delete(if_empty) on a queue holding messages closes the channel with 406 'not empty'."""
    q = uniq + ".q"
    cleanup.append(q)
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 1) == 1
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_delete(q, if_empty=True)
    closed_with(ei, 406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
    assert queue_exists(connect, q)


def test_delete_if_empty_on_empty_queue(ch, uniq, connect):
    """delete(if_empty) on an empty queue deletes it."""
    q = uniq + ".q"
    ch.queue_declare(q)
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0
    assert not queue_exists(connect, q)


# --------------------------------------------------------------------------- '' = last declared queue

def test_empty_name_means_last_declared_queue(ch, uniq):
    """An empty queue name in bind/get/purge/consume/delete refers to the channel's last declared queue."""
    q = ch.queue_declare(uniq + ".last", exclusive=True).method.queue
    ch.queue_bind("", "amq.direct", uniq + ".rk")
    ch.basic_publish("amq.direct", uniq + ".rk", b"one")
    assert wait_count(ch, q, 1) == 1
    m, _, body = ch.basic_get("", auto_ack=True)
    assert body == b"one"
    assert m.routing_key == uniq + ".rk"
    ch.basic_publish("amq.direct", uniq + ".rk", b"two")
    assert wait_count(ch, q, 1) == 1
    assert ch.queue_purge("").method.message_count == 1
    ch.basic_consume("", lambda *a: None)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    ch.basic_publish("", q, b"three")
    time.sleep(0.05)
    ok = ch.queue_delete("").method
    assert isinstance(ok, pika.spec.Queue.DeleteOk)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    closed_with(ei, 404, f"NOT_FOUND - no queue '{q}' in vhost '/'")


def test_empty_name_with_server_named_queue(ch):
    """The server-generated name becomes the channel's last declared queue."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    assert wait_count(ch, q, 1) == 1
    m, _, body = ch.basic_get("", auto_ack=True)
    assert body == b"x"
    assert m.routing_key == q


def test_bind_empty_queue_and_empty_key_uses_queue_name_as_key(ch, uniq):
    """bind with queue '' and routing key '' binds the last queue with its own name as key."""
    q = ch.queue_declare(uniq + ".q", exclusive=True).method.queue
    ch.queue_bind("", "amq.direct", "")
    ch.basic_publish("amq.direct", q, b"via-name-key")
    assert wait_count(ch, q, 1) == 1


def test_passive_declare_sets_last_queue(connect, uniq, cleanup):
    """A passive declare also records the queue as the channel's last declared queue."""
    q = uniq + ".q"
    cleanup.append(q)
    setup = connect().channel()
    setup.queue_declare(q)
    setup.basic_publish("", q, b"a")
    assert wait_count(setup, q, 1) == 1
    ch = connect().channel()
    ch.queue_declare(q, passive=True)
    assert ch.queue_purge("").method.message_count == 1


def test_last_queue_is_per_channel(conn, uniq):
    """The 'last declared queue' is per channel: another channel has none."""
    ch1 = conn.channel()
    ch1.queue_declare(uniq + ".q", exclusive=True)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_purge("")
    closed_with(ei, 404, "NOT_FOUND - no previously declared queue")


def test_last_queue_after_delete_refers_to_deleted_name(ch, uniq):
    """After the last declared queue is deleted, '' still names it, giving 404 for that queue."""
    q = uniq + ".q"
    ch.queue_declare(q, exclusive=True)
    ch.queue_delete(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_purge("")
    closed_with(ei, 404, f"NOT_FOUND - no queue '{q}' in vhost '/'")


@pytest.mark.parametrize("op", ["bind", "purge", "delete", "get", "consume"])
def test_empty_name_without_previous_declare(ch, op):
    """Using '' before any queue was declared on the channel closes it with 404 'no previously declared queue'."""
    actions = {
        "bind": lambda: ch.queue_bind("", "amq.direct", "k"),
        "purge": lambda: ch.queue_purge(""),
        "delete": lambda: ch.queue_delete(""),
        "get": lambda: ch.basic_get(""),
        "consume": lambda: ch.basic_consume("", lambda *a: None),
    }
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        actions[op]()
    closed_with(ei, 404, "NOT_FOUND - no previously declared queue")


def test_exclusive_queue_is_transient_whatever_durable_says(connect, uniq):
    """RabbitMQ makes exclusive queues non-durable: redeclaring one with either durable value
    is equivalent; a non-durable redeclare of a durable=True exclusive queue is fine too."""
    c = connect()
    ch = c.channel()
    name = f"{uniq}.excl"
    ch.queue_declare(name, exclusive=True, durable=True)
    ch.queue_declare(name, exclusive=True, durable=False)
    ch.queue_declare(name, exclusive=True, durable=True)
    assert ch.queue_declare(name, passive=True).method.queue == name
