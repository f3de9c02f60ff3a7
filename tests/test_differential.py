"""Differential test: random sequences of AMQP operations run against Leveret and RabbitMQ side
by side, and every observable result must be the same (method, reply code and text, message
counts, bodies, redelivered flags, routing).

Runs when ``LEVERET_DIFF_RABBITMQ_URL`` names a RabbitMQ (``scripts/rabbitmq-conformance`` sets
it); Leveret is the session's own broker. ``LEVERET_DIFF_SEQUENCES`` / ``LEVERET_DIFF_STEPS``
make the run longer, ``LEVERET_DIFF_SEED0`` picks other seeds; a failure prints the seed and the operation log to replay it.
"""
from __future__ import annotations

import os
import random
import re
import time
import uuid

import pika
import pika.exceptions
import pytest

RABBIT = os.environ.get("LEVERET_DIFF_RABBITMQ_URL")
SEQUENCES = int(os.environ.get("LEVERET_DIFF_SEQUENCES", "12"))
STEPS = int(os.environ.get("LEVERET_DIFF_STEPS", "60"))
SEED0 = int(os.environ.get("LEVERET_DIFF_SEED0", "0"))

pytestmark = pytest.mark.skipif(
    not RABBIT or bool(os.environ.get("LEVERET_TEST_URL")),
    reason="needs LEVERET_DIFF_RABBITMQ_URL (a RabbitMQ) and the session's own Leveret")

KEYS = ["a", "b", "a.b", "a.b.c", "", "#", "*", "*.b", "a.#", "#.c"]
XTYPES = ["direct", "fanout", "topic", "headers"]


class Side:
    """One broker: connection A with a confirm-mode channel (0) and a plain channel (1), and a
    second connection B (channel 2) that sees A's exclusive queues as locked."""

    def __init__(self, url: str):
        self.url = url
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.conn_b = pika.BlockingConnection(pika.URLParameters(url))
        self.chans: dict[int, pika.adapters.blocking_connection.BlockingChannel] = {}

    def reconnect_b(self) -> None:
        """Close connection B (its exclusive queues go, its unacked messages are requeued)."""
        self.chans.pop(2, None)
        if self.conn_b.is_open:
            self.conn_b.close()
        self.conn_b = pika.BlockingConnection(pika.URLParameters(self.url))

    def chan(self, i: int):
        ch = self.chans.get(i)
        if ch is None or not ch.is_open:
            conn = self.conn_b if i == 2 else self.conn
            if not conn.is_open:
                raise RuntimeError("connection closed")
            ch = conn.channel()
            if i == 0:
                ch.confirm_delivery()
            self.chans[i] = ch
        return ch

    def close(self):
        for c in (self.conn, self.conn_b):
            if c.is_open:
                c.close()


GEN = re.compile(r"amq\.gen-[A-Za-z0-9_-]{22}")


def norm(text: str, prefix: str) -> str:
    """Make a reply text broker-independent: our prefix and server-generated names masked."""
    return GEN.sub("amq.gen-*", text.replace(prefix, "~"))


def run_op(side: Side, op: tuple, prefix: str):
    """Perform one operation; return a comparable, broker-independent result."""
    kind, ch_i, args = op

    def qn(name: str) -> str:         # "" stays "": the last queue declared on the channel
        return prefix + name if name else ""
    try:
        ch = side.chan(ch_i)
        if kind == "qdeclare":
            name, durable, passive, exclusive = args
            r = ch.queue_declare(qn(name), durable=durable, passive=passive, exclusive=exclusive)
            return ("ok", norm(r.method.queue, prefix), r.method.message_count, r.method.consumer_count)
        if kind == "xdeclare":
            name, xtype, durable, passive, auto_delete = args
            ch.exchange_declare(prefix + name, xtype, durable=durable, passive=passive,
                                auto_delete=auto_delete)
            return ("ok",)
        if kind == "bind":
            q, x, key, hdr = args
            ch.queue_bind(qn(q), prefix + x, key, arguments=hdr)
            return ("ok",)
        if kind == "unbind":
            q, x, key, hdr = args
            ch.queue_unbind(qn(q), prefix + x, key, arguments=hdr)
            return ("ok",)
        if kind == "xbind":
            d, s, key = args
            ch.exchange_bind(prefix + d, prefix + s, key)
            return ("ok",)
        if kind == "xunbind":
            d, s, key = args
            ch.exchange_unbind(prefix + d, prefix + s, key)
            return ("ok",)
        if kind == "reject":
            tag, requeue = args
            ch.basic_reject(tag, requeue=requeue)
            ch.basic_qos(prefetch_count=0)
            return ("ok",)
        if kind == "publish":
            x, key, body, mandatory, headers = args
            exch = prefix + x if x else ""
            rk = prefix + key if key.startswith("q") else key
            try:
                ch.basic_publish(exch, rk, body, pika.BasicProperties(headers=headers), mandatory=mandatory)
            except pika.exceptions.UnroutableError:
                return ("returned",)
            if ch_i != 0:
                ch.basic_qos(prefetch_count=0)      # no confirms here: a round trip shows errors
            return ("ok",)
        if kind == "get":
            q, auto_ack = args
            m, p, body = ch.basic_get(qn(q), auto_ack=auto_ack)
            if m is None:
                return ("empty",)
            return ("msg", body, m.redelivered, m.message_count, m.delivery_tag,
                    norm(m.exchange, prefix), norm(m.routing_key, prefix))
        if kind == "ack":
            tag, multiple = args
            ch.basic_ack(tag, multiple=multiple)
            ch.basic_qos(prefetch_count=0)          # a round trip, so an error shows here
            return ("ok",)
        if kind == "nack":
            tag, multiple, requeue = args
            ch.basic_nack(tag, multiple=multiple, requeue=requeue)
            ch.basic_qos(prefetch_count=0)
            return ("ok",)
        if kind == "purge":
            r = ch.queue_purge(qn(args[0]))
            return ("ok", r.method.message_count)
        if kind == "qdelete":
            q, if_empty = args
            r = ch.queue_delete(qn(q), if_empty=if_empty)
            return ("ok", r.method.message_count)
        if kind == "xdelete":
            x, if_unused = args
            ch.exchange_delete(prefix + x, if_unused=if_unused)
            return ("ok",)
        if kind == "recover":
            ch.basic_recover(requeue=True)
            return ("ok",)
        if kind == "tx":
            getattr(ch, "tx_" + args[0])()
            return ("ok",)
        if kind == "close":
            ch.close()
            return ("ok",)
        if kind == "reconnect":
            side.reconnect_b()
            return ("ok",)
        raise AssertionError(kind)
    except pika.exceptions.ChannelClosedByBroker as e:
        return ("channel-closed", e.reply_code, norm(e.reply_text, prefix))
    except pika.exceptions.ConnectionClosedByBroker as e:
        return ("connection-closed", e.reply_code, norm(e.reply_text, prefix))


def random_op(rng: random.Random, tags: dict | None = None) -> tuple:
    """One random operation. ``tags``: channel -> delivery tags outstanding (from earlier gets),
    so acks and nacks mostly name real deliveries."""
    q = rng.choice(["q0", "q1", "q2", "q0", "q1", "q2", ""])    # "": server-named / last declared
    x = rng.choice(["x0", "x1"])
    ch = rng.choice([0, 0, 1, 2])
    hdr = {"x-match": rng.choice(["all", "any"]), "h": rng.choice([1, "v"])} if rng.random() < 0.2 else None
    kind = rng.choices(
        ["qdeclare", "xdeclare", "bind", "unbind", "xbind", "publish", "get", "ack", "nack",
         "purge", "qdelete", "xdelete", "recover", "close", "tx", "xunbind", "reject", "reconnect"],
        [10, 8, 10, 3, 3, 25, 15, 5, 4, 2, 2, 2, 2, 1, 4, 2, 2, 1])[0]
    if kind == "qdeclare":
        return (kind, ch, (q, rng.random() < 0.2, rng.random() < 0.15, rng.random() < 0.1))
    if kind == "xdeclare":
        return (kind, ch, (x, rng.choice(XTYPES), rng.random() < 0.2, rng.random() < 0.15,
                           rng.random() < 0.2))
    if kind in ("bind", "unbind"):
        return (kind, ch, (q, x, rng.choice(KEYS), hdr))
    if kind in ("xbind", "xunbind"):
        return (kind, ch, (rng.choice(["x0", "x1"]), x, rng.choice(KEYS)))
    if kind == "publish":
        target = rng.choice(["", "x0", "x1"])
        key = rng.choice(["q0", "q1", "q2"]) if target == "" else rng.choice(KEYS)
        headers = {"h": rng.choice([1, "v", 2])} if rng.random() < 0.5 else None
        pch = rng.choice([0, 0, 1])      # channel 0 confirms (returns are seen); 1 may be in tx
        return (kind, pch, (target, key, uuid.UUID(int=rng.getrandbits(128)).bytes[:6],
                            pch == 0 and rng.random() < 0.4, headers))
    if kind == "tx":
        return (kind, 1, (rng.choice(["select", "select", "commit", "rollback"]),))
    known = (tags or {}).get(ch)
    if kind == "reconnect":
        return (kind, 2, ())
    if kind in ("ack", "nack", "reject") and not known and rng.random() < 0.7:
        kind = "get"           # mostly ack what was delivered
    if kind == "get":
        return (kind, ch, (q, rng.random() < 0.3))
    tag = rng.choice(known) if known and rng.random() < 0.85 else rng.randint(0, 6)
    if kind == "ack":
        return (kind, ch, (tag, rng.random() < 0.3))
    if kind == "nack":
        return (kind, ch, (tag, rng.random() < 0.3, rng.random() < 0.6))
    if kind == "reject":
        return (kind, ch, (tag, rng.random() < 0.6))
    if kind == "purge":
        return (kind, ch, (q,))
    if kind == "qdelete":
        return (kind, ch, (q, rng.random() < 0.5))
    if kind == "xdelete":
        return (kind, ch, (x, rng.random() < 0.5))
    return (kind, ch, ())


def track_tags(tags: dict, op: tuple, result: tuple) -> None:
    """Follow the delivery tags a channel has outstanding (the same on both brokers)."""
    kind, ch, args = op
    if result[0] in ("channel-closed", "connection-closed") or kind in ("close", "recover", "reconnect"):
        tags.pop(ch, None)
    elif kind == "get" and result[0] == "msg" and not args[1]:
        tags.setdefault(ch, []).append(result[4])
    elif kind == "reject" and result[0] == "ok":
        tags[ch] = [t for t in tags.get(ch, []) if t != args[0]]
    elif kind in ("ack", "nack") and result[0] == "ok":
        tag, multiple = args[0], args[1]
        tags[ch] = [t for t in tags.get(ch, []) if (t > tag if multiple and tag else t != tag)
                    and not (multiple and tag == 0)]


def cleanup(url: str, prefix: str) -> None:
    c = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for q in ("q0", "q1", "q2"):
            c.channel().queue_delete(prefix + q)
        for x in ("x0", "x1"):
            c.channel().exchange_delete(prefix + x)
    finally:
        c.close()


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + SEQUENCES))
def test_random_sequence_matches_rabbitmq(broker_url, seed):
    """The same random operation sequence gives the same results on Leveret and RabbitMQ."""
    rng = random.Random(seed)
    prefix = f"diff.{seed}.{uuid.uuid4().hex[:6]}."
    lev, rab = Side(broker_url), Side(RABBIT)
    log = []
    tags: dict = {}
    try:
        for _ in range(STEPS):
            op = random_op(rng, tags)
            a, b = run_op(lev, op, prefix), run_op(rab, op, prefix)
            log.append((op, b))
            had_unacked = bool(tags.get(op[1]))
            track_tags(tags, op, b)
            if had_unacked and op[1] not in tags:
                # RabbitMQ requeues a closed channel's unacked messages asynchronously (the queue
                # process learns of it after the close-ok); give it a moment so that counts taken
                # right after compare like for like.
                time.sleep(0.1)
            if a != b:
                history = "\n".join(f"  {o!r} -> {r!r}" for o, r in log[-15:])
                pytest.fail(f"seed {seed}: {op!r}\n  leveret:  {a!r}\n  rabbitmq: {b!r}\nlast steps:\n{history}")
            if b[0] == "connection-closed":
                break
    finally:
        lev.close()
        rab.close()
        cleanup(broker_url, prefix)
        cleanup(RABBIT, prefix)
