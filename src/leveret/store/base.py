"""The message store interface: the one seam between queues and the disk.

A queue calls the store only for messages that must survive a restart
(persistent messages in durable queues). Everything else lives in memory.

The contract, which the durable store (issue: durability) implements and its
crash tests prove:

* ``write(queue, msg)`` — record that ``msg`` is in ``queue``. Returns ``None``
  when the write is already durable, or an awaitable/future-like token that
  completes once the record is fsynced (group commit). Publisher confirms and
  ``tx.commit`` wait on it.
* ``remove(queue, msg)`` — the message left the queue for good (acked,
  dropped, purged, dead-lettered). May be batched; never fsynced on its own.
* ``delete_queue(queue)`` — drop every record of a queue.
* ``recover()`` — on start, yield ``(queue_name, vhost, messages)`` in queue order.

:class:`MemoryStore` is the no-op store used until the durable store lands and
for transient brokers in tests.
"""
from __future__ import annotations


class MessageStore:
    """Base class: documents the interface; every method is a no-op."""

    durable = False

    def write(self, queue, msg):
        return None

    def remove(self, queue, msg) -> None:
        pass

    def delete_queue(self, queue) -> None:
        pass

    def recover(self):
        return iter(())

    def close(self) -> None:
        pass


class MemoryStore(MessageStore):
    """Keeps nothing: messages live only in their queues' memory."""
