"""The message-lifecycle features through aio-pika (async): TTL and x-expires, length limits and
overflow, dead-lettering, message and consumer priorities, single active consumer, quorum
x-delivery-limit / x-delivery-count, the delayed-message exchange, direct reply-to, policies, the
consumer timeout and deduplication. The pika tests in the neighbouring files pin the details; these
show that an asyncio client sees the same behaviour through its own API.

aio-pika facts relied on (10.x): channels are in confirm mode by default, so ``exchange.publish``
returns the ``Basic.Ack`` frame once the broker has the message and raises
``aio_pika.exceptions.DeliveryError`` (``.frame`` = the ``Basic.Nack``) when it is nacked;
``publish`` is mandatory by default and then returns the returned ``DeliveredMessage`` (``.delivery``
= ``Basic.Return``) instead of raising, unless the channel was opened with ``on_return_raises=True``
(``PublishError``); ``Message(expiration=...)`` takes seconds (int, float, timedelta) and sends
milliseconds, and ``IncomingMessage.expiration`` gives them back in seconds.

Every expectation not marked Leveret-only was observed on RabbitMQ 3.10.8. The delayed-exchange tests
skip on a broker without the x-delayed-message exchange type (probed once); the consumer-timeout
(x-consumer-timeout is RabbitMQ 3.12+) and deduplication (a plugin) tests are Leveret-only.
"""
from __future__ import annotations

import asyncio
import datetime
import re
import time
import uuid

import aio_pika
import aio_pika.exceptions
import pytest
from pamqp import commands as C

from . import test_policies
from .helpers import aio_wait_get, dlx_to, timeout_text

# The policies fixtures of test_policies.py (rabbitmqctl against RabbitMQ, an in-process Leveret
# otherwise), made available to this module.
_pol_module = test_policies._pol_module
pol = test_policies.pol
pre = test_policies.pre

RT = "amq.rabbitmq.reply-to"
DELAYED = "x-delayed-message"
DEDUP = "x-message-deduplication"
DEDUP_HDR = "x-deduplication-header"


# --------------------------------------------------------------------------- fixtures / helpers

@pytest.fixture
async def aconnect(broker_url):
    """Factory ``await aconnect(url=None)`` for aio-pika connections, closed after the test."""
    made = []

    async def make(url=None, robust=False):
        c = await (aio_pika.connect_robust if robust else aio_pika.connect)(url or broker_url)
        made.append(c)
        return c

    yield make
    for c in made:
        if not c.is_closed:
            await c.close()


def msg(body: bytes | str, **props) -> aio_pika.Message:
    return aio_pika.Message(body.encode() if isinstance(body, str) else body, **props)


async def publish(ch, routing_key: str, body, exchange=None, **props):
    """Publish through ``exchange`` (default: the default exchange); returns what aio-pika returns."""
    return await (exchange or ch.default_exchange).publish(msg(body, **props), routing_key=routing_key)


async def message_count(ch, name: str) -> int:
    return (await ch.declare_queue(name, passive=True)).declaration_result.message_count


async def wait_count(ch, name: str, n: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        c = await message_count(ch, name)
        if c == n or time.monotonic() > deadline:
            return c
        await asyncio.sleep(0.01)


async def drain(queue) -> list[bytes]:
    out = []
    while (m := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(m.body)
    return out


async def queue_exists(conn, name: str) -> bool:
    """Passive declare on a channel of its own (a 404 closes that channel)."""
    ch = await conn.channel()
    try:
        await ch.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity as e:
        assert e.args[0] == f"NOT_FOUND - no queue '{name}' in vhost '/'"
        return False
    await ch.close()
    return True


class Recorder:
    """Deliveries of several consumers: (consumer name, body, redelivered)."""

    def __init__(self):
        self.got: list[tuple[str, str, bool]] = []
        self.messages: dict[str, list] = {}

    def cb(self, name: str, ack: bool = False):
        async def on_message(m: aio_pika.abc.AbstractIncomingMessage):
            self.got.append((name, m.body.decode(), m.redelivered))
            self.messages.setdefault(name, []).append(m)
            if ack:
                await m.ack()
        return on_message

    async def wait(self, n: int, timeout: float = 2.0, settle: float = 0.15) -> None:
        """Until n deliveries were recorded, then ``settle`` longer to catch any extra ones."""
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(settle)

    def take(self) -> list[tuple[str, str, bool]]:
        out, self.got = self.got, []
        return out


async def consumer(conn, queue_name: str, rec: Recorder, name: str, prefetch: int = 0,
                   ack: bool = False, no_ack: bool = False, arguments=None):
    """A new channel consuming ``queue_name`` into ``rec``; returns the channel."""
    ch = await conn.channel()
    if prefetch:
        await ch.set_qos(prefetch_count=prefetch)
    q = await ch.get_queue(queue_name, ensure=False)
    await q.consume(rec.cb(name, ack=ack), no_ack=no_ack, arguments=arguments)
    return ch


# --------------------------------------------------------------------------- TTL

async def test_queue_ttl_expires_ready_messages(aconnect, uniq):
    """x-message-ttl: a message taken in time is delivered (without an expiration property); the
    rest are removed once the TTL passed, with no consumer and no client activity."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True, arguments={"x-message-ttl": 250})
    t0 = time.monotonic()
    for body in ("a", "b", "c"):
        assert isinstance(await publish(ch, q.name, body), C.Basic.Ack)
    first = await q.get(no_ack=True)
    assert (first.body, first.expiration, first.properties.expiration) == (b"a", None, None)
    if time.monotonic() - t0 < 0.2:
        assert await message_count(ch, q.name) == 2
    assert await wait_count(ch, q.name, 0) == 0
    assert time.monotonic() - t0 >= 0.22
    assert await q.get(no_ack=True, fail=False) is None


async def test_per_message_expiration_seconds_to_milliseconds(aconnect, uniq):
    """Message(expiration=0.15) is sent as '150' and expires; a timedelta of one minute is sent as
    '60000' and is delivered with the property as sent (IncomingMessage.expiration: 60.0 s)."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True)
    t0 = time.monotonic()
    await publish(ch, q.name, "short", expiration=0.15)
    await publish(ch, q.name, "long", expiration=datetime.timedelta(minutes=1))
    assert await wait_count(ch, q.name, 1) == 1
    assert time.monotonic() - t0 >= 0.13
    m = await q.get(no_ack=True)
    assert (m.body, m.properties.expiration, m.expiration) == (b"long", "60000", 60.0)


@pytest.mark.parametrize("queue_ttl,expiration", [(5000, 0.1), (100, 5)], ids=["message-lower", "queue-lower"])
async def test_lower_of_queue_ttl_and_expiration_applies(aconnect, uniq, queue_ttl, expiration):
    """With x-message-ttl and an expiration property, the lower of the two applies."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True, arguments={"x-message-ttl": queue_ttl})
    t0 = time.monotonic()
    await publish(ch, q.name, "m", expiration=expiration)
    assert await wait_count(ch, q.name, 0) == 0
    assert 0.09 <= time.monotonic() - t0 < 1.5


# --------------------------------------------------------------------------- x-expires

async def test_x_expires_deletes_unused_queue(aconnect, uniq, cleanup):
    """x-expires: an unused queue is deleted (a passive declare then fails 404 with RabbitMQ's text)."""
    conn = await aconnect()
    ch = await conn.channel()
    cleanup.append(uniq)
    await ch.declare_queue(uniq, arguments={"x-expires": 200})
    await publish(ch, uniq, "m")                       # publishing is not a use
    await asyncio.sleep(0.45)
    assert not await queue_exists(conn, uniq)


async def test_x_expires_consumer_keeps_queue_and_cancel_restarts_timer(aconnect, uniq, cleanup):
    """While a consumer exists the queue does not expire; after its cancel it does."""
    conn = await aconnect()
    ch = await conn.channel()
    cleanup.append(uniq)
    q = await ch.declare_queue(uniq, arguments={"x-expires": 200})
    async def ignore(m):
        pass

    tag = await q.consume(ignore, no_ack=True)
    await asyncio.sleep(0.45)
    assert await queue_exists(conn, uniq)
    await q.cancel(tag)
    await asyncio.sleep(0.45)
    assert not await queue_exists(conn, uniq)


# --------------------------------------------------------------------------- length limits

async def test_max_length_drop_head_keeps_newest_and_dead_letters_oldest(aconnect, uniq):
    """x-max-length (default overflow drop-head): the oldest messages are dropped, here dead-lettered
    with reason 'maxlen'; every publish is acked."""
    conn = await aconnect()
    ch = await conn.channel()
    sink = await ch.declare_queue(uniq + ".sink", exclusive=True)
    q = await ch.declare_queue(uniq + ".q", exclusive=True, arguments=dlx_to(sink.name, **{"x-max-length": 2}))
    for i in range(4):
        assert isinstance(await publish(ch, q.name, str(i)), C.Basic.Ack)
    dead = [await aio_wait_get(sink) for _ in range(2)]
    assert [(m.body, m.headers["x-death"][0]["reason"], m.headers["x-first-death-reason"]) for m in dead] == \
        [(b"0", "maxlen", "maxlen"), (b"1", "maxlen", "maxlen")]
    assert await drain(q) == [b"2", b"3"]


async def test_reject_publish_raises_delivery_error(aconnect, uniq):
    """x-overflow reject-publish: the publish over the limit is nacked -> aio-pika raises DeliveryError
    carrying the Basic.Nack; the channel stays open and the queue keeps its oldest message. Without
    confirms the publish just returns None and the message is dropped silently."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ack = await publish(ch, q.name, "in")
    assert isinstance(ack, C.Basic.Ack) and ack.delivery_tag == 1
    with pytest.raises(aio_pika.exceptions.DeliveryError) as ei:
        await publish(ch, q.name, "out")
    assert isinstance(ei.value.frame, C.Basic.Nack)
    # RabbitMQ coalesces nacks: a nack whose lower tags are all settled goes out with multiple=true
    # (a lone basic.ack is sent with multiple=false).
    assert (ei.value.frame.delivery_tag, ei.value.frame.multiple) == (2, True)
    assert not ch.is_closed
    plain = await conn.channel(publisher_confirms=False)
    assert await publish(plain, q.name, "dropped") is None
    assert await message_count(ch, q.name) == 1
    assert await drain(q) == [b"in"]
    assert isinstance(await publish(ch, q.name, "room again"), C.Basic.Ack)


async def test_max_length_bytes_reject_publish(aconnect, uniq):
    """x-max-length-bytes counts body bytes only (headers do not count)."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True,
                               arguments={"x-max-length-bytes": 5, "x-overflow": "reject-publish"})
    await publish(ch, q.name, "abc", headers={"h": "x" * 500})
    await publish(ch, q.name, "de")
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await publish(ch, q.name, "f")
    await publish(ch, q.name, "")
    assert await drain(q) == [b"abc", b"de", b""]


# --------------------------------------------------------------------------- dead-lettering

async def test_dead_letter_by_original_keys_x_death_headers(aconnect, uniq, cleanup_exchanges):
    """A message published to a direct exchange with routing key 'k' and CC ['c'], rejected by an
    aio-pika consumer (reject(requeue=False)), is re-published to the DLX (no dead-letter routing
    key) with its original keys: the sink bound by 'c' gets it, exchange = the DLX, routing key 'k'.
    x-death: one entry (count 1, reason rejected, queue, time as a datetime, exchange, routing-keys
    ['k', 'c']), x-first-death-*; the message's own headers (CC included) are kept."""
    conn = await aconnect()
    ch = await conn.channel()
    src = await ch.declare_exchange(uniq + ".src", aio_pika.ExchangeType.DIRECT, auto_delete=True)
    dlx = await ch.declare_exchange(uniq + ".dlx", aio_pika.ExchangeType.DIRECT, auto_delete=True)
    cleanup_exchanges.extend([src.name, dlx.name])
    q = await ch.declare_queue(uniq + ".q", exclusive=True, arguments={"x-dead-letter-exchange": dlx.name})
    await q.bind(src, "k")
    sink = await ch.declare_queue(uniq + ".sink", exclusive=True)
    await sink.bind(dlx, "c")
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    await src.publish(msg("m", headers={"CC": ["c"], "n": 7}, correlation_id="cid"), routing_key="k")
    async with q.iterator() as it:
        got = await asyncio.wait_for(it.__anext__(), 2)
        await got.reject(requeue=False)
    m = await aio_wait_get(sink)
    assert (m.body, m.exchange, m.routing_key, m.correlation_id) == (b"m", dlx.name, "k", "cid")
    (death,) = m.headers["x-death"]
    when = death.pop("time")
    assert isinstance(when, datetime.datetime)
    assert before - datetime.timedelta(seconds=2) <= when.replace(tzinfo=None) <= before + datetime.timedelta(seconds=5)
    assert death == {"count": 1, "reason": "rejected", "queue": q.name, "exchange": src.name,
                     "routing-keys": ["k", "c"]}
    assert (m.headers["x-first-death-reason"], m.headers["x-first-death-queue"],
            m.headers["x-first-death-exchange"]) == ("rejected", q.name, src.name)
    assert (m.headers["CC"], m.headers["n"]) == (["c"], 7)
    # RabbitMQ 3.13+ adds x-last-death-*; 3.10 (and Leveret's default mode) does not
    assert not [k for k in m.headers if k.startswith("x-last-death-")]


# --------------------------------------------------------------------------- priorities

async def test_priority_queue_get_order(aconnect, uniq):
    """x-max-priority 5: basic.get returns higher priorities first, FIFO within a level; a priority
    above the maximum queues at the maximum (and is delivered as sent). aio-pika always sends a
    priority property: Message() without one is sent (and delivered) with priority 0."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True, arguments={"x-max-priority": 5})
    for body, prio in [("low", 1), ("default", None), ("top", 5), ("over", 9), ("mid", 3), ("top2", 5), ("zero", 0)]:
        await publish(ch, q.name, body, priority=prio)
    out = []
    while (m := await q.get(no_ack=True, fail=False)) is not None:
        out.append((m.body.decode(), m.priority))
    assert out == [("top", 5), ("over", 9), ("top2", 5), ("mid", 3), ("low", 1), ("default", 0), ("zero", 0)]


async def test_priority_queue_consumer_gets_backlog_in_priority_order(aconnect, uniq):
    """A consumer (prefetch 1, acking) gets a waiting backlog in priority order; a high-priority
    message published meanwhile overtakes the rest of the backlog."""
    conn = await aconnect()
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=1)
    q = await ch.declare_queue(uniq, exclusive=True, arguments={"x-max-priority": 10})
    for body, prio in [("a", 1), ("b", 7), ("c", 4), ("d", 7)]:
        await publish(ch, q.name, body, priority=prio)
    got = []
    async with q.iterator() as it:
        first = await asyncio.wait_for(it.__anext__(), 2)
        got.append(first.body.decode())
        await publish(ch, q.name, "urgent", priority=10)
        await first.ack()
        for _ in range(4):
            m = await asyncio.wait_for(it.__anext__(), 2)
            got.append(m.body.decode())
            await m.ack()
    assert got == ["b", "urgent", "d", "c", "a"]


# --------------------------------------------------------------------------- consumer priorities

async def test_highest_priority_consumer_gets_everything(aconnect, uniq):
    """Consumers with x-priority: while the highest can take messages the others get none."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True)
    rec = Recorder()
    await consumer(conn, q.name, rec, "low", no_ack=True)
    await consumer(conn, q.name, rec, "high", no_ack=True, arguments={"x-priority": 10})
    await consumer(conn, q.name, rec, "neg", no_ack=True, arguments={"x-priority": -1})
    await consumer(conn, q.name, rec, "mid", no_ack=True, arguments={"x-priority": 5})
    for i in range(6):
        await publish(ch, q.name, str(i))
    await rec.wait(6)
    assert sorted(rec.take(), key=lambda t: t[1]) == [("high", str(i), False) for i in range(6)]


async def test_blocked_high_priority_consumer_lets_lower_receive(aconnect, uniq):
    """A high-priority consumer with a full prefetch is skipped; once it acks it is served first again."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True)
    rec = Recorder()
    await consumer(conn, q.name, rec, "high", prefetch=1, arguments={"x-priority": 10})
    await consumer(conn, q.name, rec, "low", no_ack=True)
    for i in range(3):
        await publish(ch, q.name, str(i))
    await rec.wait(3)
    assert sorted(rec.take(), key=lambda t: t[1]) == [("high", "0", False), ("low", "1", False), ("low", "2", False)]
    await rec.messages["high"][0].ack()
    await asyncio.sleep(0.05)
    await publish(ch, q.name, "3")
    await rec.wait(1)
    assert rec.take() == [("high", "3", False)]


# --------------------------------------------------------------------------- single active consumer

@pytest.mark.parametrize("qtype", ["classic", "quorum"])
async def test_single_active_consumer_fails_over_on_channel_close(aconnect, uniq, cleanup, qtype):
    """x-single-active-consumer: only the first consumer receives (even when its prefetch is full);
    when its channel closes the next registered consumer takes over and gets the closed channel's
    unacked messages first (redelivered, in their original order), then the backlog -- for classic
    AND quorum queues. (aio-pika closes a channel without cancelling its consumers first; after
    pika's cancel-then-close the order differs, see test_single_active_consumer.py.)"""
    conn = await aconnect()
    ch = await conn.channel()
    name = f"{uniq}.{qtype}"
    cleanup.append(name)
    await ch.declare_queue(name, durable=True,
                           arguments={"x-single-active-consumer": True, "x-queue-type": qtype})
    rec = Recorder()
    a = await consumer(conn, name, rec, "A", prefetch=2)
    await consumer(conn, name, rec, "B", ack=True)
    await consumer(conn, name, rec, "C", ack=True)
    for i in range(5):
        await publish(ch, name, str(i))
    await rec.wait(2)
    assert rec.take() == [("A", "0", False), ("A", "1", False)]
    assert await message_count(ch, name) == 3
    await a.close()
    await rec.wait(5)
    assert rec.take() == [("B", "0", True), ("B", "1", True), ("B", "2", False), ("B", "3", False),
                          ("B", "4", False)]
    await publish(ch, name, "5")
    await rec.wait(1)
    assert rec.take() == [("B", "5", False)]


# --------------------------------------------------------------------------- quorum delivery limit

async def test_quorum_delivery_limit_dead_letters_consumer_path(aconnect, uniq, cleanup):
    """Quorum x-delivery-limit 2: an aio-pika consumer nacking with requeue sees the message 3 times;
    the first delivery has no x-delivery-count, the next ones 1 and 2; the 3rd nack dead-letters it
    with reason 'delivery_limit' (the copy in a classic queue has no x-delivery-count)."""
    conn = await aconnect()
    ch = await conn.channel()
    sink = await ch.declare_queue(uniq + ".dlq", exclusive=True)
    name = uniq + ".qq"
    cleanup.append(name)
    q = await ch.declare_queue(name, durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 2, **dlx_to(sink.name)})
    await publish(ch, name, "m", headers={"a": 1})
    seen = []
    async with q.iterator() as it:
        for _ in range(3):
            m = await asyncio.wait_for(it.__anext__(), 2)
            seen.append((m.redelivered, m.headers))
            await m.nack(requeue=True)
        dead = await aio_wait_get(sink)
    assert seen == [(False, {"a": 1}), (True, {"x-delivery-count": 1, "a": 1}),
                    (True, {"x-delivery-count": 2, "a": 1})]
    assert dead.body == b"m"
    assert "x-delivery-count" not in dead.headers
    (death,) = dead.headers["x-death"]
    assert (death["count"], death["reason"], death["queue"], death["exchange"], death["routing-keys"]) == \
        (1, "delivery_limit", name, "", [name])
    assert dead.headers["x-first-death-reason"] == "delivery_limit"
    assert await q.get(no_ack=True, fail=False) is None


async def test_quorum_delivery_limit_basic_get_counts_from_zero(aconnect, uniq, cleanup):
    """basic.get from a quorum queue always carries x-delivery-count (0 first); with limit 1 the
    second reject(requeue=True) dead-letters the message."""
    conn = await aconnect()
    ch = await conn.channel()
    sink = await ch.declare_queue(uniq + ".dlq", exclusive=True)
    name = uniq + ".qq"
    cleanup.append(name)
    q = await ch.declare_queue(name, durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 1, **dlx_to(sink.name)})
    await publish(ch, name, "m")
    counts = []
    for _ in range(2):
        m = await aio_wait_get(q, no_ack=False)
        counts.append((m.redelivered, m.headers))
        await m.reject(requeue=True)
    assert counts == [(False, {"x-delivery-count": 0}), (True, {"x-delivery-count": 1})]
    dead = await aio_wait_get(sink)
    assert (dead.body, dead.headers["x-death"][0]["reason"]) == (b"m", "delivery_limit")


# --------------------------------------------------------------------------- delayed message exchange

async def test_delayed_exchange_delivers_by_due_time(aconnect, uniq, cleanup_exchanges, delayed_ok):
    """x-delay (ms) holds each message until its due time; no x-delay routes at once. Delivery is by
    due time, and the headers arrive as published."""
    conn = await aconnect()
    ch = await conn.channel()
    x = await ch.declare_exchange(uniq + ".x", DELAYED, arguments={"x-delayed-type": "direct"})
    cleanup_exchanges.append(x.name)
    q = await ch.declare_queue("", exclusive=True)
    await q.bind(x, "k")
    t0 = time.monotonic()
    for body, delay in [("late", 300), ("soon", 100), ("now", None)]:
        headers = {"x-delay": delay} if delay is not None else None
        await x.publish(msg(body, headers=headers), routing_key="k", mandatory=False)
    got = []
    async with q.iterator(no_ack=True) as it:
        for _ in range(3):
            m = await asyncio.wait_for(it.__anext__(), 2)
            got.append((m.body.decode(), m.headers, time.monotonic() - t0))
    assert [(b, h) for b, h, _ in got] == [("now", {}), ("soon", {"x-delay": 100}), ("late", {"x-delay": 300})]
    now, soon, late = (t for _, _, t in got)
    assert now < 0.1
    assert 0.095 <= soon < 0.6
    assert 0.295 <= late < 0.8


async def test_delayed_exchange_mandatory_publish_returned_at_once(aconnect, uniq, cleanup_exchanges, delayed_ok):
    """While held, a delayed message routes nowhere: aio-pika's default mandatory publish gets the
    basic.return (312 NO_ROUTE) back at once; the message is still delivered after the delay."""
    conn = await aconnect()
    ch = await conn.channel()
    x = await ch.declare_exchange(uniq + ".x", DELAYED, arguments={"x-delayed-type": "fanout"})
    cleanup_exchanges.append(x.name)
    q = await ch.declare_queue("", exclusive=True)
    await q.bind(x)
    res = await x.publish(msg("held", headers={"x-delay": 150}), routing_key="any")
    ret = res.delivery
    assert isinstance(ret, C.Basic.Return)
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (312, "NO_ROUTE", x.name, "any")
    assert await q.get(no_ack=True, fail=False) is None
    m = await aio_wait_get(q)
    assert m.body == b"held"


# --------------------------------------------------------------------------- direct reply-to

async def test_direct_reply_to_concurrent_rpc_calls(aconnect, uniq):
    """RPC over amq.rabbitmq.reply-to with a robust connection: several calls in flight, answered by
    the server in reverse order, are matched back by correlation id; every request's reply_to is
    the same amq.rabbitmq.reply-to.* name, which is the routing key of every reply."""
    client = await aconnect(robust=True)
    server = await aconnect()
    sch = await server.channel()
    requests = await sch.declare_queue(uniq + ".rpc", exclusive=True)
    pending: list[aio_pika.abc.AbstractIncomingMessage] = []
    reply_tos = set()

    async def serve(m: aio_pika.abc.AbstractIncomingMessage):
        pending.append(m)
        reply_tos.add(m.reply_to)
        if len(pending) == 3:                       # answer in reverse order
            for req in reversed(pending):
                await sch.default_exchange.publish(
                    msg(req.body.upper(), correlation_id=req.correlation_id),
                    routing_key=req.reply_to, mandatory=False)
                await req.ack()

    await requests.consume(serve)
    cch = await client.channel()
    reply_q = await cch.get_queue(RT)
    futures: dict[str, asyncio.Future] = {}

    async def on_reply(m: aio_pika.abc.AbstractIncomingMessage):
        futures[m.correlation_id].set_result(m)

    await reply_q.consume(on_reply, no_ack=True)

    async def call(body: str):
        cid = str(uuid.uuid4())
        futures[cid] = asyncio.get_running_loop().create_future()
        await cch.default_exchange.publish(msg(body, reply_to=RT, correlation_id=cid), routing_key=requests.name)
        reply = await asyncio.wait_for(futures[cid], 2)
        return cid, reply

    results = await asyncio.gather(call("a"), call("b"), call("c"))
    assert [r.body for _, r in results] == [b"A", b"B", b"C"]
    assert all(cid == r.correlation_id for cid, r in results)
    (name,) = reply_tos
    assert name.startswith(RT + ".")
    assert all((r.exchange, r.routing_key, r.redelivered) == ("", name, False) for _, r in results)


# --------------------------------------------------------------------------- policies

async def test_policy_max_length_reject_publish(pol, pre):
    """A policy {max-length 1, overflow reject-publish} on an existing queue: the aio-pika publish
    over the limit raises DeliveryError (basic.nack)."""
    conn = await aio_pika.connect(pol.url)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(pre + ".q")
        pol.queues.append(q.name)
        await asyncio.to_thread(pol.set, pre, "^" + re.escape(pre) + r"\.q$",
                                {"max-length": 1, "overflow": "reject-publish"}, apply_to="queues")
        await publish(ch, q.name, "1")
        with pytest.raises(aio_pika.exceptions.DeliveryError) as ei:
            await publish(ch, q.name, "2")
        assert isinstance(ei.value.frame, C.Basic.Nack)
        assert await drain(q) == [b"1"]
    finally:
        await conn.close()


async def test_policy_message_ttl_and_dead_letter_exchange(pol, pre):
    """A policy {message-ttl, dead-letter-exchange, dead-letter-routing-key}: messages published
    afterwards expire and are dead-lettered (reason expired, no original-expiration)."""
    conn = await aio_pika.connect(pol.url)
    try:
        ch = await conn.channel()
        sink = await ch.declare_queue(pre + ".sink")
        q = await ch.declare_queue(pre + ".q")
        pol.queues.extend([sink.name, q.name])
        await asyncio.to_thread(pol.set, pre, "^" + re.escape(pre) + r"\.q$",
                                {"message-ttl": 100, "dead-letter-exchange": "",
                                 "dead-letter-routing-key": sink.name}, apply_to="queues")
        t0 = time.monotonic()
        await publish(ch, q.name, "m")
        m = await aio_wait_get(sink)
        assert time.monotonic() - t0 >= 0.09
        (death,) = m.headers["x-death"]
        assert (death["reason"], death["queue"], death["exchange"], death["routing-keys"]) == \
            ("expired", q.name, "", [q.name])
        assert "original-expiration" not in death
        assert await message_count(ch, q.name) == 0
    finally:
        await conn.close()


# --------------------------------------------------------------------------- consumer timeout (Leveret)

async def hold_until_closed(conn, queue_name: str, how: str, timeout: float = 3.0):
    """Open a channel that takes one delivery from ``queue_name`` without acking it (consumer or
    basic.get) -> (channel number, close exception, seconds until the broker closed it)."""
    held = await conn.channel()
    number = held.number
    closed = asyncio.get_running_loop().create_future()

    def on_close(_sender, exc):
        if not closed.done():
            closed.set_result(exc)

    held.close_callbacks.add(on_close)
    q = await held.get_queue(queue_name, ensure=False)
    t0 = time.monotonic()
    if how == "consume":
        got = asyncio.get_running_loop().create_future()

        async def on_message(m):
            if not got.done():
                got.set_result(m)

        await q.consume(on_message)
        await asyncio.wait_for(got, 2)
    else:
        assert (await q.get(no_ack=False)).body == b"m"
    exc = await asyncio.wait_for(closed, timeout)
    return number, exc, time.monotonic() - t0


@pytest.mark.leveret_only
@pytest.mark.parametrize("how", ["consume", "get"])
async def test_x_consumer_timeout_closes_channel(aconnect, uniq, how):
    """x-consumer-timeout 300 ms: a delivery left unacked closes its channel with 406 and RabbitMQ's
    text (ChannelPreconditionFailed in aio-pika); the message is requeued (redelivered)."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue("", exclusive=True, arguments={"x-consumer-timeout": 300})
    await publish(ch, q.name, "m")
    number, exc, elapsed = await hold_until_closed(conn, q.name, how)
    assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
    assert exc.args[0] == timeout_text(number, 300)
    assert 0.28 <= elapsed < 2.0
    assert not conn.is_closed and not ch.is_closed
    m = await aio_wait_get(q)
    assert (m.body, m.redelivered) == (b"m", True)


@pytest.mark.leveret_only
async def test_broker_consumer_timeout_setting(timeout_broker, aconnect):
    """The broker-wide consumer_timeout applies to a queue without x-consumer-timeout."""
    conn = await aconnect(timeout_broker.url)
    ch = await conn.channel()
    q = await ch.declare_queue("", exclusive=True)
    await publish(ch, q.name, "m")
    number, exc, elapsed = await hold_until_closed(conn, q.name, "consume")
    assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
    assert exc.args[0] == timeout_text(number, 300)
    assert 0.28 <= elapsed < 2.0
    assert not conn.is_closed


# --------------------------------------------------------------------------- deduplication (Leveret)

@pytest.mark.leveret_only
async def test_queue_deduplication_nacks_duplicates_until_acked(aconnect, uniq):
    """Queue argument x-message-deduplication: a message whose x-deduplication-header matches one
    in the queue (ready or unacked) is refused -> DeliveryError (basic.nack), not returned although
    aio-pika publishes mandatory; the key is free again once the message is acked."""
    conn = await aconnect()
    ch = await conn.channel()
    q = await ch.declare_queue(uniq, exclusive=True, arguments={DEDUP: True})
    returned = []
    ch.return_callbacks.add(lambda _c, m: returned.append(m))
    assert isinstance(await publish(ch, q.name, "1", headers={DEDUP_HDR: "a"}), C.Basic.Ack)
    with pytest.raises(aio_pika.exceptions.DeliveryError) as ei:
        await publish(ch, q.name, "2", headers={DEDUP_HDR: "a"})
    assert isinstance(ei.value.frame, C.Basic.Nack)
    await publish(ch, q.name, "3", headers={DEDUP_HDR: "b"})
    await publish(ch, q.name, "4")                       # no key: never a duplicate
    first = await q.get(no_ack=False)
    assert first.body == b"1"
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await publish(ch, q.name, "5", headers={DEDUP_HDR: "a"})   # unacked still holds the key
    await first.ack()
    await publish(ch, q.name, "6", headers={DEDUP_HDR: "a"})
    assert await drain(q) == [b"3", b"4", b"6"]
    assert returned == []


@pytest.mark.leveret_only
async def test_deduplication_exchange_duplicate_routes_nowhere(aconnect, uniq, cleanup_exchanges):
    """Exchange type x-message-deduplication (routes like fanout): a duplicate key routes nowhere, so a
    mandatory publish is returned 312 NO_ROUTE (aio-pika with on_return_raises: PublishError)."""
    conn = await aconnect()
    ch = await conn.channel(on_return_raises=True)
    x = await ch.declare_exchange(uniq + ".x", DEDUP, arguments={"x-cache-size": 10})
    cleanup_exchanges.append(x.name)
    q = await ch.declare_queue("", exclusive=True)
    await q.bind(x, "ignored")
    assert isinstance(await x.publish(msg("1", headers={DEDUP_HDR: "k"}), routing_key="any"), C.Basic.Ack)
    with pytest.raises(aio_pika.exceptions.PublishError) as ei:
        await x.publish(msg("2", headers={DEDUP_HDR: "k"}), routing_key="any")
    ret = ei.value.message.delivery
    assert (ret.reply_code, ret.reply_text) == (312, "NO_ROUTE")
    assert isinstance(await x.publish(msg("3", headers={DEDUP_HDR: "k2"}), routing_key="any"), C.Basic.Ack)
    assert await drain(q) == [b"1", b"3"]
