"""Lifecycle state across restarts and kill -9: TTL deadlines, dead-lettering after recovery,
priority order, queue expiry leases, policies and delayed messages kept in the data directory.

Each test runs a private Leveret on a data directory, restarts it (SIGTERM or SIGKILL) on the
same directory and port, and checks through pika what a client would see afterwards.
"""
from __future__ import annotations

import json
import time

import pika
import pika.exceptions
import pytest
from conformance.helpers import count as _count, drain_get as drain, wait_count as _wait
from test_durability import connect, restart  # noqa: F401  (fixture and helper)

pytestmark = pytest.mark.leveret_only

BOTH = pytest.mark.parametrize("how", ["sigterm", "sigkill"])


@BOTH
def test_ttl_deadline_survives_a_restart(leveret_server, connect, tmp_path, how):  # noqa: F811
    """A persistent message in a durable TTL queue keeps its deadline (the record's expires_at):
    after the restart it is still there before the deadline and dead-lettered at it, with x-death."""
    s = leveret_server(data_dir=str(tmp_path))
    c = connect(s)
    ch = c.channel()
    ch.confirm_delivery()
    ch.exchange_declare("dlx", "fanout", durable=True)
    ch.queue_declare("dead", durable=True)
    ch.queue_bind("dead", "dlx")
    ch.queue_declare("q", durable=True, arguments={"x-message-ttl": 2500, "x-dead-letter-exchange": "dlx"})
    t0 = time.monotonic()
    # (the shorter deadline first: only the head expires)
    ch.basic_publish("", "q", b"own-ttl", pika.BasicProperties(delivery_mode=2, expiration="1500"))
    ch.basic_publish("", "q", b"queue-ttl", pika.BasicProperties(delivery_mode=2))
    if how == "sigterm":
        c.close()
    s2 = restart(leveret_server, s, how)
    ch2 = connect(s2).channel()
    if time.monotonic() - t0 > 1.3:
        pytest.skip("the restart took too long for this test's timing")
    assert _count(ch2, "q") == 2
    assert _wait(ch2, "dead", 1, 1.5 - (time.monotonic() - t0) + 0.5) == 1
    assert time.monotonic() - t0 >= 1.5 - 0.05
    assert _wait(ch2, "dead", 2, 2.5 - (time.monotonic() - t0) + 0.5) == 2
    assert time.monotonic() - t0 >= 2.5 - 0.05
    got = []
    for _ in range(2):
        _m, p, body = ch2.basic_get("dead", auto_ack=True)
        got.append((body, p.headers["x-death"][0]["reason"], p.headers["x-death"][0]["queue"]))
    assert got == [(b"own-ttl", "expired", "q"), (b"queue-ttl", "expired", "q")]
    assert _count(ch2, "q") == 0


def test_message_expired_while_down_is_dead_lettered_at_start(leveret_server, connect, tmp_path):  # noqa: F811
    """A message whose deadline passed while the broker was stopped expires right after start."""
    s = leveret_server(data_dir=str(tmp_path))
    ch = connect(s).channel()
    ch.confirm_delivery()
    ch.queue_declare("dead", durable=True)
    ch.queue_declare("q", durable=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", "q", b"m", pika.BasicProperties(delivery_mode=2, expiration="300"))
    assert s.stop() == 0
    time.sleep(0.5)
    s2 = leveret_server(port=s.port, data_dir=s.data_dir)
    ch2 = connect(s2).channel()
    assert _wait(ch2, "dead", 1, 1.0) == 1
    assert _count(ch2, "q") == 0


@BOTH
def test_priority_order_survives_a_restart(leveret_server, connect, tmp_path, how):  # noqa: F811
    s = leveret_server(data_dir=str(tmp_path))
    ch = connect(s).channel()
    ch.confirm_delivery()
    ch.queue_declare("pq", durable=True, arguments={"x-max-priority": 5})
    for body, prio in ((b"low", 1), (b"high", 5), (b"none", None), (b"mid", 3), (b"high2", 9)):
        ch.basic_publish("", "pq", body, pika.BasicProperties(delivery_mode=2, priority=prio))
    s2 = restart(leveret_server, s, how)
    ch2 = connect(s2).channel()
    assert [b for b, _ in drain(ch2, "pq")] == [b"high", b"high2", b"mid", b"low", b"none"]


def test_queue_expiry_lease_restarts_at_boot(leveret_server, connect, tmp_path):  # noqa: F811
    """A durable queue with x-expires is not deleted by the restart itself, even after a downtime
    longer than its lease: the lease starts again at boot (as RabbitMQ's does); unused, it then
    expires. (Any queue.declare renews the lease, so the queue is looked at only twice.)"""
    s = leveret_server(data_dir=str(tmp_path))
    ch = connect(s).channel()
    ch.queue_declare("eq", durable=True, arguments={"x-expires": 1000})
    assert s.stop() == 0
    time.sleep(1.2)                                     # longer than the lease
    s2 = leveret_server(port=s.port, data_dir=s.data_dir)
    c2 = connect(s2)
    c2.channel().queue_declare("eq", passive=True)      # still there (and the lease renewed)
    time.sleep(1.5)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        c2.channel().queue_declare("eq", passive=True)
    assert ei.value.reply_code == 404


def test_policy_survives_a_crash(leveret_server, connect, tmp_path):  # noqa: F811
    """A policy loaded from a definitions file is durable: after kill -9 and a restart *without*
    the file it still applies (max-length 2, drop-head)."""
    defs = tmp_path / "defs.json"
    defs.write_text(json.dumps({"policies": [{"vhost": "/", "name": "cap", "pattern": "^capped\\.",
                                              "apply-to": "queues", "definition": {"max-length": 2},
                                              "priority": 0}]}))
    data = tmp_path / "data"
    data.mkdir()
    s = leveret_server("--definitions", str(defs), data_dir=str(data))
    ch = connect(s).channel()
    ch.queue_declare("capped.a", durable=True)
    s.proc.kill()
    s.proc.wait()
    s2 = leveret_server(port=s.port, data_dir=str(data))
    ch2 = connect(s2).channel()
    ch2.confirm_delivery()
    for i in range(4):
        ch2.basic_publish("", "capped.a", b"%d" % i, pika.BasicProperties(delivery_mode=2))
    assert [b for b, _ in drain(ch2, "capped.a")] == [b"2", b"3"]
