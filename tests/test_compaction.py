"""Disk use tracks what is still queued: a log segment kept alive only by a message that stays
unacked (or requeued at the head) is compacted — the message's record moves to the end of the
log and the segment is deleted — and the message is still correct afterwards and across a
restart."""
from __future__ import annotations

import os
import time

import pika
import pytest
from inproc import ThreadedBroker

pytestmark = pytest.mark.leveret_only

MB = 1024 * 1024


def segments(data_dir: str) -> list[str]:
    qroot = os.path.join(data_dir, "queues")
    return sorted(f for d in os.listdir(qroot) for f in os.listdir(os.path.join(qroot, d)) if f.endswith(".msgs"))


def start(data_dir: str) -> ThreadedBroker:
    return ThreadedBroker(data_dir=data_dir, monitor_interval=0.05, compact_interval=0.2)


def fill(url: str, n: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("cq", durable=True)
    for i in range(n):
        ch.basic_publish("", "cq", bytes([i]) * MB, pika.BasicProperties(delivery_mode=2, message_id=str(i)))
    conn.close()


def drain_rest(url: str, n: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for _ in range(n):
        method, _props, _body = ch.basic_get("cq")
        ch.basic_ack(method.delivery_tag)
    conn.close()


def wait_until(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("then", ["ack", "requeue"])
def test_segment_pinned_by_one_message_is_compacted(tmp_path, then):
    data = str(tmp_path)
    b = start(data)
    try:
        fill(b.url, 30)                                   # 30 MiB: four 8 MiB segments
        assert segments(data)[0] == "00000001.msgs" and len(segments(data)) >= 4
        holder = pika.BlockingConnection(pika.URLParameters(b.url))
        hch = holder.channel()
        method, props, body = hch.basic_get("cq")         # message 0, left unacked
        assert props.message_id == "0"
        drain_rest(b.url, 29)
        # segment 1 now holds one live record among eight: it goes once compaction moved it
        assert wait_until(lambda: "00000001.msgs" not in segments(data)), segments(data)
        assert len(segments(data)) <= 2
        if then == "ack":
            hch.basic_ack(method.delivery_tag)
            holder.close()
            count = 0
        else:
            holder.close()                                # requeued: back at the head
            count = 1
        c = pika.BlockingConnection(pika.URLParameters(b.url))
        assert c.channel().queue_declare("cq", passive=True).method.message_count == count
        c.close()
    finally:
        b.stop()
    b = start(data)                                       # clean restart
    try:
        c = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = c.channel()
        assert ch.queue_declare("cq", passive=True).method.message_count == count
        if count:
            method, props, body = ch.basic_get("cq", auto_ack=True)
            assert props.message_id == "0" and body == bytes([0]) * MB
            assert method.redelivered
        c.close()
    finally:
        b.stop()
