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

Lifecycle (only queues that use a feature pay for it: ``special`` sends
:meth:`enqueue` down the slow path, ``cmode`` switches consumer selection):

* TTL: a message's expiry (``x-message-ttl``, its ``expiration``, the lower
  wins) is kept in ``exp`` (ready messages) / ``exp_out`` (delivered, kept for
  a requeue) and in a heap with lazy deletion; one timer per queue fires at the
  earliest expiry and removes *every* due message wherever it sits in the queue
  (RabbitMQ only expires at the head: a documented improvement). Expired
  messages are dead-lettered (:mod:`.deadletter`) if the queue has a DLX.
* Length limits (``x-max-length``, ``x-max-length-bytes``, ``x-overflow``)
  count ready messages; drop-head dead-letters with reason ``maxlen``;
  reject-publish makes :meth:`enqueue` return True (the channel nacks).
* Priorities (``x-max-priority``): ``ready`` is a :class:`PriorityReady`, one
  FIFO per level; such queues do not page (documented).
* Consumer priorities (``x-priority``) and single active consumer.
* Quorum queues count returns per message (``x-delivery-count`` header,
  ``x-delivery-limit``).
* Queue expiry (``x-expires``): a timer deletes the queue once unused.
"""
from __future__ import annotations

import heapq
import time
from collections import deque

from ..amqp.codec import table_plain
from .deadletter import dead_letter
from .dedup import DedupCache
from .message import Message
from .policy import effective_queue_settings

FLOW_RESUME = 1000    # publishers held back by this queue resume below this many ready messages


def now_ms() -> int:
    return int(time.time() * 1000)


class Ready(deque):
    """The ready list of a plain queue: messages in id (queue) order."""

    __slots__ = ()

    def merge(self, msgs: list) -> None:
        """Put requeued messages (sorted by id) back at their original positions."""
        if not self or self[0].id > msgs[-1].id:
            self.extendleft(reversed(msgs))
            return
        hi = msgs[-1].id
        front = []
        while self and self[0].id < hi:
            front.append(self.popleft())
        self.extendleft(reversed(sorted(front + msgs, key=_by_id)))

    def remove_ids(self, ids: set) -> list:
        """Take out the messages whose ids are in ``ids`` (wherever they are); returns them."""
        out = []
        while self and self[0].id in ids:
            out.append(self.popleft())
        if len(out) < len(ids) and self:
            keep = []
            for m in self:
                (out if m.id in ids else keep).append(m)
            self.clear()
            self.extend(keep)
        return out


class PriorityReady:
    """The ready list of an ``x-max-priority`` queue: one FIFO per priority level,
    highest first (a message's priority is capped at the maximum, none counts as 0)."""

    __slots__ = ("levels", "top", "n")

    def __init__(self, max_priority: int):
        self.top = max_priority
        self.levels = [Ready() for _ in range(max_priority + 1)]
        self.n = 0

    def _level(self, m: Message) -> Ready:
        return self.levels[m.priority if m.priority <= self.top else self.top]

    def append(self, m: Message) -> None:
        self._level(m).append(m)
        self.n += 1

    def popleft(self) -> Message:
        for lvl in reversed(self.levels):
            if lvl:
                self.n -= 1
                return lvl.popleft()
        raise IndexError("pop from an empty queue")

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self):
        for lvl in reversed(self.levels):
            yield from lvl

    def __getitem__(self, i: int) -> Message:
        if i != 0:
            raise IndexError(i)
        for lvl in reversed(self.levels):
            if lvl:
                return lvl[0]
        raise IndexError(i)

    def clear(self) -> None:
        for lvl in self.levels:
            lvl.clear()
        self.n = 0

    def merge(self, msgs: list) -> None:
        by: dict = {}
        for m in msgs:
            by.setdefault(id(self._level(m)), (self._level(m), []))[1].append(m)
        for lvl, ms in by.values():
            lvl.merge(ms)
        self.n += len(msgs)

    def remove_ids(self, ids: set) -> list:
        out = []
        for lvl in self.levels:
            out.extend(lvl.remove_ids(ids))
        self.n -= len(out)
        return out


class Consumer:
    __slots__ = ("tag", "ctag", "channel", "queue", "no_ack", "exclusive", "prefetch",
                 "unacked", "arguments", "priority")

    def __init__(self, tag: str, ctag: bytes, channel, queue, no_ack: bool, exclusive: bool,
                 prefetch: int, arguments: dict | None, priority: int = 0):
        self.tag = tag
        self.ctag = ctag            # pre-encoded shortstr
        self.channel = channel
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments or {}
        self.priority = priority

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
                 "tail_bytes", "persist_all", "policy", "special", "cmode",
                 "msg_ttl", "expires", "max_len", "max_bytes", "overflow", "dlx", "dlrk",
                 "delivery_limit", "max_priority", "sac", "consumer_timeout", "dedup",
                 "exp", "exp_out", "exp_heap", "exp_timer", "exp_timer_at", "dcount",
                 "last_used", "idle_timer", "overflowing", "__weakref__")

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
        self.exp: dict[int, int] = {}       # ready message id -> expiry (epoch ms)
        self.exp_out: dict[int, int] = {}   # delivered message id -> expiry (kept for a requeue)
        self.exp_heap: list = []            # (expiry, id), lazily cleaned
        self.exp_timer = None
        self.exp_timer_at = 0
        self.dcount: dict[int, int] = {}    # quorum: message id -> times returned
        self.idle_timer = None
        self.last_used = now_ms()
        self.policy = None
        self.expires = None
        self.dedup = None
        self.overflowing = False
        mp = table_plain(self.arguments.get("x-max-priority"))
        self.max_priority = mp if isinstance(mp, int) and mp > 0 else None
        self.ready = PriorityReady(self.max_priority) if self.max_priority else Ready()
        self.configure()

    # ------------------------------------------------------------ configuration

    def configure(self) -> None:
        """(Re)compute the effective settings from the x-arguments and the policy in force."""
        eff = effective_queue_settings(self.arguments, self.policy, self.queue_type)
        self.msg_ttl = eff["message-ttl"]
        self.max_len = eff["max-length"]
        self.max_bytes = eff["max-length-bytes"]
        self.overflow = eff["overflow"] or "drop-head"
        if self.queue_type == "quorum" and self.overflow == "reject-publish-dlx":
            self.overflow = "drop-head"     # RabbitMQ 3.10's quorum queues treat it as drop-head
        self.dlx = eff["dead-letter-exchange"]
        self.dlrk = eff["dead-letter-routing-key"]
        self.delivery_limit = eff["delivery-limit"] if self.queue_type == "quorum" else None
        self.consumer_timeout = eff["consumer-timeout"]
        self.sac = table_plain(self.arguments.get("x-single-active-consumer")) is True
        if table_plain(self.arguments.get("x-message-deduplication")) is True:
            if self.dedup is None:
                self.dedup = DedupCache.for_entity(self, self.arguments)
        else:
            self.dedup = None
        self.special = (self.msg_ttl is not None or self.max_len is not None or self.max_bytes is not None
                        or self.max_priority is not None or self.queue_type == "quorum" or self.dedup is not None)
        self.cmode = 1 if self.sac else (2 if any(c.priority for c in self.consumers) else 0)
        old = self.expires
        self.expires = eff["expires"]
        if self.expires != old:
            self._arm_idle()
        if self.max_len is not None or self.max_bytes is not None:
            self._enforce_limits()
        # (a new message TTL applies to messages published from now on, as in RabbitMQ)

    # ------------------------------------------------------------ messages in

    @property
    def message_count(self) -> int:
        return len(self.ready) + self.tail

    def enqueue(self, msg: Message):
        """Add a routed message. Returns True if the queue refused it (reject-publish)."""
        if self.special or msg.flags & 0x0100:
            return self._enqueue_special(msg)
        self.stat_published += 1
        if self.tail or len(self.ready) >= self.ram_msgs or self.ready_bytes >= self.ram_bytes:
            if self.store is not None and self.store.pages:
                self._page_out(msg, 0)
                if not self.ready and self.consumers:
                    self.dispatch()
                return None
        if self.persist and (msg.persistent or self.persist_all):
            self.pos[msg.id] = self.log.append(msg, False)
        if not self.ready and self.consumers:
            c = self._next_consumer()
            if c is not None:
                self._deliver(c, msg)
                return None
        self.ready.append(msg)
        self.ready_bytes += msg.size
        return None

    def _enqueue_special(self, msg: Message):
        """enqueue for queues with lifecycle features, or a message with an ``expiration``."""
        if self.overflow != "drop-head" and self._would_overflow(msg):
            if self.overflow == "reject-publish-dlx":
                self.dead_letter([msg], "maxlen")
            return True
        if self.dedup is not None and self.dedup.duplicate(msg):
            return True         # refused: the publisher gets a nack (plugin: {true, reject})
        self.stat_published += 1
        ttl = self.msg_ttl
        if msg.flags & 0x0100:
            per = msg.ttl_ms()
            if per is not None and (ttl is None or per < ttl):
                ttl = per
        exp_at = 0
        if ttl is not None:
            if ttl == 0:
                # TTL 0: delivered now to a consumer that can take it, or expired at once
                if not self.ready and not self.tail and self.consumers:
                    c = self._next_consumer()
                    if c is not None:
                        if self.persist and (msg.persistent or self.persist_all):
                            self.pos[msg.id] = self.log.append(msg, False)
                        self._deliver(c, msg)
                        return None
                if self.dedup is not None:
                    self.dedup.left_queue(msg)
                self.dead_letter([msg], "expired")
                return None
            exp_at = now_ms() + ttl
        pages = self.store is not None and self.store.pages and self.max_priority is None and self.dedup is None
        if pages and (self.tail or len(self.ready) >= self.ram_msgs or self.ready_bytes >= self.ram_bytes):
            self._page_out(msg, exp_at)
            if exp_at and self.exp_timer is None:
                self._arm_tail_check(exp_at)
        else:
            if self.persist and (msg.persistent or self.persist_all):
                self.pos[msg.id] = self.log.append(msg, False, exp_at)
            if not self.ready and self.consumers:
                c = self._next_consumer()
                if c is not None:
                    if exp_at:
                        self.exp_out[msg.id] = exp_at
                    self._deliver(c, msg)
                    return None
            self.ready.append(msg)
            self.ready_bytes += msg.size
            if exp_at:
                self.exp[msg.id] = exp_at
                heapq.heappush(self.exp_heap, (exp_at, msg.id))
                if self.exp_timer is None or exp_at < self.exp_timer_at:
                    self._arm_expiry()
        if self.max_len is not None or self.max_bytes is not None:
            self._enforce_limits()
        if not self.ready and self.tail and self.consumers:
            self.dispatch()
        return None

    def _would_overflow(self, msg: Message) -> bool:
        ml, mb = self.max_len, self.max_bytes
        if self.queue_type == "quorum":
            # a quorum queue refuses once it is *over* the limit (it fills to max + 1), and keeps
            # refusing until it is down to 80% of it (rabbit_fifo's overflow hysteresis)
            n, b = self.message_count, self.ready_bytes + self.tail_bytes
            if self.overflowing:
                if (ml is None or n <= int(ml * 0.8)) and (mb is None or b <= int(mb * 0.8)):
                    self.overflowing = False
                else:
                    return True
            over = (ml is not None and n > ml) or (mb is not None and b > mb)
            if over:
                self.overflowing = True
            return over
        return ((ml is not None and self.message_count + 1 > ml)
                or (mb is not None and self.ready_bytes + self.tail_bytes + msg.size > mb))

    def _enforce_limits(self) -> None:
        """drop-head: remove (and dead-letter) from the head until within the limits."""
        if self.overflow != "drop-head":
            return
        ml, mb = self.max_len, self.max_bytes
        dropped = []
        while ((ml is not None and self.message_count > ml)
               or (mb is not None and self.ready_bytes + self.tail_bytes > mb)):
            m = self._pop_ready(expire=False)
            if m is None:
                break
            self._forget(m)
            dropped.append(m)
        if dropped:
            self.dead_letter(dropped, "maxlen")

    def _page_out(self, msg: Message, exp_at: int) -> None:
        log = self.log
        if log is None:
            log = self.log = self.store.open_log(self)
        if not self.tail:
            log.start_tail()
        log.append(msg, not self.keeps(msg), exp_at)
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
        exp = self.exp
        for addr, _flags, exp_at, ex_rk, header, body, delivered in recs:
            m = Message.from_record(new_id(), ex_rk, header, body)
            pos[m.id] = addr
            if delivered:
                red.add(m.id)
            ready.append(m)
            nbytes += m.size
            if self.dedup is not None:
                self.dedup.loaded(m)
            if exp_at:
                exp[m.id] = exp_at
                heapq.heappush(self.exp_heap, (exp_at, m.id))
        self.ready_bytes += nbytes
        self.tail_bytes -= nbytes
        if exp:
            self._arm_expiry()

    def requeue(self, msgs: list[Message], explicit: bool = False) -> None:
        """Put delivered-but-unacked messages back at their original positions (``explicit``:
        a nack/reject/recover, which a quorum queue without a delivery limit puts at the back)."""
        if not msgs or self.deleted:
            return
        self.unacked_count -= len(msgs)
        if self.special:
            msgs = self._returned(msgs)
            if not msgs:
                self.dispatch()
                return
        red = self.redelivered
        if explicit and self.queue_type == "quorum" and self.delivery_limit is None:
            new_id = self.vhost.broker.new_message_id
            for m in msgs:
                old = m.id
                m = m.copy()
                m.id = new_id()
                self._renumber(old, m.id)
                red.add(m.id)
                self.ready.append(m)
                self.ready_bytes += m.size
            self.dispatch()
            return
        if self.queue_type == "quorum":
            # rabbit_fifo serves returned messages first, in the order they came back
            ready = self.ready
            k = 0
            for m in ready:
                if m.id not in red:
                    break
                k += 1
            for m in msgs:
                red.add(m.id)
                self.ready_bytes += m.size
                ready.insert(k, m)
                k += 1
        else:
            for m in msgs:
                red.add(m.id)
                self.ready_bytes += m.size
            self.ready.merge(sorted(msgs, key=_by_id))
        if self.max_len is not None or self.max_bytes is not None:
            self._enforce_limits()
        self.dispatch()

    def _renumber(self, old: int, new: int) -> None:
        """A message re-enters the queue under a new id (quorum requeue to the back)."""
        for d in (self.pos, self.exp, self.exp_out, self.dcount):
            if old in d:
                d[new] = d.pop(old)
        if self.dedup is not None and old in self.dedup.by_id:
            self.dedup.by_id[new] = self.dedup.by_id.pop(old)

    def _returned(self, msgs: list) -> list:
        """Requeue bookkeeping of lifecycle queues: expiry kept, quorum return counts, the
        messages past their expiry or delivery limit dead-lettered. Returns those to requeue."""
        keep, expired, limited = [], [], []
        now = now_ms() if self.exp_out else 0
        for m in msgs:
            if self.queue_type == "quorum":
                n = self.dcount[m.id] = self.dcount.get(m.id, 0) + 1
                if self.delivery_limit is not None and n > self.delivery_limit:
                    self._forget(m)
                    limited.append(m.without_header("x-delivery-count"))
                    continue
            t = self.exp_out.pop(m.id, None) if self.exp_out else None
            if t is not None:
                if t <= now:
                    self._forget(m)
                    expired.append(m)
                    continue
                self.exp[m.id] = t
                heapq.heappush(self.exp_heap, (t, m.id))
            keep.append(m)
        if self.exp:
            self._arm_expiry()
        if expired:
            self.dead_letter(expired, "expired")
        if limited:
            self.dead_letter(limited, "delivery_limit")
        return keep

    # ------------------------------------------------------------ expiry

    def _arm_expiry(self) -> None:
        heap = self.exp_heap
        if not heap:
            return
        t = heap[0][0]
        if self.exp_timer is not None:
            if self.exp_timer_at <= t:
                return
            self.exp_timer.cancel()
        self.exp_timer_at = t
        self.exp_timer = self.vhost.broker.call_at_ms(t, self._expiry_tick)

    def _arm_tail_check(self, t: int) -> None:
        """Paged-out messages expire when read back; make sure they are read back in time."""
        if self.exp_timer is None:
            self.exp_timer_at = t
            self.exp_timer = self.vhost.broker.call_at_ms(t, self._expiry_tick)

    def _expiry_tick(self) -> None:
        self.exp_timer = None
        if self.deleted:
            return
        now = now_ms()
        heap, exp = self.exp_heap, self.exp
        due = set()
        while heap and heap[0][0] <= now:
            t, mid = heapq.heappop(heap)
            if exp.get(mid) == t:
                due.add(mid)
        if due:
            self._expire_ids(due)
        if not self.ready and self.tail:
            # the in-memory head is gone: read the tail back so its due messages expire too
            self._page_in()
            if self.consumers:
                self.dispatch()
            if self.ready and not self.exp_heap:
                self._arm_tail_check(now + 1000)
        self._arm_expiry()

    def _expire_ids(self, due: set) -> None:
        removed = self.ready.remove_ids(due)
        for m in removed:
            self.ready_bytes -= m.size
            self._forget(m)
        if removed:
            self.dead_letter(removed, "expired")
            if self.flow_waiters and len(self.ready) < FLOW_RESUME:
                self.release_flow()

    def _forget(self, m: Message) -> None:
        """``m`` leaves the queue without a delivery (expired, dropped, over a limit)."""
        self.exp.pop(m.id, None)
        self.settled(m)

    def dead_letter(self, msgs: list, reason: str) -> None:
        if self.dlx is not None:
            deferred = self.vhost.broker.dl_deferred
            if deferred is not None:
                deferred.append((self, msgs, reason))
            else:
                dead_letter(self, msgs, reason)

    # ------------------------------------------------------------ queue expiry (x-expires)

    def touch(self) -> None:
        """The queue was used (declared, basic.get): its x-expires lease starts again."""
        if self.expires is not None:
            self.last_used = now_ms()
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.expires is not None and not self.consumers and not self.deleted:
            self.idle_timer = self.vhost.broker.call_at_ms(self.last_used + self.expires, self._idle_tick)

    def _idle_tick(self) -> None:
        self.idle_timer = None
        if self.deleted or self.consumers or self.expires is None:
            return
        if now_ms() >= self.last_used + self.expires:
            self.vhost.delete_queue(self)
        else:
            self._arm_idle()

    def stop_timers(self) -> None:
        for t in (self.exp_timer, self.idle_timer):
            if t is not None:
                t.cancel()
        self.exp_timer = self.idle_timer = None

    # ------------------------------------------------------------ messages out

    def _next_consumer(self) -> Consumer | None:
        cs = self.consumers
        if self.cmode:
            return self._next_consumer_special()
        if len(cs) == 1:
            c = cs[0]
            return c if c.can_take() else None
        for _ in range(len(cs)):
            c = cs[0]
            cs.rotate(-1)
            if c.can_take():
                return c
        return None

    def _next_consumer_special(self) -> Consumer | None:
        cs = self.consumers
        if self.cmode == 1:
            # single active consumer: the first registered, and only it
            c = cs[0] if cs else None
            return c if c is not None and c.can_take() else None
        # consumer priorities: ``consumers`` is sorted by priority (highest first); the first
        # that can take wins and moves to the end of its priority group (round-robin within it)
        for i, c in enumerate(cs):
            if c.can_take():
                j = i + 1
                while j < len(cs) and cs[j].priority == c.priority:
                    j += 1
                if j - 1 > i:
                    del cs[i]
                    cs.insert(j - 1, c)
                return c
        return None

    def _deliver(self, c: Consumer, msg: Message) -> None:
        red = msg.id in self.redelivered if self.redelivered else False
        self.stat_delivered += 1
        if self.special:
            if self.exp:
                t = self.exp.pop(msg.id, None)
                if t is not None and not c.no_ack:
                    self.exp_out[msg.id] = t
            if self.dcount:
                n = self.dcount.get(msg.id)
                if n:
                    msg = msg.with_header("x-delivery-count", "l", n)
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
            self.pos[mid] = log.append(msg, not self.keeps(msg), self.exp.get(mid) or self.exp_out.get(mid, 0))
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
            if self.exp and self._expired_at_head(msg):
                continue
            self._deliver(c, msg)
            if self.flow_waiters and len(ready) < FLOW_RESUME:
                self.release_flow()

    def _expired_at_head(self, msg: Message) -> bool:
        t = self.exp.get(msg.id)
        if t is None or t > now_ms():
            return False
        self._forget(msg)
        self.dead_letter([msg], "expired")
        return True

    def _pop_ready(self, expire: bool = True) -> Message | None:
        """Take the head message (paging in if needed; due messages expire on the way)."""
        ready = self.ready
        while True:
            if not ready:
                if not self.tail:
                    return None
                self._page_in()
                if not ready:
                    return None
            msg = ready.popleft()
            self.ready_bytes -= msg.size
            if expire and self.exp and self._expired_at_head(msg):
                continue
            return msg

    def release_flow(self) -> None:
        waiters, self.flow_waiters = self.flow_waiters, []
        for resume in waiters:
            resume()

    def get(self) -> tuple[Message, bool] | None:
        """basic.get: take the head message (caller tracks it unless no-ack)."""
        self.touch()
        msg = self._pop_ready()
        if msg is None:
            return None
        self.stat_get += 1
        red = msg.id in self.redelivered
        if self.special:
            if self.exp:
                t = self.exp.pop(msg.id, None)
                if t is not None:
                    self.exp_out[msg.id] = t
            if self.queue_type == "quorum":
                # basic.get on a quorum queue always carries the count (0 the first time)
                msg = msg.with_header("x-delivery-count", "l", self.dcount.get(msg.id, 0))
        return msg, red

    def ack(self, msg: Message) -> None:
        self.unacked_count -= 1
        self.stat_acked += 1
        self.settled(msg)

    def drop(self, msg: Message) -> None:
        """A delivered message rejected without requeue: dead-lettered if the queue has a DLX."""
        self.unacked_count -= 1
        self.settled(msg)
        if self.dlx is not None:
            self.dead_letter([msg], "rejected")

    def settled(self, msg: Message) -> None:
        if self.redelivered:
            self.redelivered.discard(msg.id)
        if self.pos:
            addr = self.pos.pop(msg.id, None)
            if addr is not None:
                self.log.ack(addr)
        if self.special:
            if self.exp_out:
                self.exp_out.pop(msg.id, None)
            if self.dcount:
                self.dcount.pop(msg.id, None)
            if self.dedup is not None:
                self.dedup.left_queue(msg)

    def purge(self) -> int:
        if self.flow_waiters:
            self.release_flow()
        n = len(self.ready) + self.tail
        for m in self.ready:
            self.settled(m)
        self.ready.clear()
        self.exp.clear()
        self.exp_heap.clear()
        self.ready_bytes = 0
        if self.tail:
            self.log.skip_tail()
            self.tail = self.tail_bytes = 0
        return n

    def destroy_log(self) -> None:
        """The queue was deleted: its files go."""
        self.pos.clear()
        self.tail = self.tail_bytes = 0
        self.stop_timers()
        if self.dedup is not None:
            self.dedup.destroy()
        if self.log is not None:
            self.log.destroy()
            self.store.forget_log(self.log)
            self.log = None

    # ------------------------------------------------------------ consumers

    def add_consumer(self, c: Consumer) -> None:
        if c.priority and not self.sac:
            # keep ``consumers`` sorted by priority, highest first (stable)
            cs = self.consumers
            i = 0
            while i < len(cs) and cs[i].priority >= c.priority:
                i += 1
            cs.insert(i, c)
            self.cmode = 2
        elif self.cmode == 2:
            cs = self.consumers
            i = 0
            while i < len(cs) and cs[i].priority >= 0:
                i += 1
            cs.insert(i, c)
        else:
            self.consumers.append(c)
        self.had_consumer = True
        if c.exclusive:
            self.exclusive_consumer = c
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.dispatch()

    def remove_consumer(self, c: Consumer, dispatch: bool = True) -> None:
        was_active = self.sac and self.consumers and self.consumers[0] is c
        try:
            self.consumers.remove(c)
        except ValueError:
            return
        if was_active and self.queue_type != "quorum" and len(self.consumers) > 1:
            # a classic queue hands over to the remaining consumer with the highest priority
            best = max(self.consumers, key=lambda x: x.priority)
            if best is not self.consumers[0]:
                self.consumers.remove(best)
                self.consumers.appendleft(best)
        if self.exclusive_consumer is c:
            self.exclusive_consumer = None
        if not self.consumers:
            if self.flow_waiters:
                self.release_flow()         # nobody drains it any more: do not hold publishers
            if self.expires is not None:
                self.last_used = now_ms()
                self._arm_idle()
        elif self.sac and dispatch:
            self.dispatch()                 # the next consumer becomes the active one

    def __repr__(self):
        return f"<Queue {self.name!r} ready={len(self.ready)} consumers={len(self.consumers)}>"


def _by_id(m: Message) -> int:
    return m.id
