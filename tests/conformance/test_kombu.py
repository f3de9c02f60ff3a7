"""kombu over py-amqp (the stack Celery uses): the calls a Celery worker and client make."""
from __future__ import annotations

import amqp
import kombu
import pytest
from kombu import Connection, Exchange, Producer, Queue


@pytest.fixture
def kconn(broker_url):
    with Connection(broker_url.replace("amqp://", "pyamqp://", 1), heartbeat=0) as c:
        yield c


def test_simple_queue_round_trip(kconn, uniq):
    """SimpleQueue put/get/ack (durable queue, persistent messages)."""
    q = kconn.SimpleQueue(f"{uniq}.simple")
    try:
        q.put({"hello": "world"}, serializer="json")
        msg = q.get(block=True, timeout=5)
        assert msg.payload == {"hello": "world"}
        assert msg.properties["delivery_mode"] == 2
        msg.ack()
    finally:
        q.close()
        with kconn.channel() as ch:
            ch.queue_delete(q.queue.name)


def test_direct_exchange_consumer_with_qos_and_ack(kconn, uniq):
    """A Celery-style topology: direct exchange, bound durable queue, prefetch, manual acks."""
    ex = Exchange(f"{uniq}.x", type="direct", durable=True)
    queue = Queue(f"{uniq}.q", exchange=ex, routing_key="task", durable=True)
    got = []
    with kconn.channel() as ch:
        queue(ch).declare()
        producer = Producer(ch, exchange=ex, routing_key="task", serializer="json")
        for i in range(5):
            producer.publish({"i": i}, retry=False)

        def on_message(body, message):
            got.append(body["i"])
            message.ack()
        with kombu.Consumer(ch, queues=[queue], callbacks=[on_message], prefetch_count=2):
            while len(got) < 5:
                kconn.drain_events(timeout=5)
        queue(ch).delete()
        ex(ch).delete()
    assert got == [0, 1, 2, 3, 4]


def test_reject_requeue_redelivers(kconn, uniq):
    """message.requeue() puts the message back with redelivered set."""
    q = kconn.SimpleQueue(f"{uniq}.rq")
    try:
        q.put("again")
        m1 = q.get(timeout=5)
        assert not m1.delivery_info["redelivered"]
        m1.requeue()
        m2 = q.get(timeout=5)
        assert m2.payload == "again" and m2.delivery_info["redelivered"]
        m2.ack()
    finally:
        q.close()
        with kconn.channel() as ch:
            ch.queue_delete(q.queue.name)


def test_pyamqp_channel_error_text(broker_url, uniq):
    """py-amqp sees RabbitMQ's 404 text for a passive declare of a missing queue."""
    with Connection(broker_url.replace("amqp://", "pyamqp://", 1)) as c:
        ch = c.channel()
        with pytest.raises(amqp.exceptions.NotFound) as ei:
            ch.queue_declare(f"{uniq}.missing", passive=True)
        assert ei.value.reply_text == f"NOT_FOUND - no queue '{uniq}.missing' in vhost '/'"


def test_fanout_broadcast_like_celery_pidbox(kconn, uniq):
    """Auto-delete fanout + exclusive queues (Celery's remote-control mailbox shape)."""
    ex = Exchange(f"{uniq}.pidbox", type="fanout", durable=False, auto_delete=True)
    with kconn.channel() as ch1, kconn.channel() as ch2:
        qs = [Queue(f"{uniq}.node{i}", exchange=ex, exclusive=True, auto_delete=True) for i in (1, 2)]
        for q, ch in zip(qs, (ch1, ch2)):
            q(ch).declare()
        Producer(ch1, exchange=ex, serializer="json").publish({"method": "ping"})
        for q, ch in zip(qs, (ch1, ch2)):
            m = q(ch).get(no_ack=True)      # frames are handled in order: the publish came first
            assert m is not None and m.payload == {"method": "ping"}
