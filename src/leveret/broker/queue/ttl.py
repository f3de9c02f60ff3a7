"""Message TTL: ``x-message-ttl``, the ``expiration`` property, and expiring on time.

As RabbitMQ (``rabbit_amqqueue_process``, ``rabbit_basic``, ``rabbit_fifo``):

* A message's TTL is the queue's ``x-message-ttl`` (or the policy's
  ``message-ttl``, the lower wins) or its own ``expiration`` property,
  whichever is lower. ``expiration`` is validated at publish as Erlang's
  ``string:to_integer`` reads it (:func:`check_expiration`).
* **Only the head of a queue expires** (rabbitmq.com/ttl.html: "expired
  messages can queue up behind non-expired ones until the latter are consumed
  or expired"). A message past its deadline stays in the queue -- counted by
  queue.declare-ok and basic.get-ok, counted against ``x-max-length``, not
  dead-lettered -- until it reaches the head. :meth:`MessageTTL._drop_expired`
  is ``drop_expired_msgs``: it removes due messages from the head, in queue
  order (dead-lettered with reason ``expired`` in that order), and sets the
  queue's one timer for the new head's deadline. A classic queue runs it when a
  message enters an otherwise empty queue, after a drop-head trimmed the
  queue, after each fetch (a delivery or basic.get, so basic.get-ok's count is
  taken after it), after a requeue (once the limits trimmed), and when the
  timer fires. It does not run when a message enters a non-empty queue, so in
  a priority queue (``rabbit_priority_queue``: the head is the oldest message
  of the highest non-empty priority) a higher-priority message that becomes
  the head is not checked until one of those events: it can even be delivered
  past its deadline. A classic fetch never checks the message it takes.
  A quorum queue (``rabbit_fifo``) also expires due messages at the head just
  before a fetch (``EXPIRE_ON_FETCH``: ``checkout_one``); after a basic.get
  with acks it checks the new head only just after the get-ok (so the get-ok
  counts a due message the classic queue would have dropped first).
* TTL 0: a message reaching an empty queue is delivered at once to a consumer
  that can take it, or expires at once (dead-lettered with reason
  ``expired``). One reaching a non-empty queue waits behind the head like any
  other (unless the queue's own ``x-message-ttl`` is 0 and it has no
  dead-letter exchange: then it is dropped at once, ``deliver_or_enqueue``).
* A delivered message keeps its deadline: if it is requeued after that, it
  expires when it is at the head again (at once, when it goes back to the
  head). A delivered TTL-0 message is past its deadline as soon as it is out.
* A quorum queue has no TTL-0 special case (``rabbit_fifo``): the deadline
  is the enqueue millisecond + 1, so a TTL-0 message nobody takes stays in
  the queue until then (a passive declare may count it) and a requeue within
  that millisecond keeps it.
* A plain queue that receives a message with an ``expiration`` becomes
  ``special``: its deliveries, settlements and requeues then keep the
  deadlines' bookkeeping.

Ready messages' deadlines are in ``exp`` (id -> epoch ms); delivered
messages' deadlines wait in ``exp_out`` for a possible requeue. Paged-out
messages keep theirs in the log and get them back when read in; while the
paged-out tail holds a deadline, ``exp`` holds ``TAIL_EXP`` too, so that a
queue whose in-memory part runs empty reads the tail back to check its head.
"""
from __future__ import annotations

import re
import time

from ...amqp.errors import precondition_failed
from ..message import Message

SLOTS = ("msg_ttl", "exp", "exp_out", "exp_timer", "exp_timer_at")
_INT_PREFIX = re.compile(r"[+-]?[0-9]+")
TAIL_EXP = -1       # key of ``exp``: the paged-out tail holds a message with a deadline


def now_ms() -> int:
    return int(time.time() * 1000)


def check_expiration(exp: str) -> int:
    """Validate the ``expiration`` property as RabbitMQ does (``string:to_integer``)."""
    m = _INT_PREFIX.match(exp)
    if m is None:
        reason = "no_integer"
    elif m.end() != len(exp):
        reason = '{leftover_string,"%s"}' % exp[m.end():]
    elif int(m.group()) < 0:
        reason = f"{{value_negative,{int(m.group())}}}"
    else:
        return int(m.group())
    raise precondition_failed(f"invalid expiration '{exp}': {reason}", 60, 40)


class MessageTTL:
    """Mixin of :class:`~leveret.broker.queue.base.Queue`: the TTL bookkeeping."""

    __slots__ = ()

    EXPIRE_ON_FETCH = False     # rabbit_fifo's checkout expires the head first; a classic fetch does not

    def _init_ttl(self) -> None:
        self.msg_ttl = None
        self.exp: dict[int, int] = {}       # ready message id -> expiry (epoch ms); TAIL_EXP
        self.exp_out: dict[int, int] = {}   # delivered message id -> expiry (kept for a requeue)
        self.exp_timer = None
        self.exp_timer_at = 0

    def ttl_of(self, msg: Message) -> int | None:
        """The TTL that applies to ``msg`` in this queue (ms), or None."""
        ttl = self.msg_ttl
        if msg.flags & 0x0100:              # an expiration property
            per = msg.ttl_ms()
            if per is not None and (ttl is None or per < ttl):
                ttl = per
        return ttl

    def _drop_expired(self) -> None:
        """``drop_expired_msgs``: expire (and dead-letter, in queue order) the due messages at
        the head; then the timer for the new head's deadline."""
        exp = self.exp
        if not exp:
            return
        ready = self.ready
        gone = []
        now = now_ms()
        t = None
        while True:
            if not ready:
                if not (self.tail and TAIL_EXP in exp):
                    break
                self._page_in()         # the head is paged out: read it back
                if not ready:
                    break
            m = ready[0]
            t = exp.get(m.id)
            if t is None or t > now:
                break
            ready.popleft()
            self.ready_bytes -= m.size
            self._forget(m)
            gone.append(m)
            t = None
        if gone:
            self.dead_letter(gone, "expired")
            self.drained()
        if t is not None:
            self._arm_expiry(t)

    def _arm_expiry(self, t: int) -> None:
        """The queue's one timer, for the head's deadline (an earlier one stays)."""
        if self.exp_timer is not None:
            if self.exp_timer_at <= t:
                return
            self.exp_timer.cancel()
        self.exp_timer_at = t
        self.exp_timer = self.vhost.broker.call_at_ms(t, self._expiry_tick)

    def _expiry_tick(self) -> None:
        self.exp_timer = None
        if self.deleted:
            return
        self._drop_expired()
        if self.ready and self.consumers:
            self.dispatch()         # (a paged-out head read back for consumers that can take it)

    def _tail_expiry(self) -> None:
        """A message with a deadline went to the paged-out tail."""
        self.exp[TAIL_EXP] = 0

    def _expiry_out(self, mid: int, keep: bool) -> None:
        """A ready message leaves for a consumer: its deadline waits for a requeue (``keep``)."""
        t = self.exp.pop(mid, None)
        if t is not None and keep:
            self.exp_out[mid] = t

    def _expiry_back(self, msgs: list) -> None:
        """Delivered messages come back: they are ready again with their deadlines (those past
        it expire when they are at the head: :meth:`_drop_expired` after the requeue)."""
        exp_out, exp = self.exp_out, self.exp
        for m in msgs:
            t = exp_out.pop(m.id, None)
            if t is not None:
                exp[m.id] = t

    def _stop_expiry_timer(self) -> None:
        if self.exp_timer is not None:
            self.exp_timer.cancel()
            self.exp_timer = None
