"""Queues: one home per queue type and per feature.

=====================  ===============================================================
module                 what lives there
=====================  ===============================================================
``base.py``            the common queue: enqueue, dispatch, get, ack/reject, requeue,
                       purge, consumers; the type hooks
``classic.py``         classic queues: argument list, single-active-consumer hand-over
``quorum.py``          quorum queues: argument list and declare rules, return counts,
                       delivery limit, overflow hysteresis, requeue order
``arguments.py``       the argument table: declare validation, equivalence, policies
``ready.py``           the ready list, and the priority ready list (``x-max-priority``)
``consumers.py``       consumers, credit, and the dispatch modes (round-robin,
                       consumer priorities, single active consumer)
``ttl.py``             message TTL and per-message expiration, expiring on time
``limits.py``          ``x-max-length``, ``x-max-length-bytes``, ``x-overflow``
``expires.py``         queue expiry (``x-expires``)
``paging.py``          the queue's log: persistence, paging, read-back, compaction
=====================  ===============================================================

:func:`queue_class` picks the type from a declare's ``x-queue-type``.
"""
from __future__ import annotations

from ...amqp.codec import table_plain
from .base import Queue
from .classic import ClassicQueue
from .consumers import Consumer
from .quorum import QuorumQueue

QUEUE_TYPES = {"classic": ClassicQueue, "quorum": QuorumQueue}


def queue_class(arguments: dict | None) -> type[Queue]:
    """The queue type named by ``x-queue-type`` (classic when absent; the caller has refused
    unknown types already)."""
    qt = table_plain((arguments or {}).get("x-queue-type"))
    if isinstance(qt, bytes):
        qt = qt.decode("utf-8", "surrogateescape")
    return QUEUE_TYPES.get(qt or "classic", ClassicQueue)


def new_queue(name: str, vhost, **kwargs) -> Queue:
    """A queue of the type its arguments name."""
    return queue_class(kwargs.get("arguments"))(name, vhost, **kwargs)


__all__ = ["Queue", "ClassicQueue", "QuorumQueue", "Consumer", "QUEUE_TYPES", "queue_class", "new_queue"]
