"""Classic queues: RabbitMQ's default queue type (``rabbit_classic_queue``).

The common queue (:mod:`.base`) *is* the classic behaviour; this type adds
what is classic-only: its argument list (priorities, queue mode, version,
master locator; no delivery limit), the arguments a redeclare compares (its
``queue_arguments``, in their order: any other argument of a redeclare is
ignored) and its single-active-consumer hand-over:

* the remaining consumer with the highest priority becomes active;
* after a ``basic.cancel`` of the active consumer, RabbitMQ 3.10's
  ``rabbit_amqqueue_process`` does not run its delivery loop, so the new
  active consumer is not served until something does: a requeue (nack,
  reject or recover with requeue, a channel closing with unacked messages),
  a new ``basic.consume``, or a channel with consumers on the queue closing.
  Until then the queue is in :data:`~.consumers.SAC_WAITING` (and on the
  slow paths); once it is empty, a new message goes to the new active
  consumer as usual. This is why,
  when a client cancels its consumer and closes its channel (pika does), the
  successor gets the closed channel's unacked messages (redelivered, in
  their original order) before the backlog, as after a plain channel close.
  Not reproduced: a publish in that state crashes RabbitMQ's queue process
  (the successor acks) or is delivered ahead of the backlog (no-ack); here
  it just waits in the queue.
"""
from __future__ import annotations

from .arguments import TypeRules
from .base import Queue
from .consumers import SAC_WAITING, SINGLE_ACTIVE

CLASSIC = TypeRules("classic", (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
    "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode", "x-single-active-consumer",
    "x-queue-type", "x-queue-master-locator", "x-queue-version", "x-consumer-timeout",
    "x-message-deduplication", "x-cache-size", "x-cache-ttl",
    "ha-mode", "ha-params", "ha-sync-mode", "ha-sync-batch-size", "ha-promote-on-shutdown",
    "ha-promote-on-failure",
), equivalence=(
    # rabbit_classic_queue:capabilities() queue_arguments, in its order
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
    "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode", "x-queue-version",
    "x-single-active-consumer", "x-queue-type", "x-queue-master-locator",
))


class ClassicQueue(Queue):
    __slots__ = ()
    queue_type = "classic"
    RULES = CLASSIC

    @classmethod
    def is_compatible(cls, durable: bool, exclusive: bool, auto_delete: bool) -> bool:
        return True

    @classmethod
    def check_declare(cls, what: str, durable: bool, exclusive: bool, auto_delete: bool,
                      server_named: bool) -> None:
        """Property rules at declare: a classic queue takes any."""

    def sac_successor(self) -> None:
        # the remaining consumer with the highest priority takes over (the first of them)
        cs = self.consumers
        best = max(cs, key=lambda x: x.priority)
        if best is not cs[0]:
            cs.remove(best)
            cs.appendleft(best)

    def sac_handed_over(self, was_active: bool, cancelled: bool) -> None:
        if cancelled:
            if was_active and (self.ready or self.tail):
                # basic.cancel does not run the delivery loop: the backlog waits (slow path)
                self.set_mode(SAC_WAITING)
                self.special = True
        else:
            self._serve_active()                # the channel going runs it (once requeued)

    def _serve_active(self) -> None:
        if self.mode is SAC_WAITING:
            self.set_mode(SINGLE_ACTIVE)
            self.special = self.is_special()

    def _enqueue_special(self, msg, by=None):
        if self.mode is SAC_WAITING and not self.ready and not self.tail:
            self._serve_active()    # a message reaching an empty queue goes to the active consumer
        return super()._enqueue_special(msg, by)

    def add_consumer(self, c) -> None:
        self._serve_active()
        super().add_consumer(c)

    def requeue(self, msgs: list, explicit: bool = False, by=None) -> None:
        if msgs:
            self._serve_active()
        super().requeue(msgs, explicit, by)
