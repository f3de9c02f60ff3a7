"""Quorum queues (``x-queue-type: quorum``), as RabbitMQ 3.10's ``rabbit_quorum_queue``
and ``rabbit_fifo`` behave on one node.

Everything quorum-specific lives here, as overrides of the common queue:

* **Arguments**: its own list (delivery limit, in-memory limits, dead-letter
  strategy, leader locator; no priorities, queue mode, version or master
  locator), and a policy's ``expires`` and ``overflow`` win over the queue's
  own arguments. A redeclare compares exactly the arguments of
  ``rabbit_quorum_queue``'s ``queue_arguments`` list, in that order (dead-letter
  ones first, ``x-message-ttl`` near the end); others are ignored. ``reject-publish-dlx`` is taken as ``drop-head`` (3.10).
* **Declare rules**: durable, not exclusive, not auto-delete, not
  server-named, each with RabbitMQ's text.
* **Durability**: a durable quorum queue keeps every message, whatever its
  delivery mode (``PERSIST_ALL``).
* **Returns**: each message's returns are counted (``dcount``); a redelivery
  carries ``x-delivery-count``, and ``basic.get`` always does (0 the first
  time). The header is only on what is sent: the queue keeps (and requeues,
  and dead-letters, whatever the reason) the message as published. Past ``x-delivery-limit`` a returned message is dead-lettered with
  reason ``delivery_limit``. Returned messages are served first, in the order
  they came back (``rabbit_fifo``'s returns queue); an explicit
  nack/reject/recover without a delivery limit puts the message at the back
  (as a fresh entry of the log, behind which later returns do not queue: a
  message a closed channel returns afterwards is served before it) -- behind the
  paged-out tail, when there is one, keeping its return count and redelivered flag.
* **Length limits** count ready messages (``rabbit_fifo``'s
  ``is_over_limit``) and are evaluated after everything that adds to them,
  a requeue too, once the consumers that can take messages were served: ``drop-head`` trims at once; ``reject-publish`` tells every
  publishing channel to stop as soon as the queue is over a limit (so a queue
  fills to max + 1), and to go on once it is back at 80% of it. Each channel
  has its own status: one that first publishes here is refused only if the
  queue is over a limit at that moment. Dead-letters and delayed messages are
  untracked enqueues, never refused.
* **Dead-letter order**: what one command (a publish, a return) makes the
  limit drop is dead-lettered newest first, ahead of the command's other
  dead-letters (past the delivery limit, expired): ``drop_head`` prepends each
  drop's effect to the command's effect list. Without a delivery limit an
  explicit return (nack, reject, recover) of several messages is one command per
  message (``rabbit_fifo``'s ``make_requeue``), in delivery order, each
  requeued, served and trimmed on its own.
* **Consumer count** (declare-ok): the entries of ``rabbit_fifo``'s consumer
  map: each registered consumer (with a single active consumer only the
  active one), each unsettled ``basic.get`` message, and each cancelled
  consumer that still holds unacked messages.
* **Single active consumer**: the next registered consumer takes over (no
  priority hand-over); declare-ok counts only the active consumer;
  ``basic.get`` is refused.
* **Consumer credit**: a consumer without a prefetch count has 2000 (the
  credit ``rabbit_quorum_queue`` gives it); a consumer whose credit is spent
  leaves the rotation at once and comes back at its end when a message of
  its is settled (``rabbit_fifo``'s service queue). A nack or reject (with
  requeue) of a message that goes past the delivery limit credits the consumer
  twice (``return`` and ``complete``), so its window grows by one for good.
* **Global QoS**: ``basic.consume`` from a channel with a global prefetch
  limit (``basic.qos`` global, count > 0) closes the connection with 540
  NOT_IMPLEMENTED.
* **Exclusive consume**: the flag is ignored (never refused, and an
  exclusive consumer shares the queue like any other).
* **queue.delete** with ``if-unused`` or ``if-empty`` closes the connection
  with 540 NOT_IMPLEMENTED (whatever the queue holds).
"""
from __future__ import annotations

from itertools import islice

from ...amqp.errors import not_implemented, precondition_failed, resource_locked
from ..message import Message
from .arguments import TypeRules
from .base import Queue

QUORUM = TypeRules("quorum", (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
    "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-overflow",
    "x-single-active-consumer", "x-queue-type", "x-delivery-limit", "x-consumer-timeout",
    "x-message-deduplication", "x-cache-size", "x-cache-ttl", "x-quorum-initial-group-size",
    "x-dead-letter-strategy", "x-queue-leader-locator",
), equivalence=(
    # rabbit_quorum_queue:capabilities() queue_arguments, in its order
    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-expires",
    "x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-overflow",
    "x-single-active-consumer", "x-queue-type", "x-quorum-initial-group-size", "x-delivery-limit",
    "x-message-ttl", "x-queue-leader-locator",
), policy_wins=("expires", "overflow"))
RELEASE_AT = 0.8        # rabbit_fifo: refusing stops once the queue is back at 80% of the limit
UNLIMITED_CREDIT = 2000     # rabbit_quorum_queue: a consumer without a prefetch count gets this credit


class QuorumQueue(Queue):
    __slots__ = ("dcount", "enqueuers", "delivery_limit", "got", "lingering", "returns", "stored", "paged_back",
                 "dl_batch")
    queue_type = "quorum"
    RULES = QUORUM
    PERSIST_ALL = True
    GLOBAL_QOS = False
    UNPARK_ONE = True
    RETURNS_BY_TAG = True
    EXPIRE_ON_FETCH = True  # rabbit_fifo's checkout expires the head's due messages first
    TTL0_GRACE = 1          # rabbit_fifo: a TTL-0 message's deadline is its enqueue ms + 1

    def __init__(self, *args, **kwargs):
        self.dcount: dict[int, int] = {}    # message id -> times returned
        self.enqueuers: dict = {}           # publishing channel -> refused (reject-publish)
        self.delivery_limit = None
        self.got: set[int] = set()          # ids of messages out by an unsettled basic.get
        self.lingering: list = []           # cancelled consumers that may still hold messages
        self.returns: set[int] = set()      # ids returned to rabbit_fifo's returns queue
        self.stored: dict[int, Message] = {}    # id -> the message as kept, while out with a count
        self.paged_back: dict[int, int] = {}    # log address -> times returned, of messages
        #                                         requeued behind the paged-out tail
        self.dl_batch: list | None = None   # dead-letters of the command being applied
        super().__init__(*args, **kwargs)

    @classmethod
    def is_compatible(cls, durable: bool, exclusive: bool, auto_delete: bool) -> bool:
        """``rabbit_quorum_queue:is_compatible``: may a vhost's default queue type make this
        declare a quorum queue?"""
        return bool(durable) and not exclusive and not auto_delete

    @classmethod
    def check_declare(cls, what: str, durable: bool, exclusive: bool, auto_delete: bool,
                      server_named: bool) -> None:
        if server_named:
            raise precondition_failed("Cannot declare a server-named queue for type rabbit_quorum_queue", 50, 10)
        for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"), (not durable, "non-durable")):
            if bad:
                raise precondition_failed(f"invalid property '{prop}' for {what}", 50, 10)

    def configure_type(self, eff: dict) -> None:
        if self.overflow == "reject-publish-dlx":
            self.overflow = "drop-head"     # RabbitMQ 3.10's quorum queues treat it as drop-head
        self.delivery_limit = eff["delivery-limit"]

    def is_special(self) -> bool:
        return True

    # ------------------------------------------------------------ channel-facing rules

    def declare_ok_consumers(self) -> int:
        # rabbit_fifo's consumer map: the registered consumers (with a single active consumer
        # only the active one: the others wait outside the map), one entry per unsettled
        # basic.get, and cancelled consumers until their last message is settled or returned
        cs = self.consumers
        n = min(1, len(cs)) if self.sac else len(cs)
        if self.lingering:
            self.lingering = held = [c for c in self.lingering if c.unacked > 0]
            # a consumer registered again under its tag on its channel is the same entry
            live = {(id(c.channel), c.tag) for c in cs}
            n += sum(1 for c in held if (id(c.channel), c.tag) not in live)
        return n + len(self.got)

    def remove_consumer(self, c, dispatch: bool = True) -> None:
        was = c in self.consumers
        super().remove_consumer(c, dispatch)
        if was and c.unacked:
            self.lingering = [x for x in self.lingering if x.unacked > 0]
            self.lingering.append(c)

    def exclusive_consume_refused(self, exclusive: bool) -> bool:
        # rabbit_quorum_queue:consume/3 reads the exclusive flag for its metrics only
        return False

    def check_consume(self, channel) -> None:
        # rabbit_quorum_queue:consume/3 refuses a channel whose global prefetch limit is active
        if channel.global_prefetch:
            raise not_implemented(f"queue '{self.name}' in vhost '{self.vhost.name}' does not support "
                                  "global qos", 60, 20)

    def check_get(self) -> None:
        if self.sac:
            raise resource_locked(f"cannot obtain access to locked queue '{self.name}' in vhost "
                                  f"'{self.vhost.name}'. basic.get operations are not supported by quorum "
                                  "queues with single active consumer", 60, 70)

    def check_delete(self, if_unused: bool, if_empty: bool) -> None:
        # rabbit_quorum_queue:delete/4 refuses both flags (if-unused is checked first)
        for flag, name in ((if_unused, "if-unused"), (if_empty, "if-empty")):
            if flag:
                raise not_implemented(f"cannot delete queue '{self.name}' in vhost '{self.vhost.name}'. "
                                      f"queue.delete operations with {name} flag set are not supported by "
                                      "quorum queues", 50, 40)

    # ------------------------------------------------------------ overflow

    def over_limit(self) -> bool:
        """rabbit_fifo's ``is_over_limit``: more ready messages (bytes) than the limit."""
        ml, mb = self.max_len, self.max_bytes
        return ((ml is not None and self.message_count > ml)
                or (mb is not None and self.ready_bytes + self.tail_bytes > mb))

    def below_soft_limit(self) -> bool:
        """rabbit_fifo's ``is_below_soft_limit``: at most 80% of each limit."""
        ml, mb = self.max_len, self.max_bytes
        if ml is None and mb is None:
            return False
        return ((ml is None or self.message_count <= int(ml * RELEASE_AT))
                and (mb is None or self.ready_bytes + self.tail_bytes <= int(mb * RELEASE_AT)))

    def would_overflow(self, msg: Message, by=None) -> bool:
        # reject-publish: each publishing channel is an enqueuer with its own status. Its first
        # publish here registers it, refused if the queue is over a limit then; later it is
        # refused from the moment the queue went over a limit (whoever put it there) until the
        # queue is back at 80%. The broker's own enqueues (dead-letters, delayed messages) are
        # untracked, never refused.
        if by is None:
            return False
        refusing = self.enqueuers.get(by)
        if refusing is None:
            refusing = self.enqueuers[by] = self.over_limit()
        return refusing

    def _grow(self) -> None:
        """The ready count is about to grow (enqueue, requeue). Decreases come one at a time
        between these points, so a dip to 80% since the last one shows now: the enqueuers
        were told to go on then."""
        if self.enqueuers and self.below_soft_limit():
            for by in self.enqueuers:
                self.enqueuers[by] = False

    def _grown(self) -> None:
        """The ready count grew: over a limit, every enqueuer is told to stop (reject-publish)."""
        if self.enqueuers and self.overflow == "reject-publish" and self.over_limit():
            self.enqueuers = {by: True for by in self.enqueuers if not by.closed}

    def _enqueue_special(self, msg: Message, by=None):
        self._grow()
        refused = super()._enqueue_special(msg, by)
        if not refused:
            self._grown()
        return refused

    # ------------------------------------------------------------ dead-letter order

    def dead_letter(self, msgs: list, reason: str) -> None:
        # rabbit_fifo applies each command in one go and runs its effects in list order; the
        # messages its limit check drops (drop_head, once per message) prepend their
        # dead-letter effects to the command's list, so they are published first, the last
        # dropped first; the command's other dead-letters (delivery limit, expiry) keep their
        # order behind them
        if self.dl_batch is not None:
            self.dl_batch.append((msgs, reason))
        elif reason == "maxlen":
            super().dead_letter(msgs[::-1], reason)
        else:
            super().dead_letter(msgs, reason)

    def requeue(self, msgs: list[Message], explicit: bool = False, by=None) -> None:
        # one rabbit_fifo command (a return, or a consumer's channel going down)
        if explicit and self.delivery_limit is None and len(msgs) > 1:
            # without a delivery limit the leader turns a return into one requeue command per
            # message (handle_aux, make_requeue: message-id order, which is the order the
            # consumer got them in, as here), each applied on its own: to the back, checkout,
            # evaluate_limit, its own dead-letters
            for m in msgs:
                self.requeue([m], True, by)
            return
        if by is not None and explicit and self.delivery_limit is not None and by.prefetch:
            # rabbit_fifo's return credits the consumer for each returned message, and once more
            # for each one past the delivery limit (complete/5 discards it, crediting it too):
            # the consumer's window grows by one for each such message, for good
            limit, dcount = self.delivery_limit, self.dcount
            by.prefetch += sum(1 for m in msgs if dcount.get(m.id, 0) >= limit)
        self.dl_batch = batch = []
        try:
            super().requeue(msgs, explicit)
        finally:
            self.dl_batch = None
        dropped = [m for ms, reason in batch if reason == "maxlen" for m in ms]
        if dropped:
            self.dead_letter(dropped, "maxlen")
        for ms, reason in batch:
            if reason != "maxlen":
                self.dead_letter(ms, reason)

    # ------------------------------------------------------------ return counts

    def add_consumer(self, c) -> None:
        if not c.prefetch and not c.no_ack:
            c.prefetch = UNLIMITED_CREDIT
        super().add_consumer(c)

    def _delivering(self, c, msg: Message) -> Message:
        msg = super()._delivering(c, msg)
        if c.prefetch and not c.no_ack and c.unacked + 1 >= c.prefetch:
            c.parked = True     # out of rabbit_fifo's service queue once its credit is spent
        elif c.no_ack and c.prefetch and self.vhost.broker.loop is not None:
            # a no-ack consumer has credit too (its prefetch count): rabbit_fifo checks the
            # message out to it, and only the channel's settlement of the delivery -- a later
            # command -- gives the credit back, so one command (a return, a consumer's channel
            # going down) serves it at most its prefetch count; the rest go to other consumers
            # or stay ready, where the command's limit check (drop-head) sees them
            c.inflight += 1
            if c.inflight == 1:
                self.vhost.broker.loop.call_soon(self._noack_settled, c)
            if c.inflight >= c.prefetch:
                c.parked = True
        if self.dcount:
            n = self.dcount.get(msg.id)
            if n:
                self.stored[msg.id] = msg
                msg = msg.with_header("x-delivery-count", "l", n)
        return msg

    def _noack_settled(self, c) -> None:
        """The channel settled a no-ack consumer's deliveries: its credit is back."""
        c.inflight = 0
        if c in self.consumers:
            if c.parked:
                self.unpark(c)
            self.dispatch()

    def _getting(self, msg: Message) -> Message:
        # basic.get on a quorum queue always carries the count (0 the first time); until it is
        # settled (at once for a no-ack get) it counts as a consumer
        self.got.add(msg.id)
        msg = super()._getting(msg)
        self.stored[msg.id] = msg
        return msg.with_header("x-delivery-count", "l", self.dcount.get(msg.id, 0))

    def drop(self, msg: Message) -> None:
        # what is dead-lettered is the message as the queue keeps it (no x-delivery-count)
        if self.stored:
            msg = self.stored.pop(msg.id, msg)
        super().drop(msg)

    def _settled_special(self, msg: Message) -> None:
        super()._settled_special(msg)
        if self.dcount:
            self.dcount.pop(msg.id, None)
        if self.returns:
            self.returns.discard(msg.id)
        if self.got:
            self.got.discard(msg.id)
        if self.stored:
            self.stored.pop(msg.id, None)

    def _returned(self, msgs: list) -> list:
        back, limited = [], []
        got, stored = self.got, self.stored
        for m in msgs:
            if got:
                got.discard(m.id)
            if stored:
                m = stored.pop(m.id, m)     # back as the queue keeps it
            n = self.dcount[m.id] = self.dcount.get(m.id, 0) + 1
            if self.delivery_limit is not None and n > self.delivery_limit:
                self._forget(m)
                limited.append(m)
            else:
                back.append(m)
        if limited:
            # (rabbit_fifo: return_one discards these, then the checkout expires what is due)
            self.dead_letter(limited, "delivery_limit")
        return super()._returned(back)

    def _put_back(self, msgs: list, explicit: bool) -> bool:
        # rabbit_fifo evaluates its limits after every command, once the consumers were served
        # (checkout, then evaluate_limit): the returned messages go out first, then a queue over
        # a limit drops from the head (drop-head) or stops the enqueuers (reject-publish)
        self._grow()
        self._put_back_in_order(msgs, explicit)
        if self.exp:
            self._drop_expired()    # (checkout expires the head's due messages before it delivers)
        self.dispatch()
        self._grown()
        return True

    def _put_back_in_order(self, msgs: list, explicit: bool) -> None:
        red = self.redelivered
        if explicit and self.delivery_limit is None:
            # to the back, as a fresh entry (a new id keeps id order = queue order)
            new_id = self.vhost.broker.new_message_id
            for m in msgs:
                old = m.id
                if self.tail:
                    self._page_out_returned(m)
                    continue
                m = m.copy()
                m.id = new_id()
                self._renumber(old, m.id)
                red.add(m.id)
                self.ready.append(m)
                self.ready_bytes += m.size
            return
        # rabbit_fifo serves returned messages first, in the order they came back: behind the
        # returns still ready, ahead of everything else (re-enqueued messages too, though
        # they are redelivered)
        ready, returns = self.ready, self.returns
        k = 0
        for m in ready:
            if m.id not in returns:
                break
            k += 1
        for m in msgs:
            red.add(m.id)
            returns.add(m.id)
            self.ready_bytes += m.size
            ready.insert(k, m)
            k += 1

    def _page_out_returned(self, m: Message) -> None:
        """The back of the queue is on disk: ``m`` goes after the paged-out tail (a new record;
        the old one is acked), and gets its return count and redelivered flag back when it is
        read in (:meth:`load`)."""
        old = m.id
        addr = self.pos.pop(old, None)
        if addr is not None:
            self.log.ack(addr)
        exp_at = self.exp.pop(old, 0) or self.exp_out.pop(old, 0)
        self.paged_back[self._page_out(m, exp_at)] = self.dcount.pop(old, 0)
        if exp_at:
            self._tail_expiry()

    def load(self, recs: list) -> None:
        super().load(recs)
        back = self.paged_back
        if back and recs:
            pos, red, dcount = self.pos, self.redelivered, self.dcount
            for m in islice(self.ready, len(self.ready) - len(recs), None):
                n = back.pop(pos.get(m.id), None)
                if n is not None:
                    red.add(m.id)
                    if n:
                        dcount[m.id] = n

    def purge(self) -> int:
        self.paged_back.clear()
        return super().purge()

    def compact(self, unacked) -> int:
        # the log keeps messages as published, not the copies sent with x-delivery-count
        stored = self.stored
        return super().compact([stored.get(m.id, m) for m in unacked] if stored else unacked)

    def _renumber(self, old: int, new: int) -> None:
        """A message re-enters the queue under a new id (requeue to the back)."""
        for d in (self.pos, self.exp, self.exp_out, self.dcount):
            if old in d:
                d[new] = d.pop(old)
        self.returns.discard(old)          # a fresh entry of the log, not a return
        if self.dedup is not None and old in self.dedup.by_id:
            self.dedup.by_id[new] = self.dedup.by_id.pop(old)
