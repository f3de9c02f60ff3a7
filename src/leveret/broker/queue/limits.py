"""Length limits: ``x-max-length``, ``x-max-length-bytes`` and ``x-overflow``.

As RabbitMQ's classic queue (``rabbit_amqqueue_process``): the limits count
*ready* messages (paged-out ones included) and their body bytes.

* ``drop-head`` (the default): a message over the limit pushes the oldest
  ready ones out; they are dead-lettered with reason ``maxlen``. A TTL-0
  message no consumer can take enters the queue before it expires, so the
  limits act first: with ``x-max-length`` 0 (or a body over
  ``x-max-length-bytes``) it is dead-lettered as ``maxlen``, not ``expired``.
* Messages past their TTL count until they reach the head (only the head
  expires, :mod:`~leveret.broker.queue.ttl`). A requeue puts every message back
  first; drop-head then trims from the head (``maxlen``, requeued messages past
  their TTL included), and only then do the due messages at the head expire
  (``requeue_and_run``: ``maybe_drop_head`` before ``drop_expired_msgs``); a
  drop-head on publish is followed by the same check of the new head. Quorum
  queues expire first (``rabbit_fifo``'s checkout runs before ``evaluate_limit``).
* ``reject-publish``: a message that would go over the limit is refused (the
  publisher gets a ``basic.nack`` in confirm mode); ``reject-publish-dlx``
  also dead-letters the refused message.

Quorum queues count differently (each publishing channel is refused once the
queue went over a limit, until it is back at 80%; dead-letters are never
refused): :meth:`QuorumQueue.would_overflow
<leveret.broker.queue.quorum.QuorumQueue.would_overflow>` overrides
:meth:`LengthLimits.would_overflow`.
"""
from __future__ import annotations

from ..message import Message

SLOTS = ("max_len", "max_bytes", "overflow")


class LengthLimits:
    """Mixin of :class:`~leveret.broker.queue.base.Queue`."""

    __slots__ = ()

    def _init_limits(self) -> None:
        self.max_len = self.max_bytes = None
        self.overflow = "drop-head"

    @property
    def limited(self) -> bool:
        return self.max_len is not None or self.max_bytes is not None

    def would_overflow(self, msg: Message, by=None) -> bool:
        """Would ``msg`` take the queue over a limit (reject-publish modes)? ``by``: the
        publishing channel (a classic queue does not care who publishes)."""
        ml, mb = self.max_len, self.max_bytes
        return ((ml is not None and self.message_count + 1 > ml)
                or (mb is not None and self.ready_bytes + self.tail_bytes + msg.size > mb))

    def refuses(self, msg: Message, by=None) -> bool:
        """reject-publish(-dlx): is ``msg`` refused? (dead-lettered first with ``-dlx``)"""
        if self.overflow != "drop-head" and self.would_overflow(msg, by):
            if self.overflow == "reject-publish-dlx":
                self.dead_letter([msg], "maxlen")
            return True
        return False

    def dropped_on_entry(self, msg: Message) -> bool:
        """drop-head for a message that enters only to expire at once (TTL 0, no consumer to take
        it): RabbitMQ enqueues it before it expires, so the limits act first, dropping from the
        head (``maxlen``), and the message itself goes as ``maxlen`` if it alone is over a limit
        (``x-max-length`` 0, a body over ``x-max-length-bytes``). Returns whether it went so."""
        if self.overflow != "drop-head":
            return False
        ml, mb = self.max_len, self.max_bytes
        dropped = []
        while ((ml is not None and self.message_count + 1 > ml)
               or (mb is not None and self.ready_bytes + self.tail_bytes + msg.size > mb)):
            m = self._pop_ready(expire=False)
            if m is None:
                break
            self._forget(m)
            dropped.append(m)
        itself = ((ml is not None and self.message_count + 1 > ml)
                  or (mb is not None and self.ready_bytes + self.tail_bytes + msg.size > mb))
        if itself:
            dropped.append(msg)
        if dropped:
            self.dead_letter(dropped, "maxlen")
            self.drained()
        return itself

    def enforce_limits(self) -> bool:
        """drop-head: remove (and dead-letter) from the head until within the limits. Returns
        whether it dropped any."""
        if self.overflow != "drop-head":
            return False
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
            return True
        return False
