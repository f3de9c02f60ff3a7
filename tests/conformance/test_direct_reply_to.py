"""Conformance tests for direct reply-to (the ``amq.rabbitmq.reply-to`` pseudo-queue).

Every expectation here was observed on RabbitMQ 3.10.8; reply codes and texts are exact.
The opaque part of the rewritten reply-to name is broker-specific; only its prefix is pinned.
"""
from __future__ import annotations

import asyncio
import time

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as C

from .helpers import closed_with, wait_count

RT = "amq.rabbitmq.reply-to"
PREFIX = RT + "."


# --------------------------------------------------------------------------- helpers

def pump(*conns, until=lambda: False, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        for c in conns:
            if c.is_open:
                c.process_data_events(0.01)


def settle(*conns, seconds: float = 0.15) -> None:
    pump(*conns, timeout=seconds)


def sync(chan) -> None:
    """A round trip on ``chan``: anything the broker objects to before it shows up now."""
    chan.queue_declare("", exclusive=True)


class Requester:
    """A channel consuming amq.rabbitmq.reply-to (no-ack) and collecting replies."""

    def __init__(self, conn, **consume_kw):
        self.conn = conn
        self.ch = conn.channel()
        self.replies: list[tuple] = []           # (method, properties, body)
        self.tag = self.ch.basic_consume(RT, lambda c, m, p, b: self.replies.append((m, p, b)),
                                         auto_ack=True, **consume_kw)

    def reply_name(self, server_ch, q: str) -> str:
        """Publish a request to ``q`` with reply_to=amq.rabbitmq.reply-to; return the name the
        server side sees."""
        self.ch.basic_publish("", q, b"req", pika.BasicProperties(reply_to=RT, correlation_id="c"))
        deadline = time.monotonic() + 2
        while True:
            m, p, _ = server_ch.basic_get(q, auto_ack=True)
            if m is not None:
                return p.reply_to
            assert time.monotonic() < deadline, "request never arrived"
            time.sleep(0.01)


@pytest.fixture
def server(connect):
    """(connection, channel, request queue) of the responding side."""
    conn = connect()
    chan = conn.channel()
    q = chan.queue_declare("", exclusive=True).method.queue
    return conn, chan, q


# --------------------------------------------------------------------------- round trip

def test_round_trip(conn, server):
    """The broker rewrites reply_to to 'amq.rabbitmq.reply-to.<opaque>'; a reply published to that
    name on the default exchange is delivered to the requesting channel's reply consumer:
    exchange '', routing key = the full name, redelivered false, properties and body intact."""
    _sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    assert name.startswith(PREFIX) and len(name) > len(PREFIX), name
    assert name.isprintable() and " " not in name
    sch.basic_publish("", name, b"resp", pika.BasicProperties(correlation_id="c", content_type="text/plain",
                                                               headers={"h": 1}))
    pump(conn, until=lambda: req.replies)
    settle(conn)
    [(m, p, body)] = req.replies
    assert (m.consumer_tag, m.exchange, m.routing_key, m.redelivered) == (req.tag, "", name, False)
    assert (p.correlation_id, p.content_type, p.headers, body) == ("c", "text/plain", {"h": 1}, b"resp")


def test_reply_name_stable_per_channel_distinct_across_channels(conn, server):
    """Every request from one channel gets the same reply name (also when published through another
    exchange); another channel's name differs, and replies go to the right channel."""
    _sconn, sch, q = server
    a, b = Requester(conn), Requester(conn)
    name_a = a.reply_name(sch, q)
    assert a.reply_name(sch, q) == name_a
    sch.queue_bind(q, "amq.fanout")
    a.ch.basic_publish("amq.fanout", "", b"req", pika.BasicProperties(reply_to=RT))
    assert wait_count(sch, q, 1) == 1
    assert sch.basic_get(q, auto_ack=True)[1].reply_to == name_a
    name_b = b.reply_name(sch, q)
    assert name_b != name_a and name_b.startswith(PREFIX)
    sch.basic_publish("", name_b, b"to-b")
    sch.basic_publish("", name_a, b"to-a")
    pump(conn, until=lambda: a.replies and b.replies)
    settle(conn)
    assert [x[2] for x in a.replies] == [b"to-a"]
    assert [x[2] for x in b.replies] == [b"to-b"]


@pytest.mark.parametrize("reply_to", [RT + ".xyz", "plain", RT + "x", RT.upper()])
def test_other_reply_to_values_untouched(conn, server, reply_to):
    """Only the exact value 'amq.rabbitmq.reply-to' is rewritten (and needs a reply consumer)."""
    _sconn, sch, q = server
    ch = conn.channel()
    ch.basic_publish("", q, b"r", pika.BasicProperties(reply_to=reply_to))
    assert wait_count(sch, q, 1) == 1
    assert sch.basic_get(q, auto_ack=True)[1].reply_to == reply_to


def test_replies_do_not_use_up_delivery_tags(conn, server):
    """RabbitMQ quirk: a reply is sent with the channel's NEXT delivery tag without advancing it,
    so consecutive replies share a tag and the next real delivery on the channel reuses it."""
    _sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    got = []
    own_q = req.ch.queue_declare("", exclusive=True).method.queue
    req.ch.basic_consume(own_q, lambda c, m, p, b: got.append((b, m.delivery_tag)))
    sch.basic_publish("", name, b"r1")
    sch.basic_publish("", name, b"r2")
    pump(conn, until=lambda: len(req.replies) == 2)
    sch.basic_publish("", own_q, b"n1")
    pump(conn, until=lambda: got)
    sch.basic_publish("", name, b"r3")
    pump(conn, until=lambda: len(req.replies) == 3)
    assert [(b, m.delivery_tag) for m, _, b in req.replies] == [(b"r1", 1), (b"r2", 1), (b"r3", 2)]
    assert got == [(b"n1", 1)]


def test_reply_with_publisher_confirms(conn, server):
    """A confirmed (non-mandatory) reply is acked and delivered."""
    _sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    sch.confirm_delivery()
    sch.basic_publish("", name, b"resp")                  # raises on nack/return
    pump(conn, until=lambda: req.replies)
    assert [x[2] for x in req.replies] == [b"resp"]


def test_mandatory_reply_is_delivered_and_returned(conn, server):
    """A mandatory reply reaches the requester AND comes back as basic.return 312 NO_ROUTE (the
    pseudo-queue does not count as a route)."""
    sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    returns = []
    sch.add_on_return_callback(lambda c, m, p, b: returns.append((m.reply_code, m.reply_text, m.exchange,
                                                                   m.routing_key, b)))
    sch.basic_publish("", name, b"resp", mandatory=True)
    pump(conn, sconn, until=lambda: req.replies and returns)
    assert [x[2] for x in req.replies] == [b"resp"]
    assert returns == [(312, "NO_ROUTE", "", name, b"resp")]


def test_reply_through_other_exchange_not_delivered(conn, server):
    """Only the default exchange delivers to a reply name; through amq.direct it is just unroutable."""
    _sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    sch.basic_publish("amq.direct", name, b"lost")
    sch.basic_publish("", name, b"ok")
    pump(conn, until=lambda: req.replies)
    settle(conn)
    assert [x[2] for x in req.replies] == [b"ok"]


def test_consume_on_several_channels_and_exclusive(conn, server):
    """Each channel may have its own reply consumer; the exclusive flag is accepted."""
    _sconn, sch, q = server
    a = Requester(conn, exclusive=True)
    b = Requester(conn)
    assert a.reply_name(sch, q) != b.reply_name(sch, q)


def test_reply_consumer_tag_server_generated(rawc):
    """An empty consumer tag gets a server-generated 'amq.ctag-...' tag, as for ordinary consumers."""
    c = rawc()
    c.open_channel(1)
    c.send_method(1, C.Basic.Consume(queue=RT, consumer_tag="", no_ack=True))
    tag = c.expect(C.Basic.ConsumeOk, 1).consumer_tag
    assert tag.startswith("amq.ctag-") and len(tag) == len("amq.ctag-") + 22


# --------------------------------------------------------------------------- errors

def test_consume_with_acks_refused(ch):
    """Consuming amq.rabbitmq.reply-to with no_ack=false: 406."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(RT, lambda *a: None, auto_ack=False)
    closed_with(ei, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")


def test_second_consume_on_same_channel_refused(conn):
    """A channel can have only one reply consumer."""
    req = Requester(conn)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        req.ch.basic_consume(RT, lambda *a: None, auto_ack=True)
    closed_with(ei, 406, "PRECONDITION_FAILED - reply consumer already set")


@pytest.mark.parametrize("routable", [True, False])
def test_publish_reply_to_without_consumer_refused(conn, server, routable):
    """Publishing with reply_to=amq.rabbitmq.reply-to from a channel without a reply consumer closes
    the channel (whether or not the message is routable)."""
    _sconn, sch, q = server
    ch = conn.channel()
    if routable:
        ch.basic_publish("", q, b"r", pika.BasicProperties(reply_to=RT))
    else:
        ch.basic_publish("amq.direct", "nowhere", b"r", pika.BasicProperties(reply_to=RT))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        sync(ch)
    closed_with(ei, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")
    assert wait_count(sch, q, 0) == 0


def test_cancel_reply_consumer(conn, server):
    """basic.cancel of the reply consumer works; replies to its name are then dropped, and new
    requests with reply_to=amq.rabbitmq.reply-to are refused."""
    sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    req.ch.basic_cancel(req.tag)
    sch.basic_publish("", name, b"dropped")
    settle(conn, sconn)
    assert req.replies == []
    assert sch.is_open
    req.ch.basic_publish("", q, b"r", pika.BasicProperties(reply_to=RT))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        sync(req.ch)
    closed_with(ei, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")


# --------------------------------------------------------------------------- declare / other methods

@pytest.mark.parametrize("kw", [dict(passive=True), dict(), dict(durable=True, exclusive=True, auto_delete=True)],
                         ids=["passive", "plain", "flags"])
@pytest.mark.parametrize("consuming", [False, True])
def test_declare_pseudo_queue(conn, kw, consuming):
    """queue.declare of amq.rabbitmq.reply-to (passive or not, any flags) always answers
    declare-ok(amq.rabbitmq.reply-to, message_count 0, consumer_count 1), with or without consumer."""
    ch = Requester(conn).ch if consuming else conn.channel()
    ok = ch.queue_declare(RT, **kw).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (RT, 0, 1)


@pytest.mark.parametrize("passive", [True, False])
def test_declare_reply_name_live_then_gone(connect, conn, server, passive):
    """queue.declare of a rewritten reply name succeeds (0 messages, 1 consumer) while the requesting
    channel's reply consumer exists, and is 404 once that channel is closed."""
    _sconn, sch, q = server
    req = Requester(conn)
    name = req.reply_name(sch, q)
    ok = sch.queue_declare(name, passive=passive).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)
    req.ch.close()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        connect().channel().queue_declare(name, passive=passive)
    closed_with(ei, 404, f"NOT_FOUND - no queue '{name}' in vhost '/'")


@pytest.mark.parametrize("suffix", ["abc", "", "a.b.c"])
def test_declare_garbled_reply_name(ch, suffix):
    """queue.declare of a reply name that decodes to no live channel: 404. (RabbitMQ 3.10 crashes the
    channel -- connection.close 541 INTERNAL_ERROR -- for suffixes shaped '<a>.<b>' that fail to
    decode, e.g. 'x.y'; that defect is not pinned.)"""
    name = PREFIX + suffix
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(name, passive=True)
    closed_with(ei, 404, f"NOT_FOUND - no queue '{name}' in vhost '/'")


@pytest.mark.parametrize("method", ["get", "purge", "bind"])
def test_pseudo_queue_is_not_a_queue_for_other_methods(ch, method):
    """basic.get, queue.purge and queue.bind on amq.rabbitmq.reply-to: 404 like a missing queue."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        if method == "get":
            ch.basic_get(RT)
        elif method == "purge":
            ch.queue_purge(RT)
        else:
            ch.queue_bind(RT, "amq.direct", "k")
    closed_with(ei, 404, f"NOT_FOUND - no queue '{RT}' in vhost '/'")


# --------------------------------------------------------------------------- stale / garbled names

def stale_and_garbled(conn, sch, q):
    req = Requester(conn)
    name = req.reply_name(sch, q)
    req.ch.close()
    return [name, PREFIX + "garbage", name[:-4] + "AAA=", name + "x", RT]


def test_publish_to_stale_or_garbled_name_mandatory_returned(conn, server):
    """A mandatory publish to a reply name of a closed channel, to a garbled one, or to the bare
    pseudo-queue name comes back as basic.return 312 NO_ROUTE; the channel stays open."""
    sconn, sch, q = server
    names = stale_and_garbled(conn, sch, q)
    returns = []
    sch.add_on_return_callback(lambda c, m, p, b: returns.append((m.reply_code, m.reply_text, m.routing_key)))
    for n in names:
        sch.basic_publish("", n, b"x", mandatory=True)
    pump(sconn, until=lambda: len(returns) == len(names))
    assert returns == [(312, "NO_ROUTE", n) for n in names]
    assert sch.is_open


def test_publish_to_stale_or_garbled_name_dropped(conn, server):
    """Without mandatory such replies vanish silently; with confirms they are still acked."""
    _sconn, sch, q = server
    names = stale_and_garbled(conn, sch, q)
    sch.confirm_delivery()
    for n in names:
        sch.basic_publish("", n, b"x")                      # raises on nack
    sync(sch)
    assert sch.is_open


# --------------------------------------------------------------------------- aio-pika

async def test_aio_pika_rpc_round_trip(broker_url):
    """aio-pika RPC over direct reply-to: the client consumes the pseudo-queue (found by a passive
    declare), the server replies to message.reply_to on the default exchange; replies are matched by
    correlation id. aio-pika publishes mandatory by default: that reply comes back as basic.return
    312 NO_ROUTE although it was delivered; a non-mandatory reply is simply acked."""
    client = await aio_pika.connect(broker_url)
    server_conn = await aio_pika.connect(broker_url)
    try:
        sch = await server_conn.channel()
        requests = await sch.declare_queue("", exclusive=True)
        publish_results = []

        async def serve(msg: aio_pika.abc.AbstractIncomingMessage):
            async with msg.process():
                n = int(msg.body)
                res = await sch.default_exchange.publish(
                    aio_pika.Message(str(n * n).encode(), correlation_id=msg.correlation_id),
                    routing_key=msg.reply_to, mandatory=(n == 3))
                publish_results.append((n, msg.reply_to, res))

        await requests.consume(serve)

        cch = await client.channel()
        reply_q = await cch.get_queue(RT)                       # passive declare
        assert reply_q.name == RT
        futures: dict[str, asyncio.Future] = {}

        async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage):
            futures.pop(msg.correlation_id).set_result(msg)

        tag = await reply_q.consume(on_reply, no_ack=True)

        async def call(n: int) -> aio_pika.abc.AbstractIncomingMessage:
            cid = f"call-{n}"
            futures[cid] = asyncio.get_running_loop().create_future()
            await cch.default_exchange.publish(
                aio_pika.Message(str(n).encode(), reply_to=RT, correlation_id=cid),
                routing_key=requests.name)
            return await asyncio.wait_for(futures[cid], 2)

        replies = [await call(n) for n in (2, 3, 4)]
        for _ in range(100):                                    # the last publish's confirm may lag
            if len(publish_results) == 3:
                break
            await asyncio.sleep(0.01)
        assert [r.body for r in replies] == [b"4", b"9", b"16"]
        assert [r.correlation_id for r in replies] == ["call-2", "call-3", "call-4"]
        assert all(r.consumer_tag == tag and r.exchange == "" and r.redelivered is False for r in replies)
        names = {rt for _, rt, _ in publish_results}
        assert len(names) == 1
        (name,) = names
        assert name.startswith(PREFIX)
        assert all(r.routing_key == name for r in replies)
        kinds = {n: res for n, _, res in publish_results}
        assert isinstance(kinds[2], C.Basic.Ack) and isinstance(kinds[4], C.Basic.Ack)
        ret = kinds[3].delivery
        assert isinstance(ret, C.Basic.Return)
        assert (ret.reply_code, ret.reply_text, ret.routing_key) == (312, "NO_ROUTE", name)
    finally:
        await client.close()
        await server_conn.close()


async def test_aio_pika_consume_with_ack_refused(broker_url):
    """aio-pika: consuming the pseudo-queue with acks closes the channel with 406."""
    conn = await aio_pika.connect(broker_url)
    try:
        ch = await conn.channel()
        q = await ch.get_queue(RT)
        async def on_message(message):
            pass

        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed) as ei:
            await q.consume(on_message, no_ack=False)
        assert ei.value.args[0] == "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    finally:
        await conn.close()
