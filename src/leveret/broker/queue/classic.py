"""Classic queues: RabbitMQ's default queue type (``rabbit_classic_queue``).

The common queue (:mod:`.base`) *is* the classic behaviour; this type adds
what is classic-only: its argument list (priorities, queue mode, version,
master locator; no delivery limit), the arguments a redeclare compares (its
``queue_arguments``, in their order: any other argument of a redeclare is
ignored) and its single-active-consumer hand-over (the remaining consumer
with the highest priority becomes active).
"""
from __future__ import annotations

from .arguments import TypeRules
from .base import Queue

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
