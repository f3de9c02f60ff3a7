"""A quorum queue whose tail is paged out to disk: an explicit requeue (nack, reject, recover)
puts the message at the very back, behind the paged-out tail, as rabbit_fifo does (a fresh
entry at the end of its log) -- with its redelivered flag and ``x-delivery-count``.

Leveret-only: RabbitMQ does not page this way; a small in-memory window (``ram_msgs``) makes
the broker page after a few messages."""
from __future__ import annotations

import pika
import pytest
from inproc import ThreadedBroker

pytestmark = pytest.mark.leveret_only

N = 12          # messages published; the window keeps 4 in memory, the rest is paged out


@pytest.fixture
def paging_broker(tmp_path):
    b = ThreadedBroker(data_dir=str(tmp_path), ram_msgs=4, ram_bytes=1 << 20)
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.parametrize("settle", ["nack", "reject", "recover"])
def test_explicit_requeue_goes_behind_the_paged_tail(paging_broker, settle):
    conn = pika.BlockingConnection(pika.URLParameters(paging_broker.url))
    try:
        ch = conn.channel()
        ch.queue_declare("qq", durable=True, arguments={"x-queue-type": "quorum"})
        ch.confirm_delivery()
        for i in range(N):
            ch.basic_publish("", "qq", str(i).encode(), pika.BasicProperties(delivery_mode=2))
        method, _, body = ch.basic_get("qq")
        assert body == b"0" and not method.redelivered
        if settle == "nack":
            ch.basic_nack(method.delivery_tag, requeue=True)
        elif settle == "reject":
            ch.basic_reject(method.delivery_tag, requeue=True)
        else:
            ch.basic_recover(requeue=True)
        got = []
        for _ in range(N):
            method, props, body = ch.basic_get("qq", auto_ack=True)
            got.append((int(body), method.redelivered, props.headers["x-delivery-count"]))
        assert got == [(i, False, 0) for i in range(1, N)] + [(0, True, 1)]
        assert ch.queue_declare("qq", passive=True).method.message_count == 0
    finally:
        conn.close()
