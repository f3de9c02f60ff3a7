"""The store interface: the one seam between the broker and the disk.

The broker talks to a store through four things, and nothing else:

* ``open_log(queue)`` — the queue's :class:`~leveret.store.segments.QueueLog`:
  ``append`` (a message record; returns its address), ``ack``,
  ``mark_delivered``, the paged-out tail (``start_tail``/``read_tail``/
  ``skip_tail``), ``recover`` and ``destroy``.
* ``definitions`` — ``put(kind, key, **fields)`` / ``delete(kind, key)`` for
  durable entities (vhosts, users, permissions, exchanges, queues, bindings).
* ``commit`` — the group committer: ``writes`` counts persistent records
  buffered so far, ``epoch`` is the fsync batch they belong to, and
  ``when_durable(epoch, callback)`` runs ``callback`` once that batch is on
  disk. Publisher confirms and ``tx.commit-ok`` wait on it.
* ``durable`` / ``pages`` — whether messages survive a restart, and whether
  long queues may page to disk.

:class:`MemoryStore` keeps nothing (an embedded broker without a data
directory); :class:`~leveret.store.disk.DiskStore` is the durable store, and
its crash tests prove the contract.
"""
from __future__ import annotations


class NullCommit:
    """Every write is "durable" at once: there is nothing to wait for."""

    writes = 0
    epoch = 0
    durable = 0
    failed = None

    def when_durable(self, epoch: int, callback) -> None:
        callback()

    def attach(self, loop) -> None:
        pass


class NullDefinitions:
    def put(self, kind: str, key: tuple, **fields) -> None:
        pass

    def delete(self, kind: str, key: tuple) -> None:
        pass


class MessageStore:
    """Base class: documents the interface; keeps nothing."""

    durable = False
    pages = False

    def __init__(self):
        self.commit = NullCommit()
        self.definitions = NullDefinitions()

    def attach(self, loop) -> None:
        """Called once the event loop runs (the committer fsyncs from a worker thread)."""
        self.commit.attach(loop)

    def open_log(self, queue):
        raise NotImplementedError("this store keeps no message log")

    def recover(self, broker) -> dict:
        """Recreate durable entities and their messages in ``broker``; returns statistics."""
        return {}

    def close(self) -> None:
        pass


class MemoryStore(MessageStore):
    """Keeps nothing: messages live only in their queues' memory, definitions vanish on stop."""
