"""Conformance tests for the consumer acknowledgement timeout.

RabbitMQ closes a channel with 406 when its oldest unacknowledged delivery is older than the
consumer timeout. RabbitMQ 3.10.8 only has the global ``consumer_timeout`` (default 1800000 ms),
captured by each channel when it opens, and checks it on the channel's tick
(``channel_tick_interval``, default 60000 ms) -- so a delivery is noticed up to one tick late.
The per-queue ``x-consumer-timeout`` argument is RabbitMQ 3.12+; Leveret supports it (and a broker
setting), and those tests are Leveret-only.

The RabbitMQ-only test changes both settings at run time with ``rabbitmqctl eval`` (the reference
broker runs on this machine) and restores them; it is skipped against any other broker.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse

import pika
import pika.exceptions
import pytest

from .helpers import is_rabbitmq, pump, timeout_text, wait_count


def wait_closed(conn: pika.BlockingConnection, chan, timeout: float) -> float:
    """Process I/O until ``chan`` is closed by the broker; return the seconds it took."""
    t0 = time.monotonic()
    while chan.is_open and time.monotonic() - t0 < timeout:
        try:
            conn.process_data_events(0.02)
        except pika.exceptions.ChannelClosedByBroker:
            break
    return time.monotonic() - t0


def close_reason(chan) -> tuple[int, str]:
    reason = chan._closing_reason
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker), reason
    return reason.reply_code, reason.reply_text


def hold_unacked(conn, q: str, how: str):
    """A new channel holding one unacked delivery from ``q`` (by consumer or by basic.get)."""
    chan = conn.channel()
    if how == "consume":
        got = []
        chan.basic_consume(q, lambda c, m, p, b: got.append(m))
        pump(conn, lambda: got, timeout=2)
        assert got, "no delivery"
    else:
        m, _, _ = chan.basic_get(q)
        assert m is not None
    return chan


# --------------------------------------------------------------------------- RabbitMQ (global setting)

def rabbitmqctl_eval(expr: str) -> None:
    subprocess.run(["rabbitmqctl", "eval", expr], check=True, capture_output=True, timeout=30)


@pytest.fixture
def rabbit_consumer_timeout(conn, broker_url):
    """Returns set(ms): makes channels opened until restore() use consumer timeout ``ms`` and makes
    channel ticks every 100 ms. restore() puts consumer_timeout back; the tick interval is put back at
    teardown. Skips unless the broker is a local RabbitMQ with rabbitmqctl."""
    host = urllib.parse.urlparse(broker_url).hostname
    if not is_rabbitmq(conn) or shutil.which("rabbitmqctl") is None or host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs the local RabbitMQ reference broker and rabbitmqctl")

    class Ctl:
        def set(self, ms: int) -> None:
            rabbitmqctl_eval(f"application:set_env(rabbit, channel_tick_interval, 100), "
                             f"application:set_env(rabbit, consumer_timeout, {ms}).")

        def restore(self) -> None:
            rabbitmqctl_eval("application:set_env(rabbit, consumer_timeout, 1800000).")

    ctl = Ctl()
    try:
        yield ctl
    finally:
        rabbitmqctl_eval("application:set_env(rabbit, consumer_timeout, 1800000), "
                         "application:set_env(rabbit, channel_tick_interval, 60000).")


@pytest.mark.parametrize("how", ["consume", "get"])
def test_rabbitmq_global_consumer_timeout_closes_channel(connect, rabbit_consumer_timeout, uniq, how):
    """An unacked delivery (to a consumer, or by basic.get) older than consumer_timeout closes its
    channel with 406 and the exact text (channel number and timeout in ms); the connection stays
    open and the message is requeued (redelivered=true)."""
    conn = connect()
    ch = conn.channel()
    q = ch.queue_declare(uniq, exclusive=True).method.queue
    ch.basic_publish("", q, b"m")
    assert wait_count(ch, q, 1) == 1
    rabbit_consumer_timeout.set(500)
    try:
        held = conn.channel()                 # captures consumer_timeout=500 when it opens
    finally:
        rabbit_consumer_timeout.restore()     # keep the window short: other channels are not affected
    t0 = time.monotonic()
    if how == "consume":
        got = []
        held.basic_consume(q, lambda c, m, p, b: got.append(b))
        while not got and time.monotonic() - t0 < 2:
            conn.process_data_events(0.01)
        assert got == [b"m"]
    else:
        assert held.basic_get(q)[2] == b"m"
    waited = wait_closed(conn, held, 10)
    assert not held.is_open
    assert close_reason(held) == (406, timeout_text(held.channel_number, 500))
    assert 0.5 <= time.monotonic() - t0 < 5, waited
    assert conn.is_open and ch.is_open
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert (body, m.redelivered) == (b"m", True)


# --------------------------------------------------------------------------- Leveret: per queue

@pytest.mark.leveret_only
@pytest.mark.parametrize("how", ["consume", "get"])
def test_x_consumer_timeout_per_queue(conn, uniq, how):
    """x-consumer-timeout (ms) on the queue: an unacked delivery older than that closes the channel
    with RabbitMQ's text, naming the queue's timeout; the message is requeued."""
    ch = conn.channel()
    q = ch.queue_declare(uniq, exclusive=True, arguments={"x-consumer-timeout": 300}).method.queue
    ch.basic_publish("", q, b"m")
    assert wait_count(ch, q, 1) == 1
    t0 = time.monotonic()
    held = hold_unacked(conn, q, how)
    wait_closed(conn, held, 5)
    elapsed = time.monotonic() - t0
    assert not held.is_open
    assert close_reason(held) == (406, timeout_text(held.channel_number, 300))
    assert 0.3 <= elapsed < 2.0, elapsed
    assert conn.is_open and ch.is_open
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert (body, m.redelivered) == (b"m", True)


@pytest.mark.leveret_only
def test_x_consumer_timeout_acked_in_time_keeps_channel(conn, uniq):
    """Deliveries acked within the timeout never trip it, however long the consumer runs."""
    ch = conn.channel()
    q = ch.queue_declare(uniq, exclusive=True, arguments={"x-consumer-timeout": 300}).method.queue
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    acked = []

    def on_msg(c, m, p, body):
        c.basic_ack(m.delivery_tag)
        acked.append(body)

    cch.basic_consume(q, on_msg)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 0.9:
        ch.basic_publish("", q, str(i).encode())
        i += 1
        conn.process_data_events(0.1)
    conn.process_data_events(0.1)
    assert cch.is_open
    assert len(acked) == i


@pytest.mark.leveret_only
def test_x_consumer_timeout_applies_per_delivery_queue(conn, uniq):
    """The timeout that counts is that of the queue the unacked delivery came from: a channel that
    also consumes (and promptly acks) from a 300 ms queue is not closed for a delivery it holds
    from a queue without the argument (broker default: 30 min)."""
    ch = conn.channel()
    fast = ch.queue_declare(uniq + ".fast", exclusive=True, arguments={"x-consumer-timeout": 300}).method.queue
    slow = ch.queue_declare(uniq + ".slow", exclusive=True).method.queue
    ch.basic_publish("", slow, b"m")
    assert wait_count(ch, slow, 1) == 1
    held = hold_unacked(conn, slow, "get")
    acked = []

    def on_msg(c, m, p, body):
        c.basic_ack(m.delivery_tag)
        acked.append(body)

    held.basic_consume(fast, on_msg)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.9:
        ch.basic_publish("", fast, b"f")
        conn.process_data_events(0.1)
    assert held.is_open
    assert len(acked) >= 5


# --------------------------------------------------------------------------- Leveret: broker setting

@pytest.mark.leveret_only
def test_broker_consumer_timeout_setting(timeout_broker):
    """The broker-wide consumer_timeout applies to queues without x-consumer-timeout."""
    conn = pika.BlockingConnection(pika.URLParameters(timeout_broker.url))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"m")
        assert wait_count(ch, q, 1) == 1
        t0 = time.monotonic()
        held = hold_unacked(conn, q, "consume")
        wait_closed(conn, held, 5)
        assert close_reason(held) == (406, timeout_text(held.channel_number, 300))
        assert 0.3 <= time.monotonic() - t0 < 2.0
        assert conn.is_open
    finally:
        if conn.is_open:
            conn.close()


@pytest.mark.leveret_only
def test_queue_argument_overrides_broker_setting(timeout_broker):
    """x-consumer-timeout on the queue takes precedence over the broker setting (here: longer)."""
    conn = pika.BlockingConnection(pika.URLParameters(timeout_broker.url))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True, arguments={"x-consumer-timeout": 60000}).method.queue
        ch.basic_publish("", q, b"m")
        assert wait_count(ch, q, 1) == 1
        held = hold_unacked(conn, q, "get")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.9:
            conn.process_data_events(0.05)
        assert held.is_open
    finally:
        if conn.is_open:
            conn.close()
