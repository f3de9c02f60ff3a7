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

Disk (through the queue's :class:`~leveret.store.segments.QueueLog`):

* A persistent message in a durable queue is appended to the log when it is
  enqueued; ``pos`` maps its id to its record address, so an ack (or a purge,
  or a drop) appends an ack entry. Delivered marks are written only at an
  orderly stop (for redelivered and unacked messages): after a crash every
  recovered message is marked redelivered, as in RabbitMQ.
* Paging: ``ready`` is the in-memory *head* of the queue, at most
  :attr:`ram_msgs` messages / :attr:`ram_bytes` bytes. Once it is full, new
  messages go only to the log (transient ones too, flagged so they are never
  recovered) and are counted in ``tail``; they are read back, in order, when
  the head runs empty. Everything in the tail was enqueued after everything
  in the head, so message-id order is still queue order (read-back messages
  get fresh ids). The memory monitor shrinks the window under pressure.

What later issues add here (TTL, length limits, dead-lettering, priorities,
single active consumer, delayed delivery) hooks into :meth:`enqueue`,
:meth:`dispatch` and :meth:`drop`.
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
                 "unacked_count", "flow_mark", "flow_waiters", "log", "pos", "persist", "tail",
                 "tail_bytes", "persist_all", "__weakref__")

    # the in-memory window of a long queue (class-wide; the memory monitor lowers it)
    ram_msgs = 4096
    ram_bytes = 8 * 1024 * 1024

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
        self.persist = bool(durable and store is not None and store.durable)
        # a quorum queue's Raft log keeps every message, whatever its delivery mode
        self.persist_all = self.persist and self.queue_type == "quorum"
        self.log = store.open_log(self) if self.persist else None
        self.pos: dict[int, int] = {}       # message id -> record address in ``log``
        self.tail = 0                       # messages paged out (only in the log)
        self.tail_bytes = 0
        self.ready_bytes = 0
        self.unacked_count = 0
        self.flow_mark = 0                  # stat_delivered at the last flow hint
        self.flow_waiters: list = []        # callables resuming paused publishers
        self.stat_published = self.stat_delivered = self.stat_acked = 0
        self.stat_get = 0

    # ------------------------------------------------------------ messages in

    @property
    def message_count(self) -> int:
        return len(self.ready) + self.tail

    def enqueue(self, msg: Message) -> None:
        self.stat_published += 1
        if self.tail or len(self.ready) >= self.ram_msgs or self.ready_bytes >= self.ram_bytes:
            if self.store is not None and self.store.pages:
                self._page_out(msg)
                if not self.ready and self.consumers:
                    self.dispatch()
                return
        if self.persist and (msg.persistent or self.persist_all):
            self.pos[msg.id] = self.log.append(msg, False)
        if not self.ready and self.consumers:
            c = self._next_consumer()
            if c is not None:
                self._deliver(c, msg)
                return
        self.ready.append(msg)
        self.ready_bytes += msg.size

    def _page_out(self, msg: Message) -> None:
        log = self.log
        if log is None:
            log = self.log = self.store.open_log(self)
        if not self.tail:
            log.start_tail()
        log.append(msg, not self.keeps(msg))
        self.tail += 1
        self.tail_bytes += msg.size

    def keeps(self, msg: Message) -> bool:
        """Does ``msg`` survive a restart in this queue?"""
        return self.persist and (msg.persistent or self.persist_all)

    def _page_in(self) -> None:
        """Read the next batch of the paged-out tail into the head."""
        recs = self.log.read_tail(max(1, min(self.ram_msgs, 1024)), max(self.ram_bytes // 2, 1))
        self.load(recs)
        self.tail -= len(recs)
        if self.tail <= 0 or not recs:
            self.tail = self.tail_bytes = 0
            self.log.end_tail()

    def load(self, recs: list) -> None:
        """Append records read from the log (recovery, page-in) to the head."""
        ready, pos, red = self.ready, self.pos, self.redelivered
        new_id = self.vhost.broker.new_message_id
        nbytes = 0
        for addr, _flags, _exp, ex_rk, header, body, delivered in recs:
            m = Message.from_record(new_id(), ex_rk, header, body)
            pos[m.id] = addr
            if delivered:
                red.add(m.id)
            ready.append(m)
            nbytes += m.size
        self.ready_bytes += nbytes
        self.tail_bytes -= nbytes

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

    def mark_delivered(self, msg: Message) -> None:
        """Record that ``msg`` was delivered, so the next start marks it redelivered (written at
        an orderly stop: after a crash every recovered message counts as delivered anyway)."""
        addr = self.pos.get(msg.id)
        if addr is not None:
            self.log.mark_delivered(addr)

    def compact(self) -> int:
        """Move the few live records of stuck log segments to the end of the log so the
        segments can be deleted (disk use then tracks what is queued). Returns records moved."""
        log = self.log
        if log is None or not self.pos or self.tail or log.cursor is not None:
            return 0        # appends would land in the paged-out tail: not now
        stuck = log.stuck_segments()
        if not stuck:
            return 0
        nums = set(stuck)
        by_id = {m.id: m for m in self.ready}
        for c in list(self.vhost.broker.connections):
            for ch in c.sessions.values():
                for msg, q, _c in ch.unacked.values():
                    if q is self:
                        by_id[msg.id] = msg
        moved = 0
        for mid, addr in list(self.pos.items()):
            if addr >> 32 not in nums:
                continue
            msg = by_id.get(mid)
            if msg is None:
                continue
            self.pos[mid] = log.append(msg, not self.keeps(msg))
            log.ack(addr)
            moved += 1
        return moved

    def save_delivered_marks(self) -> None:
        if self.pos and self.redelivered:
            for m in self.ready:
                if m.id in self.redelivered:
                    self.mark_delivered(m)

    def dispatch(self) -> None:
        ready = self.ready
        while (ready or self.tail) and self.consumers:
            c = self._next_consumer()
            if c is None:
                return
            if not ready:
                self._page_in()
                if not ready:
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
            if not self.tail:
                return None
            self._page_in()
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
        if self.pos:
            addr = self.pos.pop(msg.id, None)
            if addr is not None:
                self.log.ack(addr)

    def purge(self) -> int:
        if self.flow_waiters:
            self.release_flow()
        n = len(self.ready) + self.tail
        for m in self.ready:
            self.settled(m)
        self.ready.clear()
        self.ready_bytes = 0
        if self.tail:
            self.log.skip_tail()
            self.tail = self.tail_bytes = 0
        return n

    def destroy_log(self) -> None:
        """The queue was deleted: its files go."""
        self.pos.clear()
        self.tail = self.tail_bytes = 0
        if self.log is not None:
            self.log.destroy()
            self.store.forget_log(self.log)
            self.log = None

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
