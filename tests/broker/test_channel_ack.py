"""The one-pass multiple ack of ``Channel.ack``, pinned to the general settle path.

A consumer acking every N deliveries sends ``basic.ack(multiple=True)``; outside
transactions, ``Channel.ack`` handles that in one pass over the unacked map (ack
each message and count them per queue and consumer, then give each batch its
credit back and let its queue deliver, in RabbitMQ's batch order) instead of
``_collect`` + ``_settle`` with their intermediate lists; a single ack has its
own shortcut. It must leave everything exactly as the general path does,
down to the order in which the freed queues deliver again, since that order
decides the delivery tags the client sees next. (It did not: the general path
refilled them in set order, i.e. by memory address, so even two identical
brokers could number the same deliveries differently; both now go in the order
of each queue's first settled message.)

So two fresh brokers get the same generated session: several queues (one of
them quorum, which counts redeliveries into a header), consumers on two
channels with different prefetch limits (some no-ack), publishes spread over
the queues, then multiple and single acks, nacks and rejects with and without
requeue, basic.get, cancels, recover, global qos and a socket that stops and
resumes taking data, with queues in memory or paging to disk. In one broker
``Channel.ack`` runs as written; in the other every ack goes through
``_settle(_collect(...))``. After every step the bytes sent to the client, each
queue's ready and paged-out messages, unacked count and stat counters, each
consumer's credit and each channel's unacked map must be equal. A counter
proves the one-pass branch really ran.
"""
from __future__ import annotations

import contextlib
import struct
import tempfile
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leveret import Broker
from leveret.amqp import spec
from leveret.amqp.codec import BasicProperties
from leveret.amqp.frames import method_frame
from leveret.settings import Settings
from leveret.broker.channel import Channel
from leveret.broker.connection import BrokerConnection

from broker_harness import opening_frames

QUEUES = ["qa", "qb", "qc", "qd"]         # qc is a quorum queue; qd has no consumer (basic.get)
CONSUMERS = [("a1", 1, "qa"), ("b1", 1, "qb"), ("c1", 1, "qc"), ("a2", 1, "qa"),
             ("b3", 3, "qb"), ("c3", 3, "qc")]     # (tag, channel, queue)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def publish(queue: str, body: bytes) -> bytes:
    """A publish on channel 2 (the publisher) to ``queue`` through the default exchange."""
    return (method_frame(2, spec.BasicPublish(exchange="", routing_key=queue))
            + frame(2, 2, struct.pack(">HHQ", 60, 0, len(body)) + BasicProperties().encode())
            + (frame(3, 2, body) if body else b""))


def opening(prefetch: list, no_ack: list) -> bytes:
    """Handshake, channels 1-3, the queues and the consumers (each with its own prefetch)."""
    parts = [opening_frames((1, 2, 3))]
    for q in QUEUES:
        quorum = q == "qc"
        parts.append(method_frame(2, spec.QueueDeclare(
            queue=q, durable=quorum, arguments={"x-queue-type": "quorum"} if quorum else {})))
    for (tag, ch, q), n, na in zip(CONSUMERS, prefetch, no_ack):
        parts.append(method_frame(ch, spec.BasicQos(prefetch_count=n)))
        parts.append(method_frame(ch, spec.BasicConsume(queue=q, consumer_tag=tag, no_ack=na)))
    return b"".join(parts)


class Session:
    """One broker and its client connection; a snapshot of everything observable after each step."""

    def __init__(self, broker: Broker, start: bytes):
        self.broker = broker
        self.conn = BrokerConnection(self.broker, ("127.0.0.1", 40000))
        self.snapshots: list = []
        self.step(start)

    def tag(self, ch: int, i: int) -> int | None:
        """The i-th (mod n) unacked delivery tag of channel ``ch``, None if there is none."""
        s = self.conn.sessions.get(ch)
        tags = list(s.unacked) if s is not None else []
        return tags[i % len(tags)] if tags else None

    def step(self, data: bytes) -> None:
        self.conn.receive_data(data)
        c = self.conn
        v = self.broker.vhosts["/"]
        self.snapshots.append({
            "out": c.data_to_send(),
            "queues": {q.name: ([(m.id, m.header, m.body) for m in q.ready], q.tail, q.unacked_count,
                                q.stat_deliver + q.stat_deliver_noack, sorted(q.redelivered),
                                [x.tag for x in q.consumers])
                       for q in v.queues.values()},
            "channels": {n: ([(t, m.id, q.name, x.tag if x else None) for t, (m, q, x) in s.unacked.items()],
                             s.volume, s.next_tag, {x.tag: x.unacked for x in s.consumers.values()})
                         for n, s in c.sessions.items()},
        })


def frames_for(session: Session, op: tuple) -> bytes:
    """The client's frames for ``op``, delivery tags resolved against the session's state."""
    kind, ch, i, flag, requeue = op
    if kind == "publish":       # 1-6 messages to one queue
        return b"".join(publish(QUEUES[i % 4], bytes([i]) * (i % 7)) for _ in range(1 + i // 4 % 6))
    if kind == "ack all":
        return method_frame(ch, spec.BasicAck(delivery_tag=0, multiple=True))
    if kind == "get":
        return method_frame(ch, spec.BasicGet(queue=QUEUES[i % 4], no_ack=flag))
    if kind == "cancel":
        tag, ch, _ = CONSUMERS[i % len(CONSUMERS)]
        return method_frame(ch, spec.BasicCancel(consumer_tag=tag))
    if kind == "recover":
        return method_frame(ch, spec.BasicRecover(requeue=True))
    if kind == "global qos":
        return method_frame(ch, spec.BasicQos(prefetch_count=i % 4, global_=True))
    tag = session.tag(ch, i)
    if tag is None:
        return b""
    if kind == "ack":
        return method_frame(ch, spec.BasicAck(delivery_tag=tag, multiple=flag))
    if kind == "nack":
        return method_frame(ch, spec.BasicNack(delivery_tag=tag, multiple=flag, requeue=requeue))
    return method_frame(ch, spec.BasicReject(delivery_tag=tag, requeue=requeue))


def run(start: bytes, ops: list, one_pass: bool, paging: bool) -> tuple[list, int]:
    """Play ``ops``; ``one_pass=False`` sends every ack through ``_settle(_collect(...))``;
    ``paging``: queues keep one message in memory, the rest in their log on disk. Returns the
    snapshots and how many acks the one-pass branch handled."""
    hits = collects = 0
    ack, collect = Channel.ack, Channel._collect

    def counted(self, tag, multiple):
        nonlocal hits
        before = collects
        ack(self, tag, multiple)
        hits += collects == before          # settled without _collect: the one-pass branch

    def general(self, tag, multiple):
        assert not self.tx                  # (these sessions never use transactions)
        self._settle(self._collect(tag, multiple, 80), False, False)

    def counting_collect(self, *args):
        nonlocal collects
        collects += 1
        return collect(self, *args)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(Channel, "ack", counted if one_pass else general))
        stack.enter_context(mock.patch.object(Channel, "_collect", counting_collect))
        if paging:
            broker = Broker(Settings(data_dir=stack.enter_context(tempfile.TemporaryDirectory()), ram_msgs=1))
            stack.callback(broker.store.close)
        else:
            broker = Broker()
        s = Session(broker, start)
        for op in ops:
            if op[0] == "unwritable":      # publishes to two queues held back, then both resume
                s.conn.set_writable(False)
                s.step(frames_for(s, ("publish", 1, op[2], False, False))
                       + frames_for(s, ("publish", 1, op[2] + 1, False, False)))
                s.conn.set_writable(True)
                s.step(b"")
            else:
                s.step(frames_for(s, op))
    return s.snapshots, hits


KINDS = ["publish"] * 4 + ["ack"] * 6 + ["ack all", "nack", "reject", "get", "cancel", "recover", "global qos",
                                         "unwritable"]
prefetches = st.sampled_from([1, 1, 2, 3, 0])       # mostly limited: queues keep ready messages
rarely = st.integers(0, 4).map(lambda n: n == 0)       # no-ack consumers drain their queue
ops = st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from([1, 3]), st.integers(0, 50),
                         st.booleans(), st.booleans()), min_size=1, max_size=40)


@EXAMPLES
@given(st.lists(prefetches, min_size=6, max_size=6), st.lists(rarely, min_size=6, max_size=6), ops, st.booleans())
def test_one_pass_ack_matches_settle(prefetch, no_ack, steps, paging):
    """The same session with and without the one-pass branch: equal after every step. It
    starts with 18 messages per queue and a multiple ack on channel 1, where a1 acks."""
    start = opening(prefetch, [False] + no_ack[1:])
    warm = [("publish", 1, 20 + q, False, False) for q in range(4)] * 3 + [("ack", 1, 3, True, False)]
    fast, hits = run(start, warm + steps, True, paging)
    general, none = run(start, warm + steps, False, paging)
    assert hits >= 1 and none == 0
    for i, (a, b) in enumerate(zip(fast, general)):
        assert a == b, f"step {i}"
