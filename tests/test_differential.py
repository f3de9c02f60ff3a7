"""Differential tests: random sequences of AMQP operations run against Leveret and RabbitMQ side
by side, and everything a client can observe must be the same: each operation's result (method,
reply code and text, message counts, bodies, redelivered flags, routing, returns, publisher
confirms, every message property with its AMQP field types and table order), the deliveries and
broker cancels each channel received, and the ready and consumer counts of every queue of the
sequence.

Two generators share the machinery (the two brokers' ``Side``, ``run_op``, the settling
observation, the comparison, replay by seed and the operation log printed on failure); each is
its own parametrised test:

- **routing** (``test_routing_matches_rabbitmq``): declares (durable, passive, exclusive,
  server-named, the empty-name shortcut), exchange types, queue and exchange bindings (headers
  arguments too), publishes (mandatory, confirms, headers), gets, acks, nacks, rejects,
  purges, deletes (if-empty / if-unused), recover, transactions, channel closes and a second
  connection (exclusive locks, its close requeueing its messages).
- **lifecycle** (``test_lifecycle_matches_rabbitmq``): the same operations plus queues declared
  with random x-arguments (x-max-length, x-max-length-bytes, x-overflow, x-max-priority,
  x-dead-letter-exchange / -routing-key, x-single-active-consumer, x-message-ttl 0 or an hour,
  quorum queues with x-delivery-limit), publishes with priorities, expiration "0", 30-200 ms or
  an hour, CC/BCC headers, dead-lettering by reject/nack, length limits, TTL 0 and short TTLs
  (expiring at the head only), and consumers (x-priority,
  prefetch, exclusive, auto-ack, cancel, qos). Received headers are compared exactly except
  that an x-death entry's ``time`` value is masked (its type and position are kept).

Knobs (environment):

- ``LEVERET_DIFF_RABBITMQ_URL``: the RabbitMQ to compare with; without it both tests skip.
  Leveret is the session's own broker (so they skip when ``LEVERET_TEST_URL`` is set).
- ``LEVERET_DIFF_ROUTING_SEQUENCES`` / ``_STEPS`` / ``_SEED0`` (default 16 x 60 from seed 0)
  and ``LEVERET_DIFF_LIFECYCLE_SEQUENCES`` / ``_STEPS`` / ``_SEED0`` (default 16 x 60 from
  seed 0): how many sequences (one test per seed ``SEED0 .. SEED0+SEQUENCES-1``) of how many
  operations. ``scripts/rabbitmq-conformance`` runs the defaults; a long run raises them.
- ``LEVERET_DIFF_SETTLE``: the deadline, in seconds (default 10), that bounds the wait for the
  two brokers to show the same state after a step. It only bounds a wait; reaching it means
  the brokers still differ, which is reported as the divergence it is.

A failure prints the seed, the operation, what each broker showed, the sequence's operation log
and the command that replays exactly that sequence.

**Observing RabbitMQ deterministically.** RabbitMQ does much of a step's work asynchronously:
queues are separate processes that push deliveries to a channel process, which hands them to
the connection's writer; a queue dead-letters a rejected message after the channel has moved on;
a closed channel's unacked messages are requeued after the close handshake; a quorum queue
applies a command (an enqueue from a channel without confirms, a settlement) once its log has
committed it, and answers a passive declare from the state it has applied so far; message TTLs
and quorum TTL 0 (a deadline of enqueue ms + 1) are timers. What it does guarantee is order
per channel (a channel's methods, and a queue's deliveries to one channel, arrive in the order
they were made) and, on one node, causal order of messages between its processes. So after
every step each broker is *observed*: every operation ends with a reply on its channel (a
confirm, a ``-ok``, or a passive declare sent for the purpose), so that channel has handled it,
including the casts it made to queues; a passive declare of every queue of the sequence (sent
all at once on an observer connection, one channel per queue) is a call into each queue's
process, which has therefore handled those casts and sent its deliveries and dead-letters; a round trip on every channel with consumers then puts
those deliveries ahead of its reply. The observation is the deliveries and cancels that
arrived, grouped by channel (the interleaving of different channels is not ordered), and every
queue's ready and consumer counts (declare-ok's: a quorum queue's consumer map catches up
with a cancel or a channel close asynchronously, so they are waited for like the rest).
Observations repeat, with a short wait in between that
returns as soon as a frame arrives, until both brokers show the same and a further observation
changes nothing; only then does the next operation run. Leveret is observed the same way, so its
own timers (quorum TTL 0) are waited for too. A state RabbitMQ passes through on its way is
harmless: it either is what Leveret shows (and RabbitMQ's final state is checked by the
confirming observation, and by every later step) or it is not (and the wait goes on).

Waiting does not make a nondeterministic outcome deterministic, so the generators stay clear of
what RabbitMQ leaves to timing, and of Leveret's documented departures: the consumers of one
channel all consume from one queue (deliveries from two queues interleave on a channel at
random, and the delivery tags follow that order); only one queue of a sequence dead-letters
(two queues' dead-lettered copies reach a target in either order); a quorum queue is never a
dead-letter target (its publishes and dead-letters race) and there are no transactions beside
quorum queues (a channel's first publish to a quorum queue waits for it to register as an
enqueuer, so a commit's publishes and requeues race); a queue name keeps its type (RabbitMQ
3.10 fails a channel with 541 when a name it used changes type). Short TTLs are per-message
only, and published outside transactions: after such a publish both brokers are observed only
once its deadline has passed on both (``pause_after``), so that no later operation races its
expiry: from then on whether it has expired depends only on the operations (it expires when it
is at the head, or the moment it gets there); a short queue-level x-message-ttl would restart
the race for each message entering the queue, dead-lettered copies included, and is not
generated. A channel never holds
unsettled messages of the dead-letter source together with another queue's (when it requeues
them, the queues take them back concurrently and the source's dead-letters race the other
queue's redeliveries). A channel holding unsettled messages when a queue is deleted is closed
right after (RabbitMQ 3.10 sends a later
settlement of those messages to a new queue of the same name once the channel has used one, a
bug Leveret does not copy). Open divergences are
listed in ``docs/lifecycle.md``; the long runs are recorded in ``docs/compatibility.md``
("Differential testing").
"""
from __future__ import annotations

import contextlib
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
from pamqp import commands as C
from pamqp import frame as pframe

import rawamqp

RABBIT = os.environ.get("LEVERET_DIFF_RABBITMQ_URL")
SETTLE = float(os.environ.get("LEVERET_DIFF_SETTLE", "10"))


def _knobs(name: str, sequences: int, steps: int) -> tuple[range, int]:
    env = f"LEVERET_DIFF_{name.upper()}_"
    seed0 = int(os.environ.get(env + "SEED0", "0"))
    return (range(seed0, seed0 + int(os.environ.get(env + "SEQUENCES", str(sequences)))),
            int(os.environ.get(env + "STEPS", str(steps))))


ROUTING_SEEDS, ROUTING_STEPS = _knobs("routing", 16, 60)
LIFECYCLE_SEEDS, LIFECYCLE_STEPS = _knobs("lifecycle", 16, 60)

pytestmark = pytest.mark.skipif(
    not RABBIT or bool(os.environ.get("LEVERET_TEST_URL")),
    reason="needs LEVERET_DIFF_RABBITMQ_URL (a RabbitMQ) and the session's own Leveret")

KEYS = ["a", "b", "a.b", "a.b.c", "", "#", "*", "*.b", "a.#", "#.c"]
XTYPES = ["direct", "fanout", "topic", "headers"]
QUEUES = ("q0", "q1", "q2")
OVERFLOWS = ["drop-head", "reject-publish", "reject-publish-dlx"]
SHORT_TTL = (30, 200)       # ms: the lifecycle generator's short per-message expirations


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
    """Each x-death entry's time masked."""
    out = []
    for k, (t, v) in table:
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
    second connection B (channel 2) that sees A's exclusive queues as locked. A third, raw
    connection only observes: passive declares of every queue, pipelined (one channel per
    queue); A and B each have a private channel for the exclusive queues they own."""

    def __init__(self, url: str, prefix: str, server_named: set | None = None):
        self.url = url
        self.prefix = prefix
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.conn_b = pika.BlockingConnection(pika.URLParameters(url))
        self.chans: dict[int, pika.adapters.blocking_connection.BlockingChannel] = {}
        self.sync_chans: dict[int, object] = {}
        self.events: list = []                 # deliveries and broker cancels, in arrival order
        self.consumer_chans: dict[str, int] = {}     # consumer tag -> channel index
        self.gen_names: list[str] = []         # server-named queues declared (the last 4)
        # every server-named queue declared, for ``cleanup`` (the non-exclusive ones outlive
        # the connections)
        self.server_named = set() if server_named is None else server_named
        self.observer = rawamqp.connect(url)
        self.observer_open: set[int] = set()   # its channels that are open

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

    def _stat(self, name: str) -> int | str | None:
        """A passive declare of exclusive queue ``name`` on A's or B's private channel: its
        (ready, consumer) counts; None: no such queue; "locked": exclusive to neither connection (a closed
        connection's, not yet gone)."""
        for conn_i in (0, 2):       # an exclusive queue answers only its own connection
            try:
                m = self._sync_chan(conn_i).queue_declare(name, passive=True).method
                return m.message_count, m.consumer_count
            except pika.exceptions.ChannelClosedByBroker as e:
                if e.reply_code != 405:
                    return None
        return "locked"

    def _stats(self, names: list[str]) -> list:
        """The (ready, consumer) counts of each queue of ``names`` (None: no such queue): a passive declare
        of each on its own channel of the observer, all sent at once (a channel closed by a
        404 is reopened in the same batch); a queue exclusive to A or B (405 here) is asked
        on A's or B's private channel."""
        out = b""
        for ch, name in enumerate(names, 1):
            if ch not in self.observer_open:
                out += pframe.marshal(C.Channel.Open(), ch)
            out += pframe.marshal(C.Queue.Declare(queue=name, passive=True), ch)
        self.observer.send_raw(out)
        got: dict[int, int | None] = {}
        while len(got) < len(names):
            ch, f = self.observer.read_frame()
            if isinstance(f, C.Channel.OpenOk):
                self.observer_open.add(ch)
            elif isinstance(f, C.Queue.DeclareOk):
                got[ch] = (f.message_count, f.consumer_count)
            elif isinstance(f, C.Channel.Close) and f.reply_code in (404, 405):
                self.observer.send_method(ch, C.Channel.CloseOk())
                self.observer_open.discard(ch)
                got[ch] = None if f.reply_code == 404 else -1
            else:
                raise AssertionError(f"observer: unexpected {type(f).__name__} on channel {ch} "
                                     f"{getattr(f, 'reply_code', '')} {getattr(f, 'reply_text', '')}")
        return [self._stat(name) if got[ch] == -1 else got[ch] for ch, name in enumerate(names, 1)]

    def observe(self) -> tuple[list, list]:
        """The deliveries and cancels that arrived since the last observation (in arrival
        order), and the (ready, consumer) counts of each queue of the sequence: a passive declare of every
        queue (a call into each queue's process), then a round trip on every channel with
        consumers (the deliveries the queues sent it are now ahead of the reply). Every
        operation ends with a reply on its channel, so each channel has by then handled what it
        was sent, casts to queues included; channels without consumers receive nothing unasked."""
        if not (self.conn.is_open and self.conn_b.is_open):
            return [], []
        ready = self._stats([self.prefix + q for q in QUEUES] + self.gen_names)
        for i in sorted(set(self.consumer_chans.values())):
            ch = self.chans.get(i)
            if ch is not None and ch.is_open:
                try:
                    rt(ch)
                except pika.exceptions.ChannelClosedByBroker as e:
                    self.events.append(("channel-closed", i, e.reply_code, norm(e.reply_text, self.prefix)))
        for c in (self.conn, self.conn_b):
            c.process_data_events(time_limit=0)
        ev, self.events = self.events, []
        for e in ev:
            if e[0] == "cancelled":
                self.consumer_chans.pop(e[2], None)
        return ev, ready

    def wait(self, seconds: float) -> None:
        """Wait for frames from the broker, at most ``seconds`` per connection (returns as soon
        as something arrives)."""
        for c in (self.conn, self.conn_b):
            if c.is_open:
                c.process_data_events(time_limit=seconds)

    def close(self):
        try:
            for c in (self.conn, self.conn_b):
                if c.is_open:
                    c.close()
        finally:
            # an orderly close, skipping what an interrupted observation left unread
            obs = self.observer
            try:
                obs.send_method(0, C.Connection.Close(reply_code=200, reply_text="Normal shutdown",
                                                      class_id=0, method_id=0))
                while not isinstance(obs.read_frame()[1], C.Connection.CloseOk):
                    pass
            finally:
                obs.shutdown()


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
            if GEN.fullmatch(r.method.queue):
                side.server_named.add(r.method.queue)
                if r.method.queue not in side.gen_names:
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


# --- the generators ---

class Tracker:
    """Follows the delivery tags each channel has outstanding and the consumers that exist (the
    same on both brokers, or the test has already failed), so that acks, nacks and cancels
    mostly name real ones. A generator's ``next(ready)`` gives the next operation, ``ready``
    being the ready counts both brokers showed after the last step.

    A channel that holds unsettled messages when a queue is deleted is closed by the next
    operation (``pending``): RabbitMQ 3.10's channel keys its queue states by queue name, so
    once it has used a new queue of the same name (published to it, consumed or got from it),
    settling the old queue's messages (ack, nack, reject, recover) reaches the new queue with
    the old queue's sequence numbers, where it settles another message or crashes the queue (a
    RabbitMQ bug: Leveret drops such a settlement, see docs/lifecycle.md)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.tags: dict[int, list[int]] = {}
        self.consumers: dict[str, tuple[int, bool, str]] = {}    # tag -> (channel, auto_ack, queue)
        self.pending: list[tuple] = []         # operations that go next, before random ones
        self.tag_queue: dict[tuple[int, int], str] = {}  # (channel, delivery tag) -> its queue
        self.consumer_queue: dict[str, str] = {}    # consumer tag -> its queue
        self.declared: dict[int, str] = {}     # channel -> the queue "" names there (last declared)

    def pause_after(self, op: tuple) -> float:
        """Seconds to wait after ``op`` ran on both brokers, before they are observed (the
        deadlines of short TTLs it set must have passed on both)."""
        return 0.0

    def queue_of(self, ch: int, q: str) -> str | None:
        """The queue a get or consume of ``q`` on channel ``ch`` reaches ("" is the channel's last
        declared queue; "gen": a server-named one; None: none)."""
        return q or self.declared.get(ch)

    def held_queues(self, ch: int) -> set:
        """The queues channel ``ch`` holds unsettled messages of, or may soon (its consumers
        with acks)."""
        held = {self.tag_queue.get((ch, t)) for t in self.tags.get(ch, [])}
        held |= {self.consumer_queue.get(t) for t, v in self.consumers.items() if v[0] == ch and not v[1]}
        return held - {None}

    def channel_gone(self, ch: int) -> None:
        self.tags.pop(ch, None)
        self.declared.pop(ch, None)
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
            self.tag_queue[ch, result[4]] = self.queue_of(ch, args[0])
        elif kind == "qdeclare" and result[0] == "ok":
            self.declared[ch] = result[1][1:] if result[1].startswith("~") else "gen"
        elif kind == "reject" and result[0] == "ok":
            tags[ch] = [t for t in tags.get(ch, []) if t != args[0]]
        elif kind in ("ack", "nack") and result[0] == "ok":
            tag, multiple = args[0], args[1]
            tags[ch] = [t for t in tags.get(ch, []) if (t > tag if multiple and tag else t != tag)
                        and not (multiple and tag == 0)]
        elif kind == "consume" and result[0] == "ok":
            self.consumers[args[1]] = (ch, args[2], args[0])
            self.consumer_queue[args[1]] = self.queue_of(ch, args[0])
        elif kind == "cancel":
            self.consumers.pop(args[0], None)
        for e in events:
            if e[0] == "cancelled":
                self.consumers.pop(e[2], None)
            elif e[0] == "channel-closed":
                self.channel_gone(e[1])
            elif e[0] == "deliver" and e[2] in self.consumers and not self.consumers[e[2]][1]:
                tags.setdefault(e[1], []).append(e[3])
                self.tag_queue[e[1], e[3]] = self.consumer_queue.get(e[2])
        if kind == "qdelete" and result[0] == "ok":
            self.pending += [("close", c, ()) for c, held in sorted(tags.items()) if held]

    def queue_op(self, kind: str, ch: int, q: str, x: str, p_get: float, p_known: float,
                 p_requeue: float) -> tuple:
        """The operations both generators make alike: a get (also instead of a settlement, with
        probability ``p_get``, when the channel has nothing to settle), an ack, nack or reject
        (of a delivery tag the channel has, with probability ``p_known``; requeueing with
        ``p_requeue``), purge, queue or exchange delete, recover, close."""
        rng = self.rng
        known = self.tags.get(ch)
        if kind in ("ack", "nack", "reject") and not known and rng.random() < p_get:
            kind = "get"           # mostly ack what was delivered
        if kind == "get":
            return (kind, ch, (q, rng.random() < 0.3))
        tag = rng.choice(known) if known and rng.random() < p_known else rng.randint(0, 6)
        if kind == "ack":
            return (kind, ch, (tag, rng.random() < 0.3))
        if kind == "nack":
            return (kind, ch, (tag, rng.random() < 0.3, rng.random() < p_requeue))
        if kind == "reject":
            return (kind, ch, (tag, rng.random() < p_requeue))
        if kind == "purge":
            return (kind, ch, (q,))
        if kind == "qdelete":
            return (kind, ch, (q, rng.random() < 0.5))
        if kind == "xdelete":
            return (kind, ch, (x, rng.random() < 0.5))
        return (kind, ch, ())


class RoutingGen(Tracker):
    """Exchanges, queues, bindings, publishes, gets and settlements, transactions, channel and
    connection closes; no x-arguments, no consumers. Queues q0..q2 and exchanges x0, x1 of the
    sequence, plus server-named queues ("")."""

    def next(self, ready: list) -> tuple:
        if self.pending:
            return self.pending.pop(0)
        rng = self.rng
        q = rng.choice(["q0", "q1", "q2", "q0", "q1", "q2", ""])    # "": server-named / last declared
        x = rng.choice(["x0", "x1"])
        ch = rng.choice([0, 0, 1, 2])
        hdr = {"x-match": rng.choice(["all", "any"]), "h": rng.choice([1, "v"])} if rng.random() < 0.2 else None
        kind = rng.choices(
            ["qdeclare", "xdeclare", "bind", "unbind", "xbind", "publish", "get", "ack", "nack",
             "purge", "qdelete", "xdelete", "recover", "close", "tx", "xunbind", "reject", "reconnect"],
            [10, 8, 10, 3, 3, 25, 15, 5, 4, 2, 2, 2, 2, 1, 4, 2, 2, 1])[0]
        if kind == "qdeclare":
            return (kind, ch, (q, rng.random() < 0.2, rng.random() < 0.15, rng.random() < 0.1, ()))
        if kind == "xdeclare":
            return (kind, ch, (x, rng.choice(XTYPES), rng.random() < 0.2, rng.random() < 0.15,
                               rng.random() < 0.2))
        if kind in ("bind", "unbind"):
            return (kind, ch, (q, x, rng.choice(KEYS), hdr))
        if kind in ("xbind", "xunbind"):
            return (kind, ch, (rng.choice(["x0", "x1"]), x, rng.choice(KEYS)))
        if kind == "publish":
            target = rng.choice(["", "x0", "x1"])
            key = "~" + rng.choice(["q0", "q1", "q2"]) if target == "" else rng.choice(KEYS)
            headers = {"h": rng.choice([1, "v", 2])} if rng.random() < 0.5 else None
            pch = rng.choice([0, 0, 1])      # channel 0 confirms (returns are seen); 1 may be in tx
            return (kind, pch, (target, key, uuid.UUID(int=rng.getrandbits(128)).bytes[:6],
                                pch == 0 and rng.random() < 0.4, headers, ()))
        if kind == "tx":
            return (kind, 1, (rng.choice(["select", "select", "commit", "rollback"]),))
        if kind == "reconnect":
            return (kind, 2, ())
        return self.queue_op(kind, ch, q, x, 0.7, 0.85, 0.6)


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


class LifecycleGen(Tracker):
    """Random lifecycle operations. Each queue and exchange has a usual declaration (its
    profile: flags, type, x-arguments), so that most redeclarations succeed; a sequence starts
    by declaring them all and binding a few queues."""

    def __init__(self, rng: random.Random):
        super().__init__(rng)
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
        self.pending = [("xdeclare", 0, (x, *self.xprofiles[x][:1], self.xprofiles[x][1], False,
                                       self.xprofiles[x][2])) for x in ("x0", "x1")]
        self.pending += [("qdeclare", 0, (q, *self.profiles[q][:1], False, *self.profiles[q][1:]))
                       for q in QUEUES]
        for _ in range(rng.randint(1, 4)):
            self.pending.append(("bind", 0, (rng.choice(QUEUES), rng.choice(["x0", "x1"]),
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

    def next(self, ready: list) -> tuple:
        op = self._next()
        ack = {"get": 1, "consume": 2}.get(op[0])
        if ack is not None and not op[2][ack]:
            # a channel never holds unsettled messages of the dead-letter source together with
            # another queue's: when it requeues them (closing, recover, a nack of several), two
            # queues take them back at once in RabbitMQ (queue processes told by the channel's
            # exit) and the source's dead-letters race the other queue's requeue to a consumer
            # (lifecycle seed 20018); so such a get or consume acknowledges automatically
            kind, ch_i, args = op
            queues = self.held_queues(ch_i) | {self.queue_of(ch_i, args[0])} - {None}
            if self.dl_source in queues and len(queues) > 1:
                op = (kind, ch_i, args[:ack] + (True,) + args[ack + 1:])
        return op

    def pause_after(self, op: tuple) -> float:
        # a publish with a short expiration (30-200 ms): both brokers are observed once its
        # deadline has passed on both, so what expired by then is what the head-only rule says
        # (a message at a head has expired, one behind a live head waits), not a race with the
        # next operation
        if op[0] == "publish":
            exp = dict(op[2][5]).get("expiration")
            if exp is not None and 0 < int(exp) <= SHORT_TTL[1]:
                return (int(exp) + 100) / 1000
        return 0.0

    def _next(self) -> tuple:
        if self.pending:
            return self.pending.pop(0)
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
            if rng.random() < 0.15:          # "0" or short not in a transaction: it would enter queues later
                exp = rng.choice(["0", "0", "3600000", "short", "short"] if pch == 0 else ["3600000"])
                if exp == "short":
                    exp = str(rng.randint(*SHORT_TTL))
                props.append(("expiration", exp))
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
        return self.queue_op(kind, ch, q, x, 0.85, 0.93, 0.4)


# --- the runner ---

def cleanup(url: str, prefix: str, server_named: set = frozenset()) -> None:
    """Delete the sequence's queues and exchanges, and the server-named queues it declared
    (``Side.server_named``: a non-exclusive one stays when the sequence's connections close)."""
    c = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for q in QUEUES:
            c.channel().queue_delete(prefix + q)
        for x in ("x0", "x1"):
            c.channel().exchange_delete(prefix + x)
        for q in sorted(server_named):
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                c.channel().queue_delete(q)
    finally:
        c.close()


def settle(lev: Side, rab: Side) -> tuple[tuple, tuple]:
    """Observe both brokers until they show the same thing twice in a row (the second
    observation finding nothing new), or until the deadline. Returns what each showed since
    the step: (its deliveries and cancels, grouped by channel in arrival order; its ready
    counts). Between observations that differ, wait for frames (at most a few ms: an
    observation is itself a synchronisation, the wait only spares the brokers a busy loop)."""
    events: tuple[list, list] = ([], [])
    deadline = time.monotonic() + SETTLE
    pause, last = 0.001, None
    while True:
        views = []
        for side, ev in zip((lev, rab), events):
            new, ready = side.observe()
            ev += new
            views.append((sorted(ev, key=lambda e: e[1]), ready))
        if views[0] == views[1] == last or time.monotonic() > deadline:
            return views[0], views[1]
        if views[0] != views[1]:
            for side in (lev, rab):
                side.wait(pause)
            pause = min(2 * pause, 0.05)
        last = views[1] if views[0] == views[1] else None


def run_sequence(broker_url: str, name: str, gen: Tracker, seed: int, steps: int) -> None:
    """Run ``steps`` operations from ``gen`` on both brokers, comparing after each."""
    prefix = f"diff.{name[0]}{seed}.{uuid.uuid4().hex[:6]}."
    log: list = []
    ready: list = []

    def fail(op, seen_lev, seen_rab, why: str) -> None:
        history = "\n".join(f"  {o!r} -> {r!r}" for o, r in log[-40:])
        env = f"LEVERET_DIFF_{name.upper()}"
        pytest.fail(
            f"{name} seed {seed}, step {len(log)}: {why}\n  {op!r}\n  leveret:  {seen_lev!r}\n"
            f"  rabbitmq: {seen_rab!r}\nlast steps (operation -> RabbitMQ's result, events, ready):\n"
            f"{history}\nreplay: LEVERET_DIFF_RABBITMQ_URL=... {env}_SEED0={seed} "
            f"{env}_SEQUENCES=1 {env}_STEPS={steps} pytest tests/test_differential.py -k {name}")

    with contextlib.ExitStack() as stack:      # every close and cleanup runs, whatever fails
        lev_named: set = set()
        rab_named: set = set()
        stack.callback(cleanup, RABBIT, prefix, rab_named)
        stack.callback(cleanup, broker_url, prefix, lev_named)
        lev = Side(broker_url, prefix, lev_named)
        stack.callback(lev.close)
        rab = Side(RABBIT, prefix, rab_named)
        stack.callback(rab.close)
        for _ in range(steps):
            op = gen.next(ready)
            a, b = run_op(lev, op, prefix), run_op(rab, op, prefix)
            if a != b:
                log.append((op, (b,)))
                fail(op, a, b, "different results")
            pause = gen.pause_after(op)
            if pause:
                time.sleep(pause)
            seen_lev, seen_rab = settle(lev, rab)
            log.append((op, (b,) + seen_rab))
            if seen_lev != seen_rab:
                fail(op, seen_lev, seen_rab, f"still different after {SETTLE:g} s")
            ready = [s[0] if isinstance(s, tuple) else s for s in seen_rab[1]]
            gen.track(op, b, seen_rab[0])
            if b[0] == "connection-closed":
                break
        print(f"{name} seed {seed}: {len(log)} operations compared")


@pytest.fixture
def typed_properties(monkeypatch):
    """Keep each received content header's raw bytes (pika's decoding loses the field types)."""
    monkeypatch.setattr(pika.spec.BasicProperties, "decode",
                        _patched_decode(pika.spec.BasicProperties.decode))


@pytest.mark.parametrize("seed", ROUTING_SEEDS)
def test_routing_matches_rabbitmq(broker_url, typed_properties, seed):
    """The same random routing sequence gives the same results on Leveret and RabbitMQ."""
    run_sequence(broker_url, "routing", RoutingGen(random.Random(seed)), seed, ROUTING_STEPS)


@pytest.mark.parametrize("seed", LIFECYCLE_SEEDS)
def test_lifecycle_matches_rabbitmq(broker_url, typed_properties, seed):
    """The same random lifecycle sequence gives the same results on Leveret and RabbitMQ."""
    run_sequence(broker_url, "lifecycle", LifecycleGen(random.Random(seed)), seed, LIFECYCLE_STEPS)
