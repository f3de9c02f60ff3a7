"""The store interface: the one seam between the broker and the disk.

The broker reaches its store through :class:`MessageStore` and nothing else;
this is every call it makes:

* ``open_queue_log(vhost, name, durable)`` -- a queue's
  :class:`~leveret.store.segments.QueueLog` (``durable``: the log of a durable
  queue, kept across restarts; otherwise a paging log, wiped at start):
  ``append`` (a message record; returns its address), ``ack``, ``read``,
  ``mark_delivered``, the paged-out tail (``start_tail``/``read_tail``/
  ``skip_tail``/``end_tail``), ``stuck_segments`` (compaction), ``recover``
  (plain records back) and ``destroy``.
* ``open_exchange_log(vhost, name, durable)`` -- the same kind of log for the
  messages a delayed-message exchange holds.
* ``open_dedup_log(kind, vhost, name)`` -- the durable cache of a
  deduplicating queue (``kind`` "queue") or exchange ("exchange").
* ``forget_log(log)`` -- a log was destroyed (its entity deleted).
* ``definitions`` -- ``put(kind, key, **fields)`` / ``delete(kind, key)`` for
  durable entities (vhosts, users, permissions, policies, exchanges, queues,
  bindings).
* ``recorded_definitions()`` / ``unclean`` / ``recovered()`` -- recovery:
  the definitions state recorded at the last stop (None on a first boot),
  whether that stop was a crash, and the end of recovery (the store then
  deletes the logs of entities that were not recreated). While recovery
  runs, definitions put by the broker are not recorded again.
* ``commit`` -- the group committer: ``writes`` counts persistent records
  buffered so far, ``epoch`` is the fsync batch they belong to, and
  ``when_durable(epoch, callback)`` runs ``callback`` once that batch is on
  disk. Publisher confirms and ``tx.commit-ok`` wait on it.
* ``durable`` / ``pages`` -- whether messages survive a restart, and whether
  long queues may page to disk.
* ``attach(loop)`` once the event loop runs, ``close()`` at an orderly stop.

The store never imports ``leveret.broker`` (a test enforces it): it deals in
names, bytes and plain records. :class:`MemoryStore` keeps nothing (an
embedded broker without a data directory);
:class:`~leveret.store.disk.DiskStore` is the durable store, and its crash
tests prove the contract.
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
    unclean = False

    def __init__(self):
        self.commit = NullCommit()
        self.definitions = NullDefinitions()

    def attach(self, loop) -> None:
        """Called once the event loop runs (the committer fsyncs from a worker thread)."""
        self.commit.attach(loop)

    def open_queue_log(self, vhost: str, name: str, durable: bool):
        raise NotImplementedError("this store keeps no message log")

    def open_exchange_log(self, vhost: str, name: str, durable: bool):
        raise NotImplementedError("this store keeps no message log")

    def open_dedup_log(self, kind: str, vhost: str, name: str):
        raise NotImplementedError("this store keeps no deduplication log")

    def forget_log(self, log) -> None:
        pass

    def recorded_definitions(self) -> dict | None:
        """The durable entities recorded at the last stop, by kind (None: nothing kept)."""
        return None

    def recovered(self) -> None:
        """Recovery is over: delete what belonged to entities that were not recreated."""

    def close(self) -> None:
        pass


class MemoryStore(MessageStore):
    """Keeps nothing: messages live only in their queues' memory, definitions vanish on stop."""
