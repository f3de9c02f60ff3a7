"""Consumers, and how a queue chooses which one gets the next message.

A :class:`Consumer` is one ``basic.consume``: its channel, its prefetch window
(``basic.qos`` with ``global=false``, RabbitMQ's per-consumer meaning) and the
deliveries it holds unacked. :meth:`Consumer.can_take` is the credit check:
the channel is deliverable (not closed, its socket not backed up), the
consumer's own window has room, and the channel-wide window (``global=true``,
the channel's :meth:`~leveret.broker.channel.base.Channel.global_credit`, asked
for no-ack consumers too) as well.

A queue's ``consumers`` deque is kept in the order its dispatch mode wants,
and the mode picks from it. As in RabbitMQ (``rabbit_queue_consumers``), a
consumer that cannot take a message when its turn comes -- its own prefetch
window is full, or its channel is held back (the channel-wide window, a socket
that does not drain) -- is taken out of the rotation (``parked``, with the
order it was parked in) and comes back at the end of it (of its priority level)
when the channel unblocks it (:meth:`~leveret.broker.queue.base.Queue.unpark`,
called by the channel: when it settles a message of a consumer whose window was
full, when the channel-wide window reopens, when the socket drains); a quorum
queue parks it as soon as the window fills (``rabbit_fifo``'s service queue). The three modes are named strategies, each a pair
of functions (``pick``, ``insert``):

* :data:`ROUND_ROBIN` -- the default: rotate through the consumers that can
  take (RabbitMQ's classic queue), with a single-consumer shortcut.
* :data:`BY_PRIORITY` -- consumer priorities (``x-priority``): the deque is
  sorted by priority, highest first; the first consumer that can take wins
  and moves to the end of its priority group (round-robin within a level).
* :data:`SINGLE_ACTIVE` -- ``x-single-active-consumer``: only the first
  registered consumer receives; the others wait their turn. Who takes over
  when the active one goes is the queue type's rule
  (:meth:`~leveret.broker.queue.base.Queue.sac_successor`), and so is when
  the new one is first served (:data:`SAC_WAITING` until then).
"""
from __future__ import annotations

from collections import deque
from itertools import count

_parking = count(1).__next__     # parked consumers are unblocked in the order they were parked


class Consumer:
    __slots__ = ("tag", "ctag", "channel", "queue", "no_ack", "exclusive", "prefetch",
                 "unacked", "arguments", "priority", "parked", "inflight")

    def __init__(self, tag: str, ctag: bytes, channel, queue, no_ack: bool, exclusive: bool,
                 prefetch: int, arguments: dict | None, priority: int = 0):
        self.tag = tag
        self.ctag = ctag            # pre-encoded shortstr
        self.channel = channel
        self.queue = queue          # None for the direct reply-to consumer
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments or {}
        self.priority = priority
        self.parked = 0             # out of the rotation (since its parking number) until unblocked
        self.inflight = 0           # no-ack deliveries a quorum queue has not yet had settled

    def full(self) -> bool:
        """Is its own prefetch window full (what parks it)?"""
        return bool(self.prefetch) and (self.inflight if self.no_ack else self.unacked) >= self.prefetch

    def can_take(self) -> bool:
        ch = self.channel
        if not ch.deliverable:
            return False
        if self.prefetch and (self.inflight if self.no_ack else self.unacked) >= self.prefetch:
            return False
        return not ch.global_prefetch or ch.global_credit(self)


class DispatchMode:
    """A named consumer-selection strategy: ``pick(consumers)`` returns the consumer that gets
    the next message (or None: nobody has credit); ``insert(consumers, c)`` registers one."""

    __slots__ = ("name", "pick", "insert")

    def __init__(self, name: str, pick, insert):
        self.name, self.pick, self.insert = name, pick, insert

    def __repr__(self):
        return f"<DispatchMode {self.name}>"


# ------------------------------------------------------------ round-robin (hot path)

def _pick_round_robin(cs: deque) -> Consumer | None:
    if len(cs) == 1:
        c = cs[0]
        if c.can_take():
            return c
        c.parked = _parking()
        return None
    for _ in range(len(cs)):
        c = cs[0]
        cs.rotate(-1)
        if c.parked:
            continue
        if c.can_take():
            return c
        c.parked = _parking()       # out of the rotation; back at its end once unblocked
    return None


def _append(cs: deque, c: Consumer) -> None:
    cs.append(c)


# ------------------------------------------------------------ consumer priorities

def _pick_by_priority(cs: deque) -> Consumer | None:
    for i, c in enumerate(cs):
        if c.parked:
            continue
        if not c.can_take():
            c.parked = _parking()
            continue
        j = i + 1
        while j < len(cs) and cs[j].priority == c.priority:
            j += 1
        if j - 1 > i:
            del cs[i]
            cs.insert(j - 1, c)
        return c
    return None


def _insert_by_priority(cs: deque, c: Consumer) -> None:
    """Keep ``cs`` sorted by priority, highest first (stable: after its equals)."""
    i = 0
    while i < len(cs) and cs[i].priority >= c.priority:
        i += 1
    cs.insert(i, c)


# ------------------------------------------------------------ single active consumer

def _pick_single_active(cs: deque) -> Consumer | None:
    c = cs[0] if cs else None
    return c if c is not None and c.can_take() else None


def _pick_nobody(cs: deque) -> Consumer | None:
    return None


ROUND_ROBIN = DispatchMode("round-robin", _pick_round_robin, _append)
BY_PRIORITY = DispatchMode("consumer-priority", _pick_by_priority, _insert_by_priority)
SINGLE_ACTIVE = DispatchMode("single-active", _pick_single_active, _append)
# a single active consumer that took over but is not served yet (RabbitMQ 3.10 classic queues
# after a basic.cancel of the active consumer: see ClassicQueue.sac_handed_over)
SAC_WAITING = DispatchMode("single-active-not-served", _pick_nobody, _append)


def mode_for(sac: bool, consumers) -> DispatchMode:
    """The mode a queue is in: single active consumer, else priorities once any consumer has
    a non-zero ``x-priority``, else round-robin."""
    if sac:
        return SINGLE_ACTIVE
    return BY_PRIORITY if any(c.priority for c in consumers) else ROUND_ROBIN
