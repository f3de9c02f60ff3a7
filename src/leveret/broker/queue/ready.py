"""A queue's ready list: the messages waiting for a consumer, in the order they go out.

* :class:`Ready` (every queue without ``x-max-priority``) is a deque in
  ``Message.id`` order. Message ids are a broker-wide publish counter, so id
  order is enqueue order; a requeued message goes back to its original
  position by id (RabbitMQ classic-queue behaviour: after a channel closes, its
  unacked messages are redelivered in the order they were first published).
* :class:`PriorityReady` (``x-max-priority``) is one :class:`Ready` per
  priority level, highest first; a message's priority is capped at the
  maximum and a message without one counts as 0 (``rabbit_priority_queue``).
  Priority queues do not page (documented in ``docs/lifecycle.md``).

Both offer the same small interface the queue uses: ``append``, ``popleft``,
``merge`` (requeue), ``clear``, ``len``/``bool``/iteration and ``[0]`` (the
head: TTL expiry looks only there).
"""
from __future__ import annotations

from collections import deque

from ..message import Message


def by_id(m: Message) -> int:
    return m.id


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
        self.extendleft(reversed(sorted(front + msgs, key=by_id)))


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


def ready_list(max_priority: int | None):
    return PriorityReady(max_priority) if max_priority else Ready()
