"""Durability end to end: a private Leveret process, pika, and restarts on the same data directory.

Each test starts its own broker, does what a client would, stops it — cleanly with
SIGTERM, or with SIGKILL (``kill -9``: nothing is flushed at exit, so only what the
store wrote before is there) — starts a new process on the same data directory and
port, and checks what survived: durable entities and persistent messages in durable
queues do (in order, byte for byte, with their delivered state); transient ones do not.
"""
from __future__ import annotations

import datetime
import decimal
import os
import subprocess
import sys
import time

import pika
import pika.exceptions
import pytest
from conformance.helpers import drain_get as drain

from conftest import _free_port
from leveret.store.disk import queue_dir_id

pytestmark = pytest.mark.leveret_only

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def connect():
    """``connect(server)`` -> a pika BlockingConnection; all are closed (quietly) at teardown."""
    made: list = []

    def factory(server) -> pika.BlockingConnection:
        c = pika.BlockingConnection(pika.URLParameters(server.url))
        made.append(c)
        return c

    yield factory
    for c in made:
        try:
            if c.is_open:
                c.close()
        except Exception:   # the broker under it was killed
            pass


def restart(start, server, how: str):
    """Stop ``server`` (``sigterm``: clean, exit code 0; ``sigkill``: kill -9) and start a new
    broker on the same data directory and port."""
    if how == "sigkill":
        server.proc.kill()
        server.proc.wait()
    else:
        assert server.stop() == 0
    return start(port=server.port, data_dir=server.data_dir)


def exists(conn, kind: str, name: str) -> bool:
    ch = conn.channel()
    try:
        if kind == "queue":
            ch.queue_declare(name, passive=True)
        else:
            ch.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return False
    ch.close()
    return True


def count(conn, q: str) -> int:
    ch = conn.channel()
    n = ch.queue_declare(q, passive=True).method.message_count
    ch.close()
    return n


def drain_full(ch, q: str) -> list[tuple]:
    """Like :func:`drain`, with the decoded properties: (body, redelivered, props dict, exchange, rk)."""
    out = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((body, m.redelivered, vars(p), m.exchange, m.routing_key))


def channel_error(fn, *args, **kw) -> tuple[int, str]:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        fn(*args, **kw)
    return ei.value.reply_code, ei.value.reply_text


def bodies(n: int, prefix: str = "m") -> list[bytes]:
    return [f"{prefix}{i:03d}".encode() for i in range(n)]


HOW = pytest.mark.parametrize("how", ["sigterm", "sigkill"])


def redelivered(how: str, delivered: bool) -> bool:
    """The redelivered flag of a recovered message. After a clean stop it is set exactly for the
    messages delivered (and not acked) before it; after a crash (no ``clean_shutdown`` marker in
    the data directory) every recovered message is marked redelivered, as RabbitMQ does when it
    cannot know which were delivered."""
    return True if how == "sigkill" else delivered


# --------------------------------------------------------------------------- entities
@HOW
def test_durable_entities_survive_restart_and_transient_ones_do_not(leveret_server, connect, how):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.exchange_declare("dx", "direct", durable=True, arguments={"alternate-exchange": "ae"})
    ch.exchange_declare("dx2", "fanout", durable=True)
    ch.exchange_declare("dh", "headers", durable=True)
    ch.exchange_declare("dad", "fanout", durable=True, auto_delete=True)
    ch.exchange_declare("ae", "fanout", durable=True)
    ch.exchange_declare("tx", "direct", durable=False)
    ch.queue_declare("dq", durable=True)
    ch.queue_declare("dq2", durable=True)
    ch.queue_declare("dq3", durable=True)
    ch.queue_declare("dq_ae", durable=True)
    ch.queue_declare("dq_ad", durable=True, auto_delete=True)       # never had a consumer
    ch.queue_declare("tq", durable=False)
    ch.queue_declare("eq", durable=True, exclusive=True)             # exclusive: always transient
    ch.queue_bind("dq", "dx", "a")
    ch.exchange_bind("dx2", "dx", "b")                               # exchange-to-exchange
    ch.queue_bind("dq2", "dx2")
    ch.queue_bind("dq3", "dh", arguments={"x-match": "any", "n": 1, "s": "two"})
    ch.queue_bind("dq_ae", "ae")
    ch.queue_bind("dq", "dad", "x")
    ch.queue_bind("dq2", "amq.topic", "pre.#")                       # from a predeclared exchange
    ch.queue_bind("tq", "dx", "t")                                   # transient destination
    ch.queue_bind("dq", "tx", "y")                                   # transient source
    if how == "sigterm":
        c.close()
    else:
        ch.queue_declare("dq", passive=True)                         # round trip, then kill -9

    s = restart(leveret_server, s, how)
    c = connect(s)
    for x in ("dx", "dx2", "dh", "dad", "ae"):
        assert exists(c, "exchange", x), x
    for q in ("dq", "dq2", "dq3", "dq_ae", "dq_ad"):
        assert exists(c, "queue", q), q
    assert not exists(c, "exchange", "tx")
    assert not exists(c, "queue", "tq")
    assert not exists(c, "queue", "eq")

    ch = c.channel()
    # redeclaring with the original properties is fine (type, durable, auto_delete, arguments)
    ch.exchange_declare("dx", "direct", durable=True, arguments={"alternate-exchange": "ae"})
    ch.exchange_declare("dad", "fanout", durable=True, auto_delete=True)
    ch.queue_declare("dq_ad", durable=True, auto_delete=True)
    assert channel_error(c.channel().exchange_declare, "dx2", "direct", durable=True)[0] == 406
    assert channel_error(c.channel().queue_declare, "dq_ad", durable=True)[0] == 406

    # the bindings route as before
    ch.basic_publish("dx", "a", b"to dq")
    ch.basic_publish("dx", "b", b"via dx2")
    ch.basic_publish("dx", "t", b"to the gone transient queue: alternate exchange")
    ch.basic_publish("dad", "", b"from the auto-delete exchange")
    ch.basic_publish("amq.topic", "pre.1", b"via amq.topic")
    ch.basic_publish("dh", "", b"h1", pika.BasicProperties(headers={"s": "two"}))
    ch.basic_publish("dh", "", b"h2", pika.BasicProperties(headers={"n": 1}))
    ch.basic_publish("dh", "", b"h3", pika.BasicProperties(headers={"n": 2, "s": "three"}))
    ch.basic_publish("tx", "y", b"nowhere")                      # no such exchange any more
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_get("dq")
    assert ei.value.reply_code == 404
    ch = c.channel()
    assert [b for b, _ in drain(ch, "dq")] == [b"to dq", b"from the auto-delete exchange"]
    assert [b for b, _ in drain(ch, "dq2")] == [b"via dx2", b"via amq.topic"]
    assert [b for b, _ in drain(ch, "dq3")] == [b"h1", b"h2"]
    assert [b for b, _ in drain(ch, "dq_ae")] == [b"to the gone transient queue: alternate exchange"]

    # the headers binding kept its exact arguments: unbinding with them removes it
    ch.queue_unbind("dq3", "dh", arguments={"x-match": "any", "n": 1, "s": "two"})
    ch.basic_publish("dh", "", b"h4", pika.BasicProperties(headers={"s": "two"}))
    assert drain(ch, "dq3") == []
    # and the exchange-to-exchange binding can be removed too
    ch.exchange_unbind("dx2", "dx", "b")
    ch.basic_publish("dx", "b", b"unrouted")
    assert [b for b, _ in drain(ch, "dq2")] == []


def test_unbind_and_delete_of_entities_are_durable(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.exchange_declare("x", "topic", durable=True)
    ch.exchange_declare("gone", "fanout", durable=True)
    ch.exchange_declare("dest", "fanout", durable=True)
    ch.queue_declare("q", durable=True)
    ch.queue_declare("q2", durable=True)
    ch.queue_bind("q", "x", "keep.#")
    ch.queue_bind("q", "x", "drop.#")
    ch.queue_bind("q2", "gone")
    ch.exchange_bind("dest", "x", "e.#")
    ch.queue_bind("q2", "dest")
    ch.queue_unbind("q", "x", "drop.#")
    ch.exchange_delete("gone")
    ch.exchange_unbind("dest", "x", "e.#")
    ch.queue_declare("q", passive=True)
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert not exists(c, "exchange", "gone")
    ch = c.channel()
    for rk in ("keep.1", "drop.1", "e.1"):
        ch.basic_publish("x", rk, rk.encode())
    assert [b for b, _ in drain(ch, "q")] == [b"keep.1"]
    assert drain(ch, "q2") == []


def test_unbind_with_arguments_in_another_order_is_durable(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.exchange_declare("h", "headers", durable=True)
    ch.queue_declare("q", durable=True)
    ch.queue_bind("q", "h", arguments={"x-match": "all", "a": 1, "b": "two"})
    ch.queue_unbind("q", "h", arguments={"b": "two", "a": 1, "x-match": "all"})
    ch.basic_publish("h", "", b"before", pika.BasicProperties(headers={"a": 1, "b": "two"}))
    assert drain(ch, "q") == []                            # unbound (RabbitMQ sorts binding args)
    c.close()
    s = restart(leveret_server, s, "sigterm")
    ch = connect(s).channel()
    ch.basic_publish("h", "", b"after", pika.BasicProperties(headers={"a": 1, "b": "two"}))
    assert drain(ch, "q") == []


def test_durable_auto_delete_queue_with_a_consumer_survives_a_crash(leveret_server, connect):
    """As RabbitMQ: a durable auto-delete queue is recovered (its consumers are not); it is
    deleted once a consumer subscribes and cancels again."""
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("adq", durable=True, auto_delete=True)
    ch.basic_consume("adq", lambda *a: None)
    ch.queue_declare("adq", passive=True)
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert exists(c, "queue", "adq")
    ch = c.channel()
    tag = ch.basic_consume("adq", lambda *a: None)
    ch.basic_cancel(tag)
    assert not exists(c, "queue", "adq")
    c.close()
    s = restart(leveret_server, s, "sigterm")
    assert not exists(connect(s), "queue", "adq")


def test_queue_arguments_survive_with_their_types(leveret_server, connect):
    args = {"x-message-ttl": 60000, "x-max-length": 100, "x-dead-letter-exchange": "dlx",
            "x-single-active-consumer": True, "x-overflow": "reject-publish",
            "x-custom": {"nested": [1, "two", b"\x00\xff"]}}
    wrong = [
        {**args, "x-single-active-consumer": 1},            # int where a bool was declared
        {**args, "x-dead-letter-exchange": b"dlx"},         # byte array where a longstr was
        {**args, "x-message-ttl": "60000"},                 # longstr where an integer was
        {**args, "x-max-length": 101},                      # different value
        {k: v for k, v in args.items() if k != "x-overflow"},   # missing
    ]
    s = leveret_server()
    c = connect(s)
    c.channel().queue_declare("qa", durable=True, arguments=args)
    before = [channel_error(c.channel().queue_declare, "qa", durable=True, arguments=a) for a in wrong]
    assert all(code == 406 and "inequivalent arg" in text for code, text in before), before
    c.close()

    for how in ("sigterm", "sigkill"):
        s = restart(leveret_server, s, how)
        c = connect(s)
        ok = c.channel().queue_declare("qa", durable=True, arguments=args)
        assert ok.method.queue == "qa"
        after = [channel_error(c.channel().queue_declare, "qa", durable=True, arguments=a) for a in wrong]
        assert after == before                  # same replies, type names and values included
        c.channel().queue_declare("qa", passive=True)


# --------------------------------------------------------------------------- messages
@HOW
def test_durable_queue_keeps_persistent_messages_and_drops_transient_ones(leveret_server, connect, how):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("dq", durable=True)
    ch.queue_declare("nq", durable=False)
    expect = []
    for i in range(20):
        persistent = i % 3 != 1
        body = f"{'p' if persistent else 't'}{i}".encode()
        ch.basic_publish("", "dq", body, PERSISTENT if persistent else TRANSIENT)
        ch.basic_publish("", "nq", body, PERSISTENT)
        if persistent:
            expect.append(body)
    ch.basic_publish("", "dq", b"default mode is transient")   # no delivery_mode at all
    assert count(c, "dq") == 21 and count(c, "nq") == 20
    if how == "sigterm":
        c.close()

    s = restart(leveret_server, s, how)
    c = connect(s)
    assert count(c, "dq") == len(expect)
    assert not exists(c, "queue", "nq")
    assert drain(c.channel(), "dq") == [(b, redelivered(how, False)) for b in expect]


@HOW
def test_order_and_properties_survive_byte_for_byte(leveret_server, connect, how):
    ts = 1_700_000_123
    headers = {"str": "text", "int": 7, "neg": -(2 ** 40), "bool": False, "bytes": b"\x00\x01\xfe",
               "list": [1, "a", [True, None]], "table": {"inner": {"x": 1, "y": b""}},
               "dec": decimal.Decimal("3.14"),
               "when": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc), "void": None}
    props = [
        pika.BasicProperties(delivery_mode=2),
        pika.BasicProperties(content_type="application/json", content_encoding="gzip", headers=headers,
                             delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="replies",
                             expiration="3600000", message_id="mid-\u00e9", timestamp=ts, type="kind",
                             user_id="guest", app_id="app", cluster_id="cl"),
        pika.BasicProperties(delivery_mode=2, headers={}),
        pika.BasicProperties(delivery_mode=2, message_id="x" * 255, timestamp=0, priority=0),
    ]
    big = os.urandom(300_000)                              # several frames at frame_max 131072
    msgs = []
    for i in range(24):
        body = big if i == 5 else b"" if i == 9 else f"body-{i}-".encode() * (i + 1)
        msgs.append((body, props[i % len(props)], f"rk.{i}"))

    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.exchange_declare("fx", "fanout", durable=True)
    for q in ("qa", "qb"):
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, "fx")
    ch.confirm_delivery()
    for body, p, rk in msgs:
        ch.basic_publish("fx", rk, body, p)
    before = drain_full(ch, "qa")                          # the copy read before the restart
    assert len(before) == len(msgs)
    for (body, p, rk), got in zip(msgs, before):
        assert got == (body, False, vars(p), "fx", rk)
    if how == "sigterm":
        c.close()

    s = restart(leveret_server, s, how)
    c = connect(s)
    after = drain_full(c.channel(), "qb")
    assert after == [(b, redelivered(how, False), p, x, rk) for b, _r, p, x, rk in before]


@HOW
def test_delivered_unacked_messages_come_back_redelivered(leveret_server, connect, how):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    ch.queue_declare("qg", durable=True)
    for b in bodies(6):
        ch.basic_publish("", "q", b, PERSISTENT)
        ch.basic_publish("", "qg", b, PERSISTENT)
    cch = c.channel()
    cch.basic_qos(prefetch_count=2)
    got = []
    cch.basic_consume("q", lambda _c, m, _p, b: got.append((b, m.redelivered)))
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    assert got == [(b"m000", False), (b"m001", False)]
    m, _p, b = ch.basic_get("qg")                         # basic.get without auto-ack, never acked
    assert (b, m.redelivered) == (b"m000", False)
    ch.queue_declare("q", passive=True)
    if how == "sigterm":
        c.close()                                         # requeues them (they were delivered)

    s = restart(leveret_server, s, how)
    c = connect(s)
    ch = c.channel()
    assert drain(ch, "q") == [(b, redelivered(how, i < 2)) for i, b in enumerate(bodies(6))]
    assert drain(ch, "qg") == [(b, redelivered(how, i < 1)) for i, b in enumerate(bodies(6))]


def test_message_delivered_after_crash_recovery_stays_redelivered(leveret_server, connect):
    """After a crash every recovered message is redelivered; one delivered in that session and
    requeued must still be redelivered after the next (clean) restart."""
    s = leveret_server()
    ch = connect(s).channel()
    ch.queue_declare("q", durable=True)
    ch.basic_publish("", "q", b"m", PERSISTENT)
    ch.queue_declare("q", passive=True)
    s = restart(leveret_server, s, "sigkill")
    c = connect(s)
    m, _p, b = c.channel().basic_get("q")                 # delivered, never acked
    assert (b, m.redelivered) == (b"m", True)
    c.close()                                               # requeued
    s = restart(leveret_server, s, "sigterm")
    assert drain(connect(s).channel(), "q") == [(b"m", True)]


@HOW
def test_acks_after_a_crash_recovery_survive_the_next_restart(leveret_server, connect, how):
    s = leveret_server()
    ch = connect(s).channel()
    ch.queue_declare("q", durable=True)
    for b in bodies(10):
        ch.basic_publish("", "q", b, PERSISTENT)
    ch.queue_declare("q", passive=True)
    s = restart(leveret_server, s, "sigkill")
    c = connect(s)
    ch = c.channel()
    for _ in range(4):
        m, _p, _b = ch.basic_get("q")
        ch.basic_ack(m.delivery_tag)
    assert ch.queue_declare("q", passive=True).method.message_count == 6
    if how == "sigterm":
        c.close()
    s = restart(leveret_server, s, how)
    assert drain(connect(s).channel(), "q") == [(b, True) for b in bodies(10)[4:]]


def test_acked_and_rejected_messages_do_not_come_back_after_sigkill(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    for b in bodies(12):
        ch.basic_publish("", "q", b, PERSISTENT)
    tags = {}
    for _ in range(8):
        m, _p, b = ch.basic_get("q")
        tags[b] = m.delivery_tag
    ch.basic_ack(tags[b"m000"])
    ch.basic_ack(tags[b"m002"], multiple=True)            # m001, m002
    ch.basic_reject(tags[b"m003"], requeue=False)
    ch.basic_nack(tags[b"m004"], requeue=False)
    ch.basic_nack(tags[b"m005"], requeue=True)            # back in the queue, redelivered
    ch.basic_ack(tags[b"m006"])
    # m007 stays delivered and unacked
    assert ch.queue_declare("q", passive=True).method.message_count == 12 - 8 + 1
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert drain(c.channel(), "q") == [(b, True) for b in bodies(12) if b in
                                      (b"m005", b"m007", b"m008", b"m009", b"m010", b"m011")]


def test_acks_by_a_consumer_then_sigkill(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    for b in bodies(30):
        ch.basic_publish("", "q", b, PERSISTENT)
    ch.basic_qos(prefetch_count=5)
    got = []

    def on_msg(chan, m, _p, b):
        got.append(b)
        if len(got) <= 20:
            chan.basic_ack(m.delivery_tag)

    ch.basic_consume("q", on_msg)
    deadline = time.monotonic() + 5
    while len(got) < 25 and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    assert got == bodies(30)[:25]
    ch.queue_declare("q", passive=True)                   # the acks were processed
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert drain(c.channel(), "q") == [(b, True) for b in bodies(30)[20:]]


def test_confirmed_messages_survive_an_immediate_sigkill(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    ch.confirm_delivery()
    for b in bodies(40):
        ch.basic_publish("", "q", b, PERSISTENT)          # returns once the broker confirmed it
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert drain(c.channel(), "q") == [(b, True) for b in bodies(40)]


def test_tx_commit_is_durable_and_rollback_leaves_nothing(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    ch.queue_declare("q2", durable=True)
    ch.tx_select()
    for b in bodies(5, "c"):
        ch.basic_publish("", "q", b, PERSISTENT)
    ch.basic_publish("", "q2", b"other queue", PERSISTENT)
    ch.tx_commit()                                         # commit-ok: fsynced
    for b in bodies(3, "r"):
        ch.basic_publish("", "q", b, PERSISTENT)
    ch.tx_rollback()
    for b in bodies(2, "u"):
        ch.basic_publish("", "q", b, PERSISTENT)          # never committed
    assert count(c, "q") == 5
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    ch = c.channel()
    assert drain(ch, "q") == [(b, True) for b in bodies(5, "c")]
    assert drain(ch, "q2") == [(b"other queue", True)]


def test_tx_acks_are_durable_after_commit(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    for b in bodies(4):
        ch.basic_publish("", "q", b, PERSISTENT)
    ch.tx_select()
    tags = [ch.basic_get("q")[0].delivery_tag for _ in range(3)]
    ch.basic_ack(tags[0])
    ch.tx_commit()
    ch.basic_ack(tags[1])
    ch.tx_rollback()                                       # m001 stays unacked
    ch.queue_declare("q", passive=True)
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert drain(c.channel(), "q") == [(b"m001", True), (b"m002", True), (b"m003", True)]


def test_fanout_copies_are_independent_across_restart(leveret_server, connect):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.exchange_declare("fan", "fanout", durable=True)
    for q in ("f1", "f2", "f3"):
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, "fan")
    ch.confirm_delivery()
    for b in bodies(10):
        ch.basic_publish("fan", "", b, PERSISTENT)
    assert len(drain(ch, "f1")) == 10                     # all acked in f1
    for _ in range(3):
        m = ch.basic_get("f2")[0]
        ch.basic_ack(m.delivery_tag)
    m = ch.basic_get("f3")[0]                             # f3: one delivered, not acked
    ch.queue_declare("f3", passive=True)
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    ch = c.channel()
    assert drain(ch, "f1") == []
    assert drain(ch, "f2") == [(b, True) for b in bodies(10)[3:]]
    assert drain(ch, "f3") == [(b, True) for b in bodies(10)]
    c.close()
    # and what was drained after the first restart stays drained
    s = restart(leveret_server, s, "sigterm")
    c = connect(s)
    assert all(count(c, q) == 0 for q in ("f1", "f2", "f3"))


@HOW
def test_purge_and_delete_are_durable(leveret_server, connect, how):
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    for q in ("purged", "deleted", "recreated"):
        ch.queue_declare(q, durable=True)
        for b in bodies(5, q[0]):
            ch.basic_publish("", q, b, PERSISTENT)
    ch.exchange_declare("x", "direct", durable=True)
    ch.queue_bind("recreated", "x", "old")
    assert ch.queue_purge("purged").method.message_count == 5
    ch.basic_publish("", "purged", b"after purge", PERSISTENT)
    assert ch.queue_delete("deleted").method.message_count == 5
    ch.queue_delete("recreated")
    ch.queue_declare("recreated", durable=True)            # same name, same directory, new log
    ch.basic_publish("", "recreated", b"new", PERSISTENT)
    ch.basic_publish("x", "old", b"old binding went with the queue", PERSISTENT)
    assert count(c, "recreated") == 1
    if how == "sigterm":
        c.close()

    s = restart(leveret_server, s, how)
    c = connect(s)
    ch = c.channel()
    assert not exists(c, "queue", "deleted")
    assert drain(ch, "purged") == [(b"after purge", redelivered(how, False))]
    assert drain(ch, "recreated") == [(b"new", redelivered(how, False))]
    ch.basic_publish("x", "old", b"still unbound", PERSISTENT)
    assert drain(ch, "recreated") == []
    qdir = os.path.join(s.data_dir, "queues", queue_dir_id("/", "deleted"))
    assert not os.path.exists(qdir)


def test_purge_of_a_paged_durable_queue_is_durable(leveret_server, connect):
    """A queue longer than the in-memory window (its tail is on disk only) is purged: after a
    crash none of it comes back, and what was published after the purge does."""
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    for i in range(5000):
        ch.basic_publish("", "q", b"%05d" % i, PERSISTENT)
    assert ch.queue_purge("q").method.message_count == 5000
    for b in bodies(3, "after"):
        ch.basic_publish("", "q", b, PERSISTENT)
    assert count(c, "q") == 3
    s = restart(leveret_server, s, "sigkill")
    assert drain(connect(s).channel(), "q") == [(b, True) for b in bodies(3, "after")]


def test_long_queue_recovers_head_and_paged_tail_in_order(leveret_server, connect):
    """More messages than the in-memory window (4096): the rest is recovered as the paged-out
    tail and read back in order; transient messages paged to disk are not recovered; messages
    published after the recovery queue up behind the recovered tail; once all are consumed the
    next restart finds the queue empty and no segment file left."""
    n = 5000
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.queue_declare("long", durable=True)
    expect = []
    for i in range(n):
        persistent = i % 10 != 3
        b = b"%05d" % i
        ch.basic_publish("", "long", b, PERSISTENT if persistent else TRANSIENT)
        if persistent:
            expect.append(b)
    assert count(c, "long") == n
    s.proc.kill()
    s.proc.wait()

    s = leveret_server(port=s.port, data_dir=s.data_dir)
    c = connect(s)
    assert count(c, "long") == len(expect)
    ch = c.channel()
    new = [b"n%03d" % i for i in range(200)]
    for b in new:
        ch.basic_publish("", "long", b, PERSISTENT)       # queued behind the recovered tail
    expect += new
    assert count(c, "long") == len(expect)
    ch.basic_qos(prefetch_count=500)
    got = []
    ch.basic_consume("long", lambda chan, m, _p, b: (got.append(b), chan.basic_ack(m.delivery_tag)))
    deadline = time.monotonic() + 20
    while len(got) < len(expect) and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    assert got == expect
    ch.queue_declare("long", passive=True)
    c.close()

    s = restart(leveret_server, s, "sigterm")
    c = connect(s)
    assert count(c, "long") == 0
    qdir = os.path.join(s.data_dir, "queues", queue_dir_id("/", "long"))
    left = [f for f in os.listdir(qdir) if f.endswith(".msgs")] if os.path.isdir(qdir) else []
    assert left == []


# --------------------------------------------------------------------------- the data directory
def test_second_broker_on_the_same_data_dir_refuses_to_start(leveret_server, connect, tmp_path):
    s = leveret_server()
    proc = subprocess.run(
        [sys.executable, "-m", "leveret", "serve", "--host", "127.0.0.1", "--port", str(_free_port()),
         "--data-dir", s.data_dir],
        capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    assert "in use" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the first broker is unaffected
    c = connect(s)
    c.channel().queue_declare("still-fine", durable=True)
    assert exists(c, "queue", "still-fine")
    # and the lock goes with the first broker: a restart on the same directory works
    c.close()
    s = restart(leveret_server, s, "sigkill")
    assert exists(connect(s), "queue", "still-fine")


def test_quorum_queue_keeps_every_message_whatever_its_delivery_mode(leveret_server, connect):
    """A quorum queue's messages live in its Raft log: RabbitMQ keeps transient ones too."""
    s = leveret_server()
    c = connect(s)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("qq", durable=True, arguments={"x-queue-type": "quorum"})
    ch.basic_publish("", "qq", b"t", TRANSIENT)
    ch.basic_publish("", "qq", b"p", PERSISTENT)
    s = restart(leveret_server, s, "sigkill")
    c = connect(s)
    assert [b for b, _red in drain(c.channel(), "qq")] == [b"t", b"p"]
