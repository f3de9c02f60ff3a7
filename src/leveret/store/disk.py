"""The durable store: a data directory of queue logs, definitions and a group committer.

Layout of ``--data-dir`` (``docs/storage.md`` has the byte formats)::

    .lock                 flock'd while a broker uses the directory
    definitions.log       durable vhosts, users, permissions, exchanges, queues, bindings
    queues/<id>/          one QueueLog per durable queue (id = sha1 of vhost and name), and one
                          per delayed-message exchange (name prefixed ``\0delayed\0``)
    dedup/<k>-<id>.log    the deduplication cache of a durable queue (k=q) or exchange (k=e)
    transient/<n>/        paging logs of non-durable queues; wiped at every start

Recovery (:meth:`DiskStore.recover`, run before the broker listens) replays
the definitions, recreates durable entities, then scans each durable queue's
log: persistent messages come back in queue order, those delivered but not
acked before a clean stop marked redelivered (after a crash all of
them are, as in RabbitMQ; an orderly stop writes ``clean_shutdown``);
transient messages are dropped, as RabbitMQ drops them. Only the head of a long queue is read into memory; the
rest stays on disk as the queue's paged-out tail.
"""
from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import os
import shutil
import time

from ..amqp.codec import table_plain
from .base import MessageStore
from .commit import Committer
from .definitions import Definitions, decode_args
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
        self._recovering = False

    def open_log(self, queue) -> QueueLog:
        if queue.durable:
            path = os.path.join(self.queues_dir, queue_dir_id(queue.vhost.name, queue.name))
        else:
            path = os.path.join(self.transient_dir, str(next(self._transient_ids)))
        qlog = QueueLog(self.commit, path)
        self.logs.add(qlog)
        return qlog

    def open_dedup_log(self, kind: str, vhost: str, name: str):
        """The durable state of a durable entity's deduplication cache."""
        from .dedup_log import DedupLog
        path = os.path.join(self.dedup_dir, f"{kind[0]}-{queue_dir_id(vhost, name)}.log")
        self.dedup_logs.add(os.path.basename(path))
        d = DedupLog(self.commit, path)
        self.dedup_open.add(d)
        return d

    def forget_log(self, qlog: QueueLog) -> None:
        self.logs.discard(qlog)

    # ------------------------------------------------------------ recovery

    def recover(self, broker) -> dict:
        from ..broker.broker import User
        from ..broker.policy import Policy
        from ..broker.queue import Queue
        t0 = time.monotonic()
        defs = self.definitions
        defs.paused = True            # replaying must not append what it replays
        stats = {"unclean_shutdown": self.unclean, "queues": 0, "messages": 0, "records": 0, "transient_dropped": 0,
                 "truncated_bytes": 0}
        try:
            if not defs.load():
                stats["first_boot"] = True
                return stats
            st = defs.state
            for (name,) in st["vhost"]:
                broker.add_vhost(name)
            for (name,), f in st["user"].items():
                broker.users[name] = User.restore(name, bytes.fromhex(f["salt"]), bytes.fromhex(f["hash"]),
                                                  f.get("tags") or ())
            for (user, vhost), f in st["permission"].items():
                broker.set_permissions(user, vhost, f["configure"], f["write"], f["read"])
            for (vname, name), f in st["policy"].items():
                v = broker.vhosts.get(vname)
                if v is not None:
                    definition = {k: table_plain(x) for k, x in decode_args(f["definition"]).items()}
                    v.set_policy(Policy(vname, name, f["pattern"], definition, f["priority"], f["apply_to"]))
            keep = set()
            for (vname, name), f in st["exchange"].items():
                v = broker.vhosts.get(vname)
                if v is not None:
                    x = v.declare_exchange(name, f["type"], True, bool(f["auto_delete"]), bool(f["internal"]),
                                           decode_args(f["args"]))
                    if x.delayed:
                        d = broker.delays.recover(x, v)
                        if d:
                            keep.add(d)
            for (vname, name), f in st["queue"].items():
                v = broker.vhosts.get(vname)
                if v is None:
                    continue
                q = Queue(name, v, durable=True, auto_delete=bool(f["auto_delete"]),
                          arguments=decode_args(f["args"]), store=self)
                v.add_queue(q)
                keep.add(os.path.basename(q.log.path))
                # queues that do not page (priorities, deduplication) are read back whole
                whole = q.max_priority is not None or q.dedup is not None
                head, tail_n, tail_bytes, s = q.log.recover(1 << 62 if whole else Queue.ram_msgs,
                                                            1 << 62 if whole else Queue.ram_bytes, self.unclean)
                q.load(head)
                q.tail, q.tail_bytes = tail_n, tail_bytes
                stats["queues"] += 1
                stats["messages"] += len(head) + tail_n
                for k in ("records", "transient_dropped", "truncated_bytes"):
                    stats[k] += s[k]
            for (vname, src, kind, dest, rk, args), _f in list(st["binding"].items()):
                v = broker.vhosts.get(vname)
                if v is None:
                    continue
                s_x = v.exchanges.get(src)
                d = (v.queues if kind == "queue" else v.exchanges).get(dest)
                if s_x is not None and d is not None:
                    v.bind(s_x, d, rk, decode_args(args))
            for name in os.listdir(self.queues_dir):
                if name not in keep:
                    shutil.rmtree(os.path.join(self.queues_dir, name), ignore_errors=True)
            for name in os.listdir(self.dedup_dir):
                if name not in self.dedup_logs:
                    os.unlink(os.path.join(self.dedup_dir, name))
        finally:
            defs.paused = False
        stats["seconds"] = round(time.monotonic() - t0, 3)
        log.info("recovered %d durable queues with %d messages in %.3f s%s", stats["queues"],
                 stats["messages"], stats["seconds"],
                 f" ({stats['truncated_bytes']} torn bytes cut away)" if stats["truncated_bytes"] else "")
        return stats

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
