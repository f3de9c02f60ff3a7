"""A queue is bounded by disk, not RAM: publish more than the memory budget into one queue
with no consumer, watch the broker's resident memory stay under the budget, then consume
everything back intact and in order.

The budget is ``--vm-memory-high-watermark`` (as in RabbitMQ, the memory alarm threshold);
queues page to disk long before it. Sizes here are kept small enough for CI; the same test
with ``LEVERET_PAGING_MB=5000`` publishes 5 GB.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time

import pika
import pytest

pytestmark = [pytest.mark.leveret_only, pytest.mark.timeout(600)]

BUDGET_MB = 120
PUBLISH_MB = int(os.environ.get("LEVERET_PAGING_MB", "360"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_kb = 0
        self.running = True

    def run(self):
        while self.running:
            self.max_kb = max(self.max_kb, rss_kb(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        self.running = False
        self.join()
        return self.max_kb


def body_for(i: int, size: int) -> bytes:
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def test_queue_larger_than_memory_budget(leveret_server, tmp_path):
    server = leveret_server("--vm-memory-high-watermark", f"{BUDGET_MB}MB")
    pid = server.proc.pid
    params = pika.URLParameters(server.url)
    params.blocked_connection_timeout = 30     # a memory alarm would block us: fail, don't hang
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("big", durable=True)
    sizes = [1024, 16 * 1024, 128 * 1024, 300 * 1024]     # 300 KiB spans body frames and read chunks
    sampler = RssSampler(pid)
    sampler.start()
    total = n = 0
    while total < PUBLISH_MB * 1_000_000:
        size = sizes[n % len(sizes)]
        # half persistent, half transient: both must page
        ch.basic_publish("", "big", body_for(n, size),
                         pika.BasicProperties(delivery_mode=2 if n % 2 else 1, message_id=str(n)))
        total += size
        n += 1
    publish_max = sampler.max_kb
    assert ch.queue_declare("big", passive=True).method.message_count == n
    on_disk = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(server.data_dir) for f in fs)
    assert on_disk > PUBLISH_MB * 1_000_000 * 0.9, "the messages should be on disk"
    assert publish_max < BUDGET_MB * 1000, f"RSS {publish_max} kB while publishing {PUBLISH_MB} MB"
    # one file per segment would be ~45 descriptors here (~640 for 5 GB): finished segments are closed
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert fds < 40, f"{fds} open descriptors"

    ch.basic_qos(prefetch_count=100)
    seen = 0
    for method, props, body in ch.consume("big", inactivity_timeout=5):
        assert method is not None, f"stalled after {seen} of {n}"
        assert props.message_id == str(seen), "order"
        assert body == body_for(seen, sizes[seen % len(sizes)]), f"message {seen} corrupt"
        ch.basic_ack(method.delivery_tag)
        seen += 1
        if seen == n:
            break
    ch.cancel()
    peak = sampler.stop()
    assert ch.queue_declare("big", passive=True).method.message_count == 0
    print(f"\n{n} messages, {total / 1e6:.0f} MB published; peak RSS publishing {publish_max / 1000:.1f} MB, "
          f"overall {peak / 1000:.1f} MB (budget {BUDGET_MB} MB)")
    assert peak < BUDGET_MB * 1000, f"RSS peaked at {peak} kB (budget {BUDGET_MB} MB)"
    conn.close()
    # the acked messages' segments are reclaimed
    time.sleep(0.5)
    qdir = os.path.join(server.data_dir, "queues")
    left = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(qdir) for f in fs)
    assert left < 20 * 1024 * 1024, f"{left} bytes still on disk after everything was acked"


@pytest.mark.parametrize("durable", [True, False])
def test_purge_and_delete_of_a_paged_queue(leveret_server, durable):
    server = leveret_server()
    conn = pika.BlockingConnection(pika.URLParameters(server.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("paged", durable=durable)
    big = 64 * 1024
    n = 40 * 1024 * 1024 // big                 # 40 MiB: well past the 8 MiB in-memory head
    for i in range(n):
        ch.basic_publish("", "paged", body_for(i, big), pika.BasicProperties(delivery_mode=2 if i % 3 else 1))
    assert ch.queue_purge("paged").method.message_count == n
    assert ch.queue_declare("paged", passive=True).method.message_count == 0
    qdir = os.path.join(server.data_dir, "queues" if durable else "transient")
    left = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(qdir) for f in fs)
    assert left < 10 * 1024 * 1024, f"{left} bytes left after purge"
    # the queue still works, in order, across the in-memory head and a fresh tail
    for i in range(n):
        ch.basic_publish("", "paged", body_for(1000 + i, big), pika.BasicProperties(message_id=str(i)))
    ch.basic_qos(prefetch_count=20)
    seen = 0
    for method, props, body in ch.consume("paged", inactivity_timeout=5):
        assert method is not None
        assert props.message_id == str(seen) and body == body_for(1000 + seen, big)
        ch.basic_ack(method.delivery_tag)
        seen += 1
        if seen == n:
            break
    ch.cancel()
    for i in range(n):
        ch.basic_publish("", "paged", body_for(i, big), pika.BasicProperties(delivery_mode=2))
    assert ch.queue_delete("paged").method.message_count == n
    conn.close()
