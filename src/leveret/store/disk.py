"""The durable store: a data directory of queue logs, definitions and a group committer.

Layout of ``--data-dir`` (``docs/storage.md`` has the byte formats)::

    .lock                 flock'd while a broker uses the directory
    definitions.log       durable vhosts, users, permissions, exchanges, queues, bindings
    queues/<id>/          one QueueLog per durable queue (id = sha1 of vhost and name), and one
                          per delayed-message exchange (name prefixed ``\0delayed\0``)
    dedup/<k>-<id>.log    the deduplication cache of a durable queue (k=q) or exchange (k=e)
    transient/<n>/        paging logs of non-durable queues; wiped at every start

Recovery is the broker's (``broker/recovery.py``): the store hands it the
recorded definitions (:meth:`DiskStore.recorded_definitions`) and each queue
log's records, says whether the last stop was clean (an orderly stop writes
``clean_shutdown``), and afterwards deletes the logs of entities that were not
recreated (:meth:`DiskStore.recovered`). This module never imports the broker.
"""
from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import os
import shutil

from .base import MessageStore
from .commit import Committer
from .dedup_log import DedupLog
from .definitions import Definitions
from .segments import QueueLog

log = logging.getLogger("leveret.store")


class DataDirInUse(RuntimeError):
    pass


def _raise_fd_limit() -> None:
    """Queues hold a few files each: use the hard limit on open files, as servers do."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def queue_dir_id(vhost: str, name: str) -> str:
    return hashlib.sha1(f"{vhost}\0{name}".encode("utf-8", "surrogateescape")).hexdigest()[:24]


class DiskStore(MessageStore):
    durable = True
    pages = True

    def __init__(self, data_dir: str):
        super().__init__()
        self.dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        self._lock_fd = os.open(os.path.join(data_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirInUse(f"data directory {data_dir} is in use by another Leveret broker") from None
        _raise_fd_limit()
        self.commit = Committer()
        self.definitions = Definitions(os.path.join(data_dir, "definitions.log"), self.commit)
        self.queues_dir = os.path.join(data_dir, "queues")
        self.transient_dir = os.path.join(data_dir, "transient")
        shutil.rmtree(self.transient_dir, ignore_errors=True)
        os.makedirs(self.queues_dir, exist_ok=True)
        self.dedup_dir = os.path.join(data_dir, "dedup")
        os.makedirs(self.dedup_dir, exist_ok=True)
        self.dedup_logs: set[str] = set()
        self.dedup_open: set = set()
        # a clean stop leaves this marker; without it the last stop was a crash
        self._clean_marker = os.path.join(data_dir, "clean_shutdown")
        self.unclean = os.path.exists(os.path.join(data_dir, "definitions.log")) and \
            not os.path.exists(self._clean_marker)
        if os.path.exists(self._clean_marker):
            os.unlink(self._clean_marker)
        self._transient_ids = itertools.count(1)
        self.logs: set[QueueLog] = set()

    def open_queue_log(self, vhost: str, name: str, durable: bool) -> QueueLog:
        if durable:
            path = os.path.join(self.queues_dir, queue_dir_id(vhost, name))
        else:
            path = os.path.join(self.transient_dir, str(next(self._transient_ids)))
        qlog = QueueLog(self.commit, path)
        self.logs.add(qlog)
        return qlog

    def open_exchange_log(self, vhost: str, name: str, durable: bool) -> QueueLog:
        """A delayed exchange's log lives beside the queues' (its name cannot be a queue's)."""
        return self.open_queue_log(vhost, "\0delayed\0" + name, durable)

    def open_dedup_log(self, kind: str, vhost: str, name: str) -> DedupLog:
        """The durable state of a durable entity's deduplication cache."""
        path = os.path.join(self.dedup_dir, f"{kind[0]}-{queue_dir_id(vhost, name)}.log")
        self.dedup_logs.add(os.path.basename(path))
        d = DedupLog(self.commit, path)
        self.dedup_open.add(d)
        return d

    def forget_log(self, qlog: QueueLog) -> None:
        self.logs.discard(qlog)

    # ------------------------------------------------------------ recovery

    def recorded_definitions(self) -> dict | None:
        defs = self.definitions
        if not defs.load():
            return None
        defs.paused = True            # the broker's replay must not append what it replays
        return defs.state

    def recovered(self) -> None:
        """Delete the logs no recreated entity opened (entities deleted before the stop)."""
        keep = {os.path.basename(qlog.path) for qlog in self.logs}
        for name in os.listdir(self.queues_dir):
            if name not in keep:
                shutil.rmtree(os.path.join(self.queues_dir, name), ignore_errors=True)
        for name in os.listdir(self.dedup_dir):
            if name not in self.dedup_logs:
                os.unlink(os.path.join(self.dedup_dir, name))
        self.definitions.paused = False

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.commit.sync_now()
        for qlog in list(self.logs):
            qlog.close()
        for d in self.dedup_open:
            d.close()
        self.definitions.close()
        self.commit.close()
        with open(self._clean_marker, "wb") as f:
            os.fsync(f.fileno())
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
