"""The common queue: ready list, consumers, and the rules for handing messages out.

What every queue type shares lives here; each feature a queue may use has its
own module, mixed in (``ttl.py``, ``expires.py``, ``limits.py``,
``paging.py``), the ready list and the consumer-selection strategies too
(``ready.py``, ``consumers.py``). A queue *type* is a subclass that owns its
rules: its argument list, what it refuses at declare, how it counts and
orders returned messages (``classic.py``, ``quorum.py``).

Invariants:

* ``ready`` holds messages in ``Message.id`` order (per priority level for a
  priority queue). Delivery takes from the head; a requeued message goes back
  to its original position (RabbitMQ classic-queue behaviour), so after a
  channel closes its unacked messages are redelivered in the order they were
  first published.
* A message that has been delivered before and was requeued is in
  ``redelivered`` (a set of message ids), so the common path of a fresh
  message allocates no per-queue wrapper.
* :meth:`dispatch` runs whenever a message arrives or credit frees; the
  dispatch mode (``pick``) chooses the consumer.
* Only queues that use a lifecycle feature pay for it: ``special`` sends
  :meth:`enqueue` (and the delivery/settle bookkeeping) down the slow path.
  The fast path below is a specialisation of :meth:`_enqueue_special` for a
  queue without TTL, limits, priorities, deduplication or type rules and a
  message without ``expiration``.
* Publisher flow control: while publishers are held for this queue's backlog
  (``flow_held``), every drain checks whether it fell below the resume mark
  (:class:`~leveret.broker.flow.FlowControl`).
* Watchers (``watchers``: callables, set by :meth:`watch`) are told, with no argument, that
  the queue's consumers, their credit or its emptiness may have changed -- RabbitMQ's queue
  decorators' ``consumer_state_changed``, which a federated queue's link listens to. A watched
  queue is ``special``, so the calls sit only on the slow paths: consumer added or removed,
  a message enqueued, delivered, got, settled, requeued, the queue purged. A watcher is called
  synchronously and must only schedule its work (it runs inside the queue's operation).
"""
from __future__ import annotations

from collections import deque

from ...amqp.codec import table_plain
from ...amqp.errors import precondition_failed
from ..deadletter import dead_letter
from ..dedup import DedupCache
from ..message import Message
from . import expires, limits, paging, ttl
from .arguments import TypeRules, effective_definition, effective_settings
from .consumers import BY_PRIORITY, ROUND_ROBIN, Consumer, mode_for
from .expires import QueueExpiry
from .limits import LengthLimits
from .paging import QueueLogging
from .ready import by_id, ready_list
from .ttl import MessageTTL, now_ms

CORE_SLOTS = ("name", "vhost", "durable", "exclusive_owner", "auto_delete", "arguments", "ready", "ready_bytes",
              "redelivered", "consumers", "had_consumer", "exclusive_consumer", "mode", "pick", "bindings",
              "deleted", "unacked_count", "stat_in", "stat_deliver", "stat_deliver_noack", "stat_get",
              "stat_get_noack", "stat_get_empty", "stat_redeliver", "stat_requeued", "stat_rejected", "flow",
              "flow_mark", "flow_held", "policy", "operator_policy",
              "special", "dlx", "dlrk", "max_priority", "sac", "consumer_timeout", "dedup", "watchers", "__weakref__")


class Queue(MessageTTL, LengthLimits, QueueExpiry, QueueLogging):
    kind = "queue"
    queue_type = "classic"
    RULES: TypeRules        # set by each type
    PERSIST_ALL = False     # a durable queue of this type keeps transient messages too
    # how the channel treats the type (RabbitMQ: classic queues are rabbit_limiter's, quorum
    # queues keep their own credit in rabbit_fifo)
    GLOBAL_QOS = True       # takes part in the channel-wide prefetch window (basic.qos global)
    UNPARK_ONE = False      # a reopened window puts back only that consumer (else: the channel's)
    RETURNS_BY_TAG = False  # messages returned together come back ordered by consumer tag, tag
    TTL0_GRACE = 0          # ms a TTL-0 message lives (0: it is delivered at once or expires)
    __slots__ = CORE_SLOTS + ttl.SLOTS + limits.SLOTS + expires.SLOTS + paging.SLOTS

    def __init__(self, name: str, vhost, durable=False, exclusive_owner=None, auto_delete=False,
                 arguments=None, store=None):
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.redelivered: set[int] = set()
        self.consumers: deque[Consumer] = deque()
        self.exclusive_consumer: Consumer | None = None
        self.had_consumer = False
        self.bindings: list = []            # Binding objects whose destination is this queue
        self.deleted = False
        self.ready_bytes = 0
        self.unacked_count = 0
        # statistics (read by the sampler, :mod:`leveret.broker.stats`; acks are derived)
        self.stat_in = 0                    # messages a channel published into the queue
        self.stat_deliver = self.stat_deliver_noack = 0     # to consumers, ack / no-ack
        self.stat_get = self.stat_get_noack = self.stat_get_empty = 0
        self.stat_redeliver = 0             # deliveries (and gets) with the redelivered flag
        self.stat_requeued = self.stat_rejected = 0         # unacked messages requeued / dropped
        self.flow = flow = vhost.broker.flow
        self.flow_mark = 0                  # deliveries at the last flow hint
        self.flow_held = False              # publishers are held until this queue drains
        self.policy = None
        self.operator_policy = None
        self.dedup = None
        self.watchers: tuple = ()
        mp = table_plain(self.arguments.get("x-max-priority"))
        self.max_priority = mp if isinstance(mp, int) and mp > 0 else None
        self.ready = ready_list(self.max_priority)
        self._init_ttl()
        self._init_limits()
        self._init_expiry()
        self._init_log(store, flow.window)
        self.configure()

    # ------------------------------------------------------------ configuration

    def configure(self) -> None:
        """(Re)compute the effective settings from the x-arguments and the policy in force."""
        eff = effective_settings(self.arguments, effective_definition(self), self.RULES)
        self.msg_ttl = eff["message-ttl"]
        self.max_len = eff["max-length"]
        self.max_bytes = eff["max-length-bytes"]
        self.overflow = eff["overflow"] or "drop-head"
        self.dlx = eff["dead-letter-exchange"]
        self.dlrk = eff["dead-letter-routing-key"]
        self.consumer_timeout = eff["consumer-timeout"]
        self.configure_type(eff)
        self.sac = table_plain(self.arguments.get("x-single-active-consumer")) is True
        if table_plain(self.arguments.get("x-message-deduplication")) is True:
            if self.dedup is None:
                self.dedup = DedupCache.for_entity(self, self.arguments)
        else:
            self.dedup = None
        self.special = self.is_special()
        self.set_mode(mode_for(self.sac, self.consumers))
        self.set_expires(eff["expires"])
        if self.limited:
            self.enforce_limits()
        # (a new message TTL applies to messages published from now on, as in RabbitMQ)

    def configure_type(self, eff: dict) -> None:
        """Hook: the type's own settings from the effective ones."""

    def is_special(self) -> bool:
        return (self.msg_ttl is not None or self.max_len is not None or self.max_bytes is not None
                or self.max_priority is not None or self.dedup is not None or bool(self.exp or self.exp_out)
                or bool(self.watchers))

    def watch(self, fn, on: bool = True) -> None:
        """Add (or with ``on`` false remove) a watcher (see the module docstring)."""
        ws = [w for w in self.watchers if w != fn]
        self.watchers = tuple(ws + [fn]) if on else tuple(ws)
        if on:
            self.special = True     # (left on when the last one goes: the slow paths behave alike)

    def _watched(self) -> None:
        for w in self.watchers:
            w()

    def set_mode(self, mode) -> None:
        self.mode = mode
        self.pick = mode.pick

    def set_window(self, window: tuple[int, int]) -> None:
        """The broker's memory window changed (paging under memory pressure)."""
        self.ram_msgs, self.ram_bytes = window

    # ------------------------------------------------------------ the type's rules (hooks)

    def declare_ok_consumers(self) -> int:
        """The consumer count queue.declare-ok reports."""
        return len(self.consumers)

    def exclusive_consume_refused(self, exclusive: bool) -> bool:
        """Is a basic.consume refused because of exclusivity (403 "in exclusive use")?"""
        return self.exclusive_consumer is not None or (exclusive and (bool(self.consumers) or self.sac))

    def check_get(self) -> None:
        """Raise if basic.get is not allowed on this queue."""

    def check_consume(self, channel) -> None:
        """Raise if ``channel`` may not consume from this queue (after the argument checks)."""

    def check_delete(self, if_unused: bool, if_empty: bool) -> None:
        """Raise if queue.delete with these flags is refused (classic: 406 in use / not empty)."""
        if if_unused and self.consumers:
            raise precondition_failed(f"queue '{self.name}' in vhost '{self.vhost.name}' in use", 50, 40)
        if if_empty and self.message_count:
            raise precondition_failed(f"queue '{self.name}' in vhost '{self.vhost.name}' not empty", 50, 40)

    def sac_successor(self) -> None:
        """The single active consumer went: reorder ``consumers`` so the successor is first."""

    def sac_handed_over(self, was_active: bool, cancelled: bool) -> None:
        """A consumer of a single-active-consumer queue went (``cancelled``: by basic.cancel; else
        its channel is going, which dispatches once its messages are back). The active consumer
        (a new one if ``was_active``) is served at once."""
        if cancelled:
            self.dispatch()

    # ------------------------------------------------------------ messages in

    @property
    def message_count(self) -> int:
        return len(self.ready) + self.tail

    def enqueue(self, msg: Message, by=None):
        """Add a routed message. ``by``: the publishing channel (None for the broker's own
        enqueues: dead-letters, delayed messages). Returns True if the queue refused it
        (reject-publish)."""
        if self.special or msg.flags & 0x0100:      # 0x0100: an expiration property
            return self._enqueue_special(msg, by)
        # hot path: _enqueue_special for a plain queue and a message without a TTL
        if self.tail or len(self.ready) >= self.ram_msgs or self.ready_bytes >= self.ram_bytes:
            if self.store is not None and self.store.pages:
                self._page_out(msg, 0)
                if not self.ready and self.consumers:
                    self.dispatch()
                return None
        if self.persist and (msg.persistent or self.persist_all):
            self.pos[msg.id] = self.log.append(msg, False)
        if not self.ready and self.consumers:
            c = self.pick(self.consumers)
            if c is not None:
                self._deliver(c, msg)
                return None
        self.ready.append(msg)
        self.ready_bytes += msg.size
        return None

    def _enqueue_special(self, msg: Message, by=None):
        """enqueue for queues with lifecycle features, or a message with an ``expiration``."""
        if self.watchers:
            self._watched()
        if self.refuses(msg, by):
            return True
        if self.dedup is not None and self.dedup.duplicate(msg):
            return True         # refused: the publisher gets a nack (plugin: {true, reject})
        ttl_ms = self.ttl_of(msg)
        exp_at = 0
        if ttl_ms is not None:
            if not self.special:
                # a queue holding a message with a deadline keeps its bookkeeping on the slow paths
                self.special = True
            if ttl_ms == 0 and not self.TTL0_GRACE and (
                    not (self.ready or self.tail) or (self.msg_ttl == 0 and self.dlx is None)):
                # TTL 0 reaching an empty queue (or any, with an x-message-ttl of 0 and no DLX):
                # delivered now to a consumer that can take it, or expired at once; if it comes
                # back (requeued) it is past its deadline and expires then. Into a non-empty queue
                # it waits behind the head like any other message.
                if not self.ready and not self.tail and self.consumers:
                    c = self.pick(self.consumers)
                    if c is not None:
                        if self.keeps(msg):
                            self.pos[msg.id] = self.log.append(msg, False)
                        self.exp_out[msg.id] = now_ms()
                        self._deliver(c, msg)
                        return None
                if self.dedup is not None:
                    self.dedup.left_queue(msg)
                if not (self.limited and self.dropped_on_entry(msg)):
                    self.dead_letter([msg], "expired")
                return None
            exp_at = now_ms() + (ttl_ms or self.TTL0_GRACE)
        if self.pages and self._head_full():
            self._page_out(msg, exp_at)
            if exp_at:
                self._tail_expiry()
        else:
            if self.keeps(msg):
                self.pos[msg.id] = self.log.append(msg, False, exp_at)
            if not self.ready and self.consumers:
                c = self.pick(self.consumers)
                if c is not None:
                    if exp_at:
                        self.exp_out[msg.id] = exp_at
                    self._deliver(c, msg)
                    return None
            self.ready.append(msg)
            self.ready_bytes += msg.size
            if exp_at:
                self.exp[msg.id] = exp_at
        dropped = self.limited and self.enforce_limits()
        if self.exp and (dropped or len(self.ready) + self.tail == 1):
            # deliver_or_enqueue: the head is checked only if the message is the head or a
            # drop-head made a new one
            self._drop_expired()
        if not self.ready and self.tail and self.consumers:
            self.dispatch()
        return None

    # ------------------------------------------------------------ messages out

    def _deliver(self, c: Consumer, msg: Message) -> None:
        if self.redelivered:
            red = msg.id in self.redelivered
            if red:
                self.stat_redeliver += 1
                c.channel.stat_redeliver += 1
        else:
            red = False
        if self.special:
            msg = self._delivering(c, msg)
        if c.no_ack:
            self.stat_deliver_noack += 1
            if red:
                self.redelivered.discard(msg.id)
            c.channel.deliver(c, self, msg, red)
            self.settled(msg)
        else:
            self.stat_deliver += 1
            self.unacked_count += 1
            c.channel.deliver(c, self, msg, red)

    def _delivering(self, c: Consumer, msg: Message) -> Message:
        """Lifecycle bookkeeping of a delivery (``special`` queues); returns what to deliver."""
        if self.exp:
            self._expiry_out(msg.id, not c.no_ack)
        if self.watchers:
            self._watched()
        return msg

    def dispatch(self) -> None:
        ready = self.ready
        while (ready or self.tail) and self.consumers:
            c = self.pick(self.consumers)
            if c is None:
                return
            if ready and not self.exp:
                # hot path: _pop_ready for a message in memory and a queue without TTLs
                msg = ready.popleft()
                self.ready_bytes -= msg.size
            else:
                msg = self._pop_ready()
                if msg is None:
                    return
            self._deliver(c, msg)
            if self.flow_held and len(ready) < self.flow.resume_below:
                self.flow.release(self)

    def _pop_ready(self, expire: bool = True, after: bool = True) -> Message | None:
        """Take the head message (paging in if needed). A fetch (``expire``): the new head is then
        checked for expiry (``after``; a quorum queue's head also before, ``EXPIRE_ON_FETCH``);
        a drop-head is not."""
        ready = self.ready
        if expire and self.exp and self.EXPIRE_ON_FETCH:
            self._drop_expired()
        if not ready:
            if not self.tail:
                return None
            self._page_in()
            if not ready:
                return None
        msg = ready.popleft()
        self.ready_bytes -= msg.size
        if expire and self.exp:
            if after:
                self._drop_expired()
            else:
                self._arm_expiry(now_ms())
        return msg

    def drained(self) -> None:
        """Messages left the ready list without a delivery: release held publishers if it is
        now below the flow-control resume mark."""
        if self.flow_held and len(self.ready) < self.flow.resume_below:
            self.flow.release(self)

    def get(self, no_ack: bool = True) -> tuple[Message, bool] | None:
        """basic.get: take the head message (caller tracks it unless no-ack). The new head's due
        messages expire before the get-ok counts the queue, except in a quorum queue after a get
        with acks (rabbit_fifo's dequeue checks the head only before it takes the message, and a
        no-ack get's settlement checks it again): they expire just after."""
        self.touch()
        msg = self._pop_ready(after=no_ack or not self.EXPIRE_ON_FETCH)
        if msg is None:
            return None
        red = msg.id in self.redelivered
        if self.special:
            msg = self._getting(msg)
        return msg, red

    def _getting(self, msg: Message) -> Message:
        if self.exp:
            self._expiry_out(msg.id, True)
        if self.watchers:
            self._watched()
        return msg

    # ------------------------------------------------------------ settling

    @property
    def stat_ack(self) -> int:
        """Acks: the ack-mode deliveries and gets that were neither requeued nor rejected and
        are not outstanding (derived, so an ack costs no counter)."""
        return self.stat_deliver + self.stat_get - self.unacked_count - self.stat_requeued - self.stat_rejected

    def ack(self, msg: Message) -> None:
        self.unacked_count -= 1
        self.settled(msg)

    def drop(self, msg: Message) -> None:
        """A delivered message rejected without requeue: dead-lettered if the queue has a DLX."""
        self.stat_rejected += 1
        self.unacked_count -= 1
        self.settled(msg)
        if self.dlx is not None:
            self.dead_letter([msg], "rejected")

    def settled(self, msg: Message) -> None:
        """``msg`` has left the queue for good."""
        if self.redelivered:
            self.redelivered.discard(msg.id)
        if self.pos:
            addr = self.pos.pop(msg.id, None)
            if addr is not None:
                self.log.ack(addr)
        if self.special:
            self._settled_special(msg)

    def _settled_special(self, msg: Message) -> None:
        if self.exp_out:
            self.exp_out.pop(msg.id, None)
        if self.dedup is not None:
            self.dedup.left_queue(msg)
        if self.watchers:
            self._watched()

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

    def requeue(self, msgs: list[Message], explicit: bool = False, by=None) -> None:
        """Put delivered-but-unacked messages back at their original positions (``explicit``:
        a nack/reject/recover; the channel closing otherwise; ``by``: the consumer they were
        delivered to, when explicit)."""
        if not msgs or self.deleted:
            return
        if self.watchers:
            self._watched()
        self.unacked_count -= len(msgs)
        self.stat_requeued += len(msgs)
        if self.special:
            msgs = self._returned(msgs)
            if not msgs:
                self.dispatch()
                return
        if self._put_back(msgs, explicit) and self.limited:
            self.enforce_limits()
        if self.exp:
            # requeue_and_run: back, drop-head trims, then the head's due messages expire
            self._drop_expired()
        self.dispatch()

    def _returned(self, msgs: list) -> list:
        """Requeue bookkeeping of lifecycle queues: the messages get their deadlines back.
        Returns those to requeue."""
        if self.exp_out:
            self._expiry_back(msgs)
        return msgs

    def _put_back(self, msgs: list, explicit: bool) -> bool:
        """Requeued messages go back to their original positions (classic queues). Returns
        whether the length limits apply now."""
        red = self.redelivered
        for m in msgs:
            red.add(m.id)
            self.ready_bytes += m.size
        self.ready.merge(sorted(msgs, key=by_id))
        return True

    def purge(self) -> int:
        if self.watchers:
            self._watched()
        n = len(self.ready) + self.tail
        for m in self.ready:
            self.settled(m)
        self.ready.clear()
        self.exp.clear()
        self.ready_bytes = 0
        if self.tail:
            self.log.skip_tail()
            self.tail = self.tail_bytes = 0
        if self.flow_held:
            self.flow.release(self)
        return n

    def destroy(self) -> None:
        """The queue was deleted: timers stop, its files and caches go."""
        self.stop_timers()
        if self.dedup is not None:
            self.dedup.destroy()
        self.destroy_log()

    def stop_timers(self) -> None:
        self._stop_expiry_timer()
        self._stop_idle_timer()

    # ------------------------------------------------------------ consumers

    def add_consumer(self, c: Consumer) -> None:
        if c.priority and not self.sac and self.mode is ROUND_ROBIN:
            self.set_mode(BY_PRIORITY)
        self.mode.insert(self.consumers, c)
        self.had_consumer = True
        if self.watchers:
            self._watched()
        if c.exclusive:
            self.exclusive_consumer = c
        self._consumed()
        self.dispatch()

    def unpark(self, c: Consumer) -> None:
        """``c``'s prefetch window has room again (one of its messages was settled): if it was out
        of the rotation, it comes back at the end of it (of its priority level)."""
        c.parked = False
        if self.sac:
            return
        cs = self.consumers
        try:
            cs.remove(c)
        except ValueError:
            return
        self.mode.insert(cs, c)

    def remove_consumer(self, c: Consumer, dispatch: bool = True) -> None:
        """``c`` goes: a basic.cancel (``dispatch``), or its channel is going (which requeues its
        messages and dispatches afterwards)."""
        was_active = self.sac and self.consumers and self.consumers[0] is c
        try:
            self.consumers.remove(c)
        except ValueError:
            return
        if self.watchers:
            self._watched()
        if was_active and len(self.consumers) > 1:
            self.sac_successor()
        if self.exclusive_consumer is c:
            self.exclusive_consumer = None
        if not self.consumers:
            if self.flow_held:
                self.flow.release(self)     # nobody drains it any more: do not hold publishers
            self._unconsumed()
        elif self.sac:
            self.sac_handed_over(was_active, dispatch)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} ready={len(self.ready)} consumers={len(self.consumers)}>"
