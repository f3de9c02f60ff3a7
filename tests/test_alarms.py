"""Memory and disk alarms, as pika sees them (connection.blocked / connection.unblocked).

The broker runs in-process so the test can move its limits at run time, as
``rabbitmqctl set_disk_free_limit`` / ``set_vm_memory_high_watermark`` do; the
clients are real pika connections over TCP. Expected behaviour was taken from
RabbitMQ 3.10's ``rabbit_reader`` and checked against a running RabbitMQ:
only a connection that publishes while an alarm is on is blocked (and told
so, once); it is not read until every alarm clears; consumers keep consuming.
"""
from __future__ import annotations

import time

import pika
import pytest

from inproc import ThreadedBroker

pytestmark = pytest.mark.leveret_only


@pytest.fixture
def broker(tmp_path):
    b = ThreadedBroker(data_dir=str(tmp_path), monitor_interval=0.05)
    yield b
    b.stop()


def connect(url: str):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    events: list = []
    conn.add_on_connection_blocked_callback(lambda c, m: events.append(("blocked", m.method.reason)))
    conn.add_on_connection_unblocked_callback(lambda c, m: events.append(("unblocked", None)))
    return conn, events


def pump(conn, events, want: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(events) < want and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)


def queue_len(ch, name: str) -> int:
    return ch.queue_declare(name, passive=True).method.message_count


@pytest.mark.parametrize("alarm, reason", [("disk", "low on disk"), ("memory", "low on memory")])
def test_publisher_blocked_consumer_served_then_unblocked(broker, alarm, reason):
    mon = broker.broker.monitor
    pub, pub_events = connect(broker.url)
    idle, idle_events = connect(broker.url)
    cons, _ = connect(broker.url)
    cch = cons.channel()
    cch.queue_declare("alarm-q")
    got: list = []
    cch.basic_consume("alarm-q", lambda ch, m, p, b: (got.append(b), ch.basic_ack(m.delivery_tag)))
    pch = pub.channel()
    pch.basic_publish("", "alarm-q", b"before")
    deadline = time.monotonic() + 5
    while got != [b"before"] and time.monotonic() < deadline:
        cons.process_data_events(time_limit=0.05)
    assert got == [b"before"]

    if alarm == "disk":
        broker.call(mon.set_disk_free_limit, "1000000TB")
    else:
        broker.call(mon.set_memory_high_watermark, 1000)
    assert broker.call(lambda: broker.broker.alarm_text) == reason
    # nobody has published since the alarm: nobody is told anything yet
    pump(pub, pub_events, 1, timeout=0.3)
    assert pub_events == []

    pch.basic_publish("", "alarm-q", b"during")
    pump(pub, pub_events, 1)
    assert pub_events == [("blocked", reason)]
    # the blocked publisher is not read: its message has not reached the queue ...
    cons.process_data_events(time_limit=0.3)
    assert got == [b"before"]
    # ... while a consuming connection is still served
    assert queue_len(cch, "alarm-q") == 0
    idle.process_data_events(time_limit=0.2)
    assert idle_events == []

    if alarm == "disk":
        broker.call(mon.set_disk_free_limit, "50MB")
    else:
        broker.call(mon.set_memory_high_watermark, 0.4)
    assert broker.call(lambda: broker.broker.alarm_text) is None
    pump(pub, pub_events, 2)
    assert pub_events == [("blocked", reason), ("unblocked", None)]
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        cons.process_data_events(time_limit=0.05)
    assert got == [b"before", b"during"]
    assert idle_events == []
    for c in (pub, idle, cons):
        c.close()


def test_both_alarms_one_block_one_unblock(broker):
    mon = broker.broker.monitor
    pub, events = connect(broker.url)
    ch = pub.channel()
    ch.queue_declare("alarm-both")
    broker.call(mon.set_disk_free_limit, "1000000TB")
    broker.call(mon.set_memory_high_watermark, 1000)
    ch.basic_publish("", "alarm-both", b"x")
    pump(pub, events, 1)
    assert events == [("blocked", "low on disk & memory")]
    broker.call(mon.set_disk_free_limit, "50MB")          # memory alarm still on: still blocked
    pub.process_data_events(time_limit=0.3)
    assert events == [("blocked", "low on disk & memory")]
    broker.call(mon.set_memory_high_watermark, 0.4)
    pump(pub, events, 2)
    assert events[-1] == ("unblocked", None)
    assert queue_len(ch, "alarm-both") == 1
    pub.close()


def test_connection_opened_during_alarm_blocks_on_first_publish(broker):
    mon = broker.broker.monitor
    broker.call(mon.set_disk_free_limit, "1000000TB")
    pub, events = connect(broker.url)
    ch = pub.channel()
    ch.queue_declare("alarm-late")          # declaring is not publishing: answered
    pub.process_data_events(time_limit=0.2)
    assert events == []
    ch.basic_publish("", "alarm-late", b"x")
    pump(pub, events, 1)
    assert events == [("blocked", "low on disk")]
    broker.call(mon.set_disk_free_limit, 0)
    pump(pub, events, 2)
    assert queue_len(ch, "alarm-late") == 1
    pub.close()


def test_blocked_connection_survives_missing_heartbeats(tmp_path):
    """RabbitMQ pauses its heartbeat monitor while a connection is blocked."""
    b = ThreadedBroker(data_dir=str(tmp_path), monitor_interval=0.05, heartbeat=1)
    try:
        params = pika.URLParameters(b.url + "?heartbeat=1")
        conn = pika.BlockingConnection(params)
        events: list = []
        conn.add_on_connection_blocked_callback(lambda c, m: events.append("blocked"))
        ch = conn.channel()
        ch.queue_declare("alarm-hb")
        b.call(b.broker.monitor.set_disk_free_limit, "1000000TB")
        ch.basic_publish("", "alarm-hb", b"x")
        conn.process_data_events(time_limit=0.5)
        assert events == ["blocked"]
        # pika sends heartbeats only from process_data_events; stay silent for > 2 intervals
        time.sleep(3.0)
        b.call(b.broker.monitor.set_disk_free_limit, 0)
        conn.process_data_events(time_limit=0.5)
        assert conn.is_open
        assert ch.queue_declare("alarm-hb", passive=True).method.message_count == 1
        conn.close()
    finally:
        b.stop()
