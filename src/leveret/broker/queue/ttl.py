"""Message TTL: ``x-message-ttl``, the ``expiration`` property, and expiring on time.

As RabbitMQ (``rabbit_amqqueue_process``, ``rabbit_basic``):

* A message's TTL is the queue's ``x-message-ttl`` (or the policy's
  ``message-ttl``, the lower wins) or its own ``expiration`` property,
  whichever is lower. ``expiration`` is validated at publish as Erlang's
  ``string:to_integer`` reads it (:func:`check_expiration`).
* TTL 0: the message is delivered at once to a consumer that can take it, or
  expires at once (dead-lettered with reason ``expired``).
* A delivered message keeps its deadline: if it is requeued after that, it
  expires when it comes back. A delivered TTL-0 message is past its deadline
  as soon as it is out, so any requeue (reject, nack, recover, its channel
  closing) expires it.
* A quorum queue has no TTL-0 special case (``rabbit_fifo``): the deadline
  is the enqueue millisecond + 1, so a TTL-0 message nobody takes stays in
  the queue until then (a passive declare may count it) and a requeue within
  that millisecond keeps it.
* A plain queue that receives a message with an ``expiration`` becomes
  ``special``: its deliveries, settlements and requeues then keep the
  deadlines' bookkeeping.

Unlike RabbitMQ, which only expires messages at the head of a queue, due
messages are removed *wherever they sit* and dead-lettered on time (a
documented improvement): ready messages' deadlines are in ``exp`` (id ->
epoch ms) and in a heap with lazy deletion, and one timer per queue fires at
the earliest. Delivered messages' deadlines wait in ``exp_out`` for a
possible requeue. Paged-out messages expire when they are read back, and a
timer makes sure they are read back in time.
"""
from __future__ import annotations

import heapq
import re
import time

from ...amqp.errors import precondition_failed
from ..message import Message

SLOTS = ("msg_ttl", "exp", "exp_out", "exp_heap", "exp_timer", "exp_timer_at")
_INT_PREFIX = re.compile(r"[+-]?[0-9]+")


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

    def _init_ttl(self) -> None:
        self.msg_ttl = None
        self.exp: dict[int, int] = {}       # ready message id -> expiry (epoch ms)
        self.exp_out: dict[int, int] = {}   # delivered message id -> expiry (kept for a requeue)
        self.exp_heap: list = []            # (expiry, id), lazily cleaned
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

    def _track_expiry(self, mid: int, exp_at: int) -> None:
        """A ready message with a deadline."""
        self.exp[mid] = exp_at
        heapq.heappush(self.exp_heap, (exp_at, mid))
        if self.exp_timer is None or exp_at < self.exp_timer_at:
            self._arm_expiry()

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
            self.drained()

    def _expired_at_head(self, msg: Message) -> bool:
        t = self.exp.get(msg.id)
        if t is None or t > now_ms():
            return False
        self._forget(msg)
        self.dead_letter([msg], "expired")
        return True

    def _expiry_out(self, mid: int, keep: bool) -> None:
        """A ready message leaves for a consumer: its deadline waits for a requeue (``keep``)."""
        t = self.exp.pop(mid, None)
        if t is not None and keep:
            self.exp_out[mid] = t

    def _expiry_back(self, msgs: list, forget: bool = True) -> tuple[list, list]:
        """Delivered messages come back: those past their deadline are split off as expired
        (and leave the queue, unless not ``forget``), the others are ready again with their
        deadlines. Returns ``(keep, expired)``."""
        keep, expired = [], []
        now = now_ms()
        for m in msgs:
            t = self.exp_out.pop(m.id, None)
            if t is not None:
                if t <= now:
                    if forget:
                        self._forget(m)
                    expired.append(m)
                    continue
                self.exp[m.id] = t
                heapq.heappush(self.exp_heap, (t, m.id))
            keep.append(m)
        if self.exp:
            self._arm_expiry()
        return keep, expired

    def _stop_expiry_timer(self) -> None:
        if self.exp_timer is not None:
            self.exp_timer.cancel()
            self.exp_timer = None
