"""Differential test: random sequences of AMQP operations run against Leveret and RabbitMQ side
by side, and every observable result must be the same (method, reply code and text, message
counts, bodies, redelivered flags, routing, publisher confirms, consumer deliveries, and every
message property with its AMQP field types and table order).

Besides declares, binds, publishes, gets, acks, nacks, rejects, purges, deletes, recover and tx,
the sequences exercise the deterministic parts of the message lifecycle: queues declared with
random x-arguments (x-max-length, x-max-length-bytes, x-overflow, x-max-priority,
x-dead-letter-exchange / -routing-key, x-single-active-consumer, x-message-ttl 0 or an hour,
quorum queues with x-delivery-limit), publishes with priorities, expiration "0", CC/BCC headers,
mandatory and confirms, dead-lettering by reject/nack, length limits and TTL 0, and consumers
(x-priority, prefetch, exclusive, auto-ack) whose deliveries are collected after every step.
Received headers are compared exactly except that an x-death entry's ``time`` value is masked
(its type and position are kept) and ``x-last-death-*`` (RabbitMQ 3.13+, not 3.10) is ignored.

RabbitMQ does some of this work asynchronously (a queue dead-letters a rejected message after the
channel has moved on; deliveries to consumers are pushed by the queue processes), so after each
step both brokers are brought to quiescence the same way before results are compared: a passive
declare of every queue of the sequence (each is a call into that queue's process, so it has
handled everything sent to it before), twice, then a round trip on every channel with consumers.

The generator stays clear of what RabbitMQ leaves to timing, and of Leveret's documented
departures: the consumers of one channel all consume from one queue (deliveries from two queues
interleave at random); only one queue of a sequence dead-letters (two queues' dead-lettered
copies reach a target in either order); a quorum queue is never a dead-letter target (its
publishes and dead-letters race); a queue name keeps its type (RabbitMQ 3.10 fails a channel
with 541 when a name it used changes type); and an expiration of "0" is only sent when no queue
holds a ready message (Leveret expires messages anywhere in a queue, RabbitMQ only at the head).

Opt-in, with ``LEVERET_DIFF_LIFECYCLE=1``: its default seeds pass, but about one run in eight
still meets a RabbitMQ timing race (a delivery RabbitMQ makes later than the test looks), so it
is not in CI yet. Longer runs still find the open divergences listed in ``docs/lifecycle.md``
("Known divergences"), and RabbitMQ's own races (a quorum queue's first publish from a channel)
now and then. Runs when ``LEVERET_DIFF_RABBITMQ_URL``
names a RabbitMQ (``scripts/rabbitmq-conformance`` sets it); Leveret is the session's own broker. ``LEVERET_DIFF_SEQUENCES`` / ``LEVERET_DIFF_STEPS``
make the run longer, ``LEVERET_DIFF_SEED0`` picks other seeds; a failure prints the seed and the
operation log to replay it.
"""
from __future__ import annotations

import os
import random
import re
import struct
import time
import uuid

import pika
import pika.exceptions
import pika.spec
import pytest

# opt-in (LEVERET_DIFF_LIFECYCLE=1) until its RabbitMQ timing races are handled
RABBIT = os.environ.get("LEVERET_DIFF_RABBITMQ_URL") if os.environ.get("LEVERET_DIFF_LIFECYCLE") else None
SEQUENCES = int(os.environ.get("LEVERET_DIFF_SEQUENCES", "12"))
STEPS = int(os.environ.get("LEVERET_DIFF_STEPS", "60"))
SEED0 = int(os.environ.get("LEVERET_DIFF_SEED0", "0"))

pytestmark = pytest.mark.skipif(
    not RABBIT or bool(os.environ.get("LEVERET_TEST_URL")),
    reason="needs LEVERET_DIFF_RABBITMQ_URL (a RabbitMQ) and the session's own Leveret")

KEYS = ["a", "b", "a.b", "a.b.c", "", "#", "*", "*.b", "a.#", "#.c"]
XTYPES = ["direct", "fanout", "topic", "headers"]
QUEUES = ("q0", "q1", "q2")
OVERFLOWS = ["drop-head", "reject-publish", "reject-publish-dlx"]


# --- typed decoding of received properties (pika's own decoding loses the AMQP field types) ---

def _patched_decode(orig):
    def decode(self, encoded, offset=0):
        self._raw = bytes(encoded[offset:])
        return orig(self, encoded, offset)
    return decode


def _value(b: bytes, i: int):
    t = chr(b[i])
    i += 1
    if t == "t":
        return (t, bool(b[i])), i + 1
    fixed = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q",
             "f": ">f", "d": ">d", "T": ">Q"}
    if t in fixed:
        (v,), n = struct.unpack_from(fixed[t], b, i), struct.calcsize(fixed[t])
        return (t, v), i + n
    if t == "D":
        scale, v = struct.unpack_from(">BI", b, i)
        return (t, (scale, v)), i + 5
    if t in "SxFA":
        (n,) = struct.unpack_from(">I", b, i)
        i += 4
        raw = b[i:i + n]
        if t == "F":
            return (t, _table(raw)), i + n
        if t == "A":
            items, j = [], 0
            while j < n:
                v, j = _value(raw, j)
                items.append(v)
            return (t, items), i + n
        return (t, raw), i + n
    if t == "V":
        return (t, None), i
    raise ValueError(f"unknown field type {t!r}")


def _table(b: bytes) -> list:
    out, i = [], 0
    while i < len(b):
        k = b[i + 1:i + 1 + b[i]].decode("utf-8", "surrogateescape")
        i += 1 + b[i]
        v, i = _value(b, i)
        out.append((k, v))
    return out


PROPS = [("content-type", "s"), ("content-encoding", "s"), ("headers", "F"), ("delivery-mode", "o"),
         ("priority", "o"), ("correlation-id", "s"), ("reply-to", "s"), ("expiration", "s"),
         ("message-id", "s"), ("timestamp", "T"), ("type", "s"), ("user-id", "s"), ("app-id", "s"),
         ("cluster-id", "s")]


def typed_props(p) -> list:
    """The content header's property list as [(name, value)], headers as typed (key, (tag, v))."""
    raw = getattr(p, "_raw", None)
    if raw is None:
        return []
    (flags,) = struct.unpack_from(">H", raw, 0)
    i, out = 2, []
    for bit, (name, kind) in zip(range(15, 0, -1), PROPS):
        if not flags & (1 << bit):
            continue
        if kind == "s":
            v = raw[i + 1:i + 1 + raw[i]]
            i += 1 + raw[i]
        elif kind == "o":
            v, i = raw[i], i + 1
        elif kind == "T":
            (v,) = struct.unpack_from(">Q", raw, i)
            i += 8
        else:
            (n,) = struct.unpack_from(">I", raw, i)
            v = _table(raw[i + 4:i + 4 + n])
            i += 4 + n
        out.append((name, v))
    return out


def norm_value(v, prefix: str):
    """Strings made broker-independent (our prefix and server-generated names masked)."""
    if isinstance(v, bytes):
        try:
            return norm(v.decode(), prefix).encode()
        except UnicodeDecodeError:
            return v
    if isinstance(v, tuple):
        return tuple(norm_value(x, prefix) for x in v)
    if isinstance(v, list):
        return [norm_value(x, prefix) for x in v]
    return v


def norm_headers(table: list, prefix: str) -> list:
    """x-last-death-* dropped (RabbitMQ 3.10 has none); each x-death entry's time masked."""
    out = []
    for k, (t, v) in table:
        if k.startswith("x-last-death-"):
            continue
        if k == "x-death" and t == "A":
            v = [("F", [(dk, ("T", "*") if dk == "time" and dv[0] == "T" else dv) for dk, dv in e])
                 if et == "F" else (et, e) for et, e in v]
        out.append((norm(k, prefix), norm_value((t, v), prefix)))
    return out


def props_of(p, prefix: str) -> list:
    return [(n, norm_headers(v, prefix) if n == "headers" else norm_value(v, prefix))
            for n, v in typed_props(p)]


# --- the two brokers ---

class Side:
    """One broker: connection A with a confirm-mode channel (0) and a plain channel (1), and a
    second connection B (channel 2) that sees A's exclusive queues as locked. Each connection
    also has a private channel used only to synchronise (passive declares)."""

    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.conn_b = pika.BlockingConnection(pika.URLParameters(url))
        self.chans: dict[int, pika.adapters.blocking_connection.BlockingChannel] = {}
        self.sync_chans: dict[int, object] = {}
        self.events: list = []                 # deliveries and broker cancels, in arrival order
        self.consumer_chans: dict[str, int] = {}     # consumer tag -> channel index
        self.gen_names: list[str] = []         # server-named queues declared

    def reconnect_b(self) -> None:
        """Close connection B (its exclusive queues go, its unacked messages are requeued)."""
        self.chans.pop(2, None)
        self.sync_chans.pop(2, None)
        self.consumer_chans = {t: c for t, c in self.consumer_chans.items() if c != 2}
        if self.conn_b.is_open:
            self.conn_b.close()
        self.conn_b = pika.BlockingConnection(pika.URLParameters(self.url))

    def chan(self, i: int):
        ch = self.chans.get(i)
        if ch is None or not ch.is_open:
            self.consumer_chans = {t: c for t, c in self.consumer_chans.items() if c != i}
            conn = self.conn_b if i == 2 else self.conn
            if not conn.is_open:
                raise RuntimeError("connection closed")
            ch = conn.channel()
            if i == 0:
                ch.confirm_delivery()
            ch.add_on_cancel_callback(lambda mf, i=i: self.events.append(
                ("cancelled", i, mf.method.consumer_tag)))
            self.chans[i] = ch
        return ch

    def on_delivery(self, i: int):
        def cb(_ch, m, p, body):
            self.events.append(("deliver", i, m.consumer_tag, m.delivery_tag, m.redelivered,
                                norm(m.exchange, self.prefix), norm(m.routing_key, self.prefix),
                                body, props_of(p, self.prefix)))
        return cb

    def _sync_chan(self, conn_i: int):
        ch = self.sync_chans.get(conn_i)
        if ch is None or not ch.is_open:
            conn = self.conn_b if conn_i == 2 else self.conn
            ch = self.sync_chans[conn_i] = conn.channel()
        return ch

    def _stat(self, name: str) -> int | None:
        """A passive declare of ``name`` on a private channel: its ready count (None: none)."""
        for conn_i in (0, 2):       # an exclusive queue answers only its own connection
            try:
                return self._sync_chan(conn_i).queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker as e:
                if e.reply_code != 405:
                    return None
        return None

    def ready_counts(self) -> list:
        """The ready message count of each queue of the sequence (None: no such queue)."""
        return [self._stat(name) for name in [self.prefix + q for q in QUEUES] + self.gen_names]

    def quiesce(self) -> list:
        """Let every queue finish what it was sent, then collect the deliveries and cancels that
        arrived (in channel order: the interleaving of different channels is not ordered)."""
        if not (self.conn.is_open and self.conn_b.is_open):
            return []
        for _ in range(2):          # twice: a dead-lettered copy may go on to another queue
            for name in [self.prefix + q for q in QUEUES] + self.gen_names:
                self._stat(name)
        for i in sorted(set(self.consumer_chans.values())):
            ch = self.chans.get(i)
            if ch is not None and ch.is_open:
                ch.exchange_declare("amq.direct", passive=True)
        for c in (self.conn, self.conn_b):
            c.process_data_events(time_limit=0)
        ev, self.events = self.events, []
        for e in ev:
            if e[0] == "cancelled":
                self.consumer_chans.pop(e[2], None)
        return sorted(ev, key=lambda e: e[1])

    def close(self):
        for c in (self.conn, self.conn_b):
            if c.is_open:
                c.close()


GEN = re.compile(r"amq\.gen-[A-Za-z0-9_-]{22}")


def norm(text: str, prefix: str) -> str:
    """Make a reply text broker-independent: our prefix and server-generated names masked."""
    return GEN.sub("amq.gen-*", text.replace(prefix, "~"))


def px(v, prefix: str):
    """Materialise an operation's names: a string "~q0" means the sequence's queue q0."""
    if isinstance(v, str):
        return prefix + v[1:] if v.startswith("~") else v
    if isinstance(v, (list, tuple)):
        return [px(x, prefix) for x in v]
    if isinstance(v, dict):
        return {k: px(x, prefix) for k, x in v.items()}
    return v


def rt(ch) -> None:
    """A round trip that changes nothing, so an asynchronous error shows here."""
    ch.exchange_declare("amq.direct", passive=True)


def run_op(side: Side, op: tuple, prefix: str):
    """Perform one operation; return a comparable, broker-independent result."""
    kind, ch_i, args = op

    def qn(name: str) -> str:         # "" stays "": the last queue declared on the channel
        return prefix + name if name else ""
    try:
        ch = side.chan(ch_i)
        if kind == "qdeclare":
            name, durable, passive, exclusive, qargs = args
            r = ch.queue_declare(qn(name), durable=durable, passive=passive, exclusive=exclusive,
                                 arguments=px(dict(qargs), prefix) or None)
            if GEN.fullmatch(r.method.queue) and r.method.queue not in side.gen_names:
                side.gen_names = (side.gen_names + [r.method.queue])[-4:]
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
            rt(ch)
            return ("ok",)
        if kind == "publish":
            x, key, body, mandatory, headers, props = args
            exch = prefix + x if x else ""
            properties = pika.BasicProperties(headers=px(headers, prefix), **dict(props))
            try:
                ch.basic_publish(exch, px(key, prefix), body, properties, mandatory=mandatory)
            except pika.exceptions.UnroutableError as e:
                return ("returned", [(m.method.reply_code, m.method.reply_text) for m in e.messages])
            except pika.exceptions.NackError as e:
                return ("nacked", [(m.method.reply_code, m.method.reply_text) for m in e.messages])
            if ch_i != 0:
                rt(ch)          # no confirms here: a round trip shows errors
            return ("ok",)
        if kind == "get":
            q, auto_ack = args
            m, p, body = ch.basic_get(qn(q), auto_ack=auto_ack)
            if m is None:
                return ("empty",)
            return ("msg", body, m.redelivered, m.message_count, m.delivery_tag,
                    norm(m.exchange, prefix), norm(m.routing_key, prefix), props_of(p, prefix))
        if kind == "ack":
            tag, multiple = args
            ch.basic_ack(tag, multiple=multiple)
            rt(ch)
            return ("ok",)
        if kind == "nack":
            tag, multiple, requeue = args
            ch.basic_nack(tag, multiple=multiple, requeue=requeue)
            rt(ch)
            return ("ok",)
        if kind == "consume":
            q, tag, auto_ack, exclusive, prio = args
            ch.basic_consume(qn(q), side.on_delivery(ch_i), auto_ack=auto_ack, exclusive=exclusive,
                             consumer_tag=tag, arguments=None if prio is None else {"x-priority": prio})
            side.consumer_chans[tag] = ch_i
            return ("ok",)
        if kind == "cancel":
            (tag,) = args
            left = ch.basic_cancel(tag)
            side.consumer_chans.pop(tag, None)
            return ("ok", len(left))
        if kind == "qos":
            (n,) = args
            ch.basic_qos(prefetch_count=n)
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


# --- the generator ---

def random_qargs(rng: random.Random, quorum: bool, dl_queues: list, dl_exchanges: bool) -> tuple:
    """Random queue x-arguments, as (key, value) pairs; "~x0" / "~q1" name the sequence's own.
    ``dl_queues`` / ``dl_exchanges``: the dead-letter targets allowed."""
    a = []
    if quorum:
        a.append(("x-queue-type", "quorum"))
        if rng.random() < 0.7:
            a.append(("x-delivery-limit", rng.randint(0, 2)))
    elif rng.random() < 0.3:
        return ()
    if rng.random() < 0.45:
        a.append(("x-max-length", rng.choice([0, 1, 1, 2, 2, 3, 3])))
    if rng.random() < 0.12:
        a.append(("x-max-length-bytes", rng.choice([0, 6, 12, 20])))
    if rng.random() < 0.5:
        a.append(("x-overflow", rng.choice(OVERFLOWS)))
    if (not quorum or rng.random() < 0.1) and rng.random() < 0.3:
        a.append(("x-max-priority", rng.randint(0, 5)))
    dlxs = (["~x0", "~x1"] if dl_exchanges else []) + (["", ""] if dl_queues else [])
    if dlxs:
        dlx = rng.choice(dlxs)
        a.append(("x-dead-letter-exchange", dlx))
        if dlx == "":
            a.append(("x-dead-letter-routing-key", rng.choice(dl_queues)))
        elif rng.random() < 0.3:
            a.append(("x-dead-letter-routing-key", rng.choice(KEYS)))
    if rng.random() < 0.15:
        a.append(("x-single-active-consumer", True))
    if rng.random() < 0.12:
        a.append(("x-message-ttl", rng.choice([0, 3600000])))
    rng.shuffle(a)
    return tuple(a)


class Gen:
    """Random operations. Follows the delivery tags each channel has outstanding and the
    consumers that exist (the same on both brokers, or the test has already failed), so acks,
    nacks and cancels mostly name real ones. Each queue and exchange has a usual declaration
    (its profile: flags, type, x-arguments), so that most redeclarations succeed; a sequence
    starts by declaring them all and binding a few queues."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.tags: dict[int, list[int]] = {}
        self.consumers: dict[str, tuple[int, bool, str]] = {}    # tag -> (channel, auto_ack, queue)
        self.n = 0
        # A quorum queue is never a dead-letter target: in RabbitMQ a publish's own copy and a
        # dead-lettered copy reach it in an order that depends on whether the publishing
        # channel had already registered with the queue as an enqueuer.
        self.quorum = {q for q in QUEUES if rng.random() < 0.15}
        # Only one queue dead-letters: RabbitMQ's queues are separate processes, so copies that
        # two queues dead-letter in the same step reach a target in either order.
        self.dl_source = rng.choice(QUEUES)
        self.profiles = {q: self.queue_profile(q) for q in QUEUES + ("",)}
        self.xprofiles = {x: (rng.choice(XTYPES), rng.random() < 0.2, rng.random() < 0.1) for x in ("x0", "x1")}
        self.setup = [("xdeclare", 0, (x, *self.xprofiles[x][:1], self.xprofiles[x][1], False,
                                       self.xprofiles[x][2])) for x in ("x0", "x1")]
        self.setup += [("qdeclare", 0, (q, *self.profiles[q][:1], False, *self.profiles[q][1:]))
                       for q in QUEUES]
        for _ in range(rng.randint(1, 4)):
            self.setup.append(("bind", 0, (rng.choice(QUEUES), rng.choice(["x0", "x1"]),
                                           rng.choice(KEYS), None)))

    def queue_profile(self, q: str, quorum: bool | None = None) -> tuple:
        """(durable, exclusive, x-arguments) for queue ``q``."""
        if quorum is None:
            quorum = q in self.quorum
        if q == self.dl_source:
            qargs = random_qargs(self.rng, quorum, ["~" + n for n in QUEUES if n not in self.quorum],
                                 not self.quorum)
        else:
            qargs = random_qargs(self.rng, quorum, [], False)
        if quorum:
            return (True, self.rng.random() < 0.02, qargs)
        return (self.rng.random() < 0.2, self.rng.random() < 0.05, qargs)

    def next(self) -> tuple:
        if self.setup:
            return self.setup.pop(0)
        rng = self.rng
        q = rng.choice(["q0", "q1", "q2"] * 3 + [""])    # "": server-named / last declared
        r = rng.random()
        if r < 0.25:
            q = self.dl_source
        elif r < 0.4:       # the dead-letter target, if a queue
            q = dict(self.profiles[self.dl_source][2]).get("x-dead-letter-routing-key", "~" + q)[1:] or q
            q = q if q in QUEUES else self.dl_source
        x = rng.choice(["x0", "x1"])
        ch = rng.choice([0, 0, 1, 2])
        hdr = {"x-match": rng.choice(["all", "any"]), "h": rng.choice([1, "v"])} if rng.random() < 0.2 else None
        kind = rng.choices(
            ["qdeclare", "xdeclare", "bind", "unbind", "xbind", "publish", "get", "ack", "nack",
             "purge", "qdelete", "xdelete", "recover", "close", "tx", "xunbind", "reject", "reconnect",
             "consume", "cancel", "qos"],
            [8, 6, 10, 3, 3, 25, 18, 5, 6, 2, 2, 1, 2, 1, 3, 2, 5, 1, 4, 2, 2])[0]
        if kind == "qdeclare":
            durable, exclusive, qargs = self.profiles[q]
            if rng.random() < 0.1:          # another declaration (mostly refused if it exists)
                # (of the same type: RabbitMQ 3.10 closes a connection with 541 INTERNAL_ERROR when
                # a channel that used a classic queue uses a quorum queue of the same name)
                durable, exclusive, qargs = self.queue_profile(q)
                if rng.random() < 0.5:
                    self.profiles[q] = (durable, exclusive, qargs)
            return (kind, ch, (q, durable, rng.random() < 0.1, exclusive, qargs))
        if kind == "xdeclare":
            xtype, durable, auto_delete = self.xprofiles[x]
            if rng.random() < 0.1:
                xtype, durable, auto_delete = rng.choice(XTYPES), rng.random() < 0.2, rng.random() < 0.2
            return (kind, ch, (x, xtype, durable, rng.random() < 0.1, auto_delete))
        if kind in ("bind", "unbind"):
            return (kind, ch, (q, x, rng.choice(KEYS), hdr))
        if kind in ("xbind", "xunbind"):
            return (kind, ch, (rng.choice(["x0", "x1"]), x, rng.choice(KEYS)))
        if kind == "publish":
            target = rng.choice(["", "x0", "x1"])
            keys = ["~q0", "~q1", "~q2", "~" + self.dl_source] if target == "" else KEYS
            headers = {}
            if rng.random() < 0.5:
                headers["h"] = rng.choice([1, "v", 2])
            if rng.random() < 0.15:
                headers["CC"] = rng.sample(keys, rng.randint(1, 2))
            if rng.random() < 0.05:
                headers["BCC"] = [rng.choice(keys)]
            props = []
            if rng.random() < 0.4:
                props.append(("priority", rng.choice([0, 1, 2, 3, 5, 7, 9])))
            pch = rng.choice([0, 0, 1])      # channel 0 confirms (returns are seen); 1 may be in tx
            if rng.random() < 0.15:          # "0" not in a transaction: it would enter queues later
                props.append(("expiration", rng.choice(["0", "0", "3600000"] if pch == 0 else ["3600000"])))
            if rng.random() < 0.1:
                props.append(("delivery_mode", 2))
            body = uuid.UUID(int=rng.getrandbits(128)).bytes[:rng.choice([6, 6, 6, 1, 9])]
            return (kind, pch, (target, rng.choice(keys), body, pch == 0 and rng.random() < 0.4,
                                headers or None, tuple(props)))
        if kind == "tx":
            # no transactions beside quorum queues: a channel's first publish to a quorum queue waits
            # for it to register as an enqueuer, so a commit's publishes and requeues race
            return (kind, 1, (rng.choice(["commit", "rollback"] + ["select"] * 2 * (not self.quorum)),))
        if kind == "reconnect":
            return (kind, 2, ())
        if kind == "qos":
            return (kind, ch, (rng.choice([0, 1, 1, 2, 3]),))
        if kind == "consume":
            # the consumers of a channel all consume from one queue: deliveries from different
            # queues reach a channel in an order RabbitMQ does not define (a quorum queue's come
            # later than a classic queue's), and the delivery tags follow that order
            on_ch = {v[2] for v in self.consumers.values() if v[0] == ch}
            if on_ch:
                q = on_ch.pop()
                if q == "":              # "" may name another queue by now
                    return ("qos", ch, (rng.choice([0, 1, 2]),))
            self.n += 1
            prio = rng.choice([None, None, -1, 0, 1, 2, 3])
            return (kind, ch, (q, f"c{self.n}", rng.random() < 0.25, rng.random() < 0.08, prio))
        if kind == "cancel":
            mine = [t for t, v in self.consumers.items() if v[0] == ch]
            return (kind, ch, (rng.choice(mine) if mine and rng.random() < 0.9 else "c0",))
        known = self.tags.get(ch)
        if kind in ("ack", "nack", "reject") and not known and rng.random() < 0.85:
            kind = "get"           # mostly ack what was delivered
        if kind == "get":
            return (kind, ch, (q, rng.random() < 0.3))
        tag = rng.choice(known) if known and rng.random() < 0.93 else rng.randint(0, 6)
        if kind == "ack":
            return (kind, ch, (tag, rng.random() < 0.3))
        if kind == "nack":
            return (kind, ch, (tag, rng.random() < 0.3, rng.random() < 0.4))
        if kind == "reject":
            return (kind, ch, (tag, rng.random() < 0.4))
        if kind == "purge":
            return (kind, ch, (q,))
        if kind == "qdelete":
            return (kind, ch, (q, rng.random() < 0.5))
        if kind == "xdelete":
            return (kind, ch, (x, rng.random() < 0.5))
        return (kind, ch, ())

    def channel_gone(self, ch: int) -> None:
        self.tags.pop(ch, None)
        self.consumers = {t: v for t, v in self.consumers.items() if v[0] != ch}

    def track(self, op: tuple, result: tuple, events: list) -> None:
        """Follow the delivery tags and consumers a channel has (the same on both brokers)."""
        kind, ch, args = op
        tags = self.tags
        if result[0] == "connection-closed":
            for c in (0, 1, 2):
                self.channel_gone(c)
        elif result[0] == "channel-closed" or kind in ("close", "reconnect"):
            self.channel_gone(ch)
        elif kind == "recover":
            tags.pop(ch, None)
        elif kind == "get" and result[0] == "msg" and not args[1]:
            tags.setdefault(ch, []).append(result[4])
        elif kind == "reject" and result[0] == "ok":
            tags[ch] = [t for t in tags.get(ch, []) if t != args[0]]
        elif kind in ("ack", "nack") and result[0] == "ok":
            tag, multiple = args[0], args[1]
            tags[ch] = [t for t in tags.get(ch, []) if (t > tag if multiple and tag else t != tag)
                        and not (multiple and tag == 0)]
        elif kind == "consume" and result[0] == "ok":
            self.consumers[args[1]] = (ch, args[2], args[0])
        elif kind == "cancel":
            self.consumers.pop(args[0], None)
        for e in events:
            if e[0] == "cancelled":
                self.consumers.pop(e[2], None)
            elif e[0] == "deliver" and e[2] in self.consumers and not self.consumers[e[2]][1]:
                tags.setdefault(e[1], []).append(e[3])


def cleanup(url: str, prefix: str) -> None:
    c = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for q in QUEUES:
            c.channel().queue_delete(prefix + q)
        for x in ("x0", "x1"):
            c.channel().exchange_delete(prefix + x)
    finally:
        c.close()


def run_step(lev: Side, rab: Side, gen: Gen, op: tuple, prefix: str):
    """Run one operation on both brokers and let both settle. Returns the operation as run,
    RabbitMQ's result, and what each broker showed: (result, deliveries, [ready counts])."""
    had_work = bool(gen.tags.get(op[1])) or any(v[0] == op[1] for v in gen.consumers.values())
    counts: tuple = ()
    if op[0] == "publish" and ("expiration", "0") in op[2][5]:
        # Leveret expires a message wherever it sits in a queue, RabbitMQ only at the head (a
        # documented improvement): an expiration of 0 only where it takes effect at once, i.e.
        # when no queue of the sequence holds a ready message and no consumer could requeue
        # the message behind another one later.
        counts = (lev.ready_counts(), rab.ready_counts())
        if any(counts[1]) or not all(v[1] for v in gen.consumers.values()):
            t, ch_i, args = op
            op = (t, ch_i, args[:5] + (tuple(p for p in args[5] if p[0] != "expiration"),))
    a, b = run_op(lev, op, prefix), run_op(rab, op, prefix)
    if had_work and (b[0] in ("channel-closed", "connection-closed") or op[0] in ("close", "reconnect")):
        # RabbitMQ requeues a closed channel's unacked messages (and forgets its consumers)
        # asynchronously, after the close handshake; give it a moment so that what follows
        # compares like for like.
        time.sleep(0.1)
    ea, eb = lev.quiesce(), rab.quiesce()
    gen.track(op, b, eb)
    return op, b, (a, ea) + counts[:1], (b, eb) + counts[1:]   # counts: ([lev], [rab]) or ()


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + SEQUENCES))
def test_random_sequence_matches_rabbitmq(broker_url, seed, monkeypatch):
    """The same random operation sequence gives the same results on Leveret and RabbitMQ."""
    monkeypatch.setattr(pika.spec.BasicProperties, "decode",
                        _patched_decode(pika.spec.BasicProperties.decode))
    gen = Gen(random.Random(seed))
    prefix = f"diff.{seed}.{uuid.uuid4().hex[:6]}."
    lev, rab = Side(broker_url, prefix), Side(RABBIT, prefix)
    log = []
    try:
        for _ in range(STEPS):
            op, result, seen_lev, seen_rab = run_step(lev, rab, gen, gen.next(), prefix)
            log.append((op, seen_rab))
            if seen_lev != seen_rab:
                history = "\n".join(f"  {o!r} -> {r!r}" for o, r in log[-25:])
                pytest.fail(f"seed {seed}: {op!r}\n  leveret:  {seen_lev!r}\n"
                            f"  rabbitmq: {seen_rab!r}\nlast steps:\n{history}")
            if result[0] == "connection-closed":
                break
        print(f"seed {seed}: {len(log)} operations compared")
    finally:
        lev.close()
        rab.close()
        cleanup(broker_url, prefix)
        cleanup(RABBIT, prefix)
