"""A queue: the ready list, its consumers, and the rules for handing messages out.

Invariants:

* ``ready`` holds messages in ``Message.id`` order. Delivery takes from the
  head; a requeued message goes back to its original position (RabbitMQ
  classic-queue behaviour), so after a channel closes its unacked messages are
  redelivered in the order they were first published.
* A message that has been delivered before and was requeued is in
  ``redelivered`` (a set of message ids), so the common path of a fresh message
  allocates no per-queue wrapper.
* ``consumers`` is a deque rotated after every delivery: round-robin among the
  consumers that have credit (prefetch window, channel flow, socket not
  backed up). :meth:`dispatch` runs whenever a message arrives or credit frees.
* Counters (``stat_*``) are plain ints read by the management API and metrics.

What later issues add here (TTL, length limits, dead-lettering, priorities,
single active consumer, delayed delivery) hooks into :meth:`enqueue`,
:meth:`dispatch` and :meth:`drop`; the store is reached only for persistent
messages in durable queues, through :mod:`leveret.store.base`.
"""
from __future__ import annotations

from collections import deque

from ..amqp.codec import table_plain
from .message import Message

FLOW_RESUME = 1000    # publishers held back by this queue resume below this many ready messages


class Consumer:
    __slots__ = ("tag", "ctag", "channel", "queue", "no_ack", "exclusive", "prefetch",
                 "unacked", "arguments")

    def __init__(self, tag: str, ctag: bytes, channel, queue, no_ack: bool, exclusive: bool,
                 prefetch: int, arguments: dict | None):
        self.tag = tag
        self.ctag = ctag            # pre-encoded shortstr
        self.channel = channel
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments or {}

    def can_take(self) -> bool:
        ch = self.channel
        if not ch.deliverable:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        g = ch.global_prefetch
        return not g or ch.unacked_count < g


class Queue:
    kind = "queue"
    __slots__ = ("name", "vhost", "durable", "exclusive_owner", "auto_delete", "arguments",
                 "ready", "redelivered", "consumers", "had_consumer", "bindings", "deleted",
                 "exclusive_consumer", "queue_type", "store", "ready_bytes",
                 "stat_published", "stat_delivered", "stat_acked", "stat_get",
                 "unacked_count", "flow_mark", "flow_waiters", "__weakref__")

    def __init__(self, name: str, vhost, durable=False, exclusive_owner=None, auto_delete=False,
                 arguments=None, store=None):
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.queue_type = table_plain(self.arguments.get("x-queue-type")) or "classic"
        self.ready: deque[Message] = deque()
        self.redelivered: set[int] = set()
        self.consumers: deque[Consumer] = deque()
        self.exclusive_consumer: Consumer | None = None
        self.had_consumer = False
        self.bindings: list = []            # Binding objects whose destination is this queue
        self.deleted = False
        self.store = store
        self.ready_bytes = 0
        self.unacked_count = 0
        self.flow_mark = 0                  # stat_delivered at the last flow hint
        self.flow_waiters: list = []        # callables resuming paused publishers
        self.stat_published = self.stat_delivered = self.stat_acked = 0
        self.stat_get = 0

    # ------------------------------------------------------------ messages in

    def enqueue(self, msg: Message) -> None:
        self.stat_published += 1
        if not self.ready and self.consumers:
            c = self._next_consumer()
            if c is not None:
                self._deliver(c, msg)
                return
        self.ready.append(msg)
        self.ready_bytes += msg.size

    def requeue(self, msgs: list[Message]) -> None:
        """Put delivered-but-unacked messages back at their original positions."""
        if not msgs or self.deleted:
            return
        self.unacked_count -= len(msgs)
        red = self.redelivered
        for m in msgs:
            red.add(m.id)
            self.ready_bytes += m.size
        ready = self.ready
        msgs = sorted(msgs, key=_by_id)
        if not ready or ready[0].id > msgs[-1].id:
            ready.extendleft(reversed(msgs))
        else:
            hi = msgs[-1].id
            front = []
            while ready and ready[0].id < hi:
                front.append(ready.popleft())
            merged = sorted(front + msgs, key=_by_id)
            ready.extendleft(reversed(merged))
        self.dispatch()

    # ------------------------------------------------------------ messages out

    def _next_consumer(self) -> Consumer | None:
        cs = self.consumers
        for _ in range(len(cs)):
            c = cs[0]
            cs.rotate(-1)
            if c.can_take():
                return c
        return None

    def _deliver(self, c: Consumer, msg: Message) -> None:
        red = msg.id in self.redelivered if self.redelivered else False
        self.stat_delivered += 1
        if c.no_ack:
            if red:
                self.redelivered.discard(msg.id)
            c.channel.deliver(c, self, msg, red)
            self.settled(msg)
        else:
            self.unacked_count += 1
            c.channel.deliver(c, self, msg, red)

    def dispatch(self) -> None:
        ready = self.ready
        while ready and self.consumers:
            c = self._next_consumer()
            if c is None:
                return
            msg = ready.popleft()
            self.ready_bytes -= msg.size
            self._deliver(c, msg)
            if self.flow_waiters and len(ready) < FLOW_RESUME:
                self.release_flow()

    def release_flow(self) -> None:
        waiters, self.flow_waiters = self.flow_waiters, []
        for resume in waiters:
            resume()

    def get(self) -> tuple[Message, bool] | None:
        """basic.get: take the head message (caller tracks it unless no-ack)."""
        if not self.ready:
            return None
        msg = self.ready.popleft()
        self.ready_bytes -= msg.size
        self.stat_get += 1
        return msg, msg.id in self.redelivered

    def ack(self, msg: Message) -> None:
        self.unacked_count -= 1
        self.stat_acked += 1
        self.settled(msg)

    def drop(self, msg: Message) -> None:
        """A delivered message rejected without requeue (dead-lettering hooks in here)."""
        self.unacked_count -= 1
        self.settled(msg)

    def settled(self, msg: Message) -> None:
        if self.redelivered:
            self.redelivered.discard(msg.id)
        if msg.store_ref is not None and self.store is not None:
            self.store.remove(self, msg)

    def purge(self) -> int:
        if self.flow_waiters:
            self.release_flow()
        n = len(self.ready)
        for m in self.ready:
            self.settled(m)
        self.ready.clear()
        self.ready_bytes = 0
        return n

    # ------------------------------------------------------------ consumers

    def add_consumer(self, c: Consumer) -> None:
        self.consumers.append(c)
        self.had_consumer = True
        if c.exclusive:
            self.exclusive_consumer = c
        self.dispatch()

    def remove_consumer(self, c: Consumer) -> None:
        try:
            self.consumers.remove(c)
        except ValueError:
            return
        if self.exclusive_consumer is c:
            self.exclusive_consumer = None
        if not self.consumers and self.flow_waiters:
            self.release_flow()         # nobody drains it any more: do not hold publishers

    def __repr__(self):
        return f"<Queue {self.name!r} ready={len(self.ready)} consumers={len(self.consumers)}>"


def _by_id(m: Message) -> int:
    return m.id
