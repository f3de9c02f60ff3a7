"""Group commit: many records, one fsync, then the confirms that waited for it.

The store appends records to in-memory buffers during an event-loop turn and
marks their segments dirty. At the end of the turn :meth:`Committer.flush`
writes every dirty buffer out (``write(2)``: from here a SIGKILL loses
nothing) and, if any persistent record is not yet on disk, starts an fsync of
the files concerned in a worker thread. While one fsync runs, new records
accumulate and go together in the next one: that is the group commit, so the
number of fsyncs per second is bounded by the disk, not by the message rate.

Epochs tie waiters to fsyncs: a record buffered while ``epoch`` is ``E`` is on
disk once ``durable`` reaches ``E``. Publisher confirms and ``tx.commit-ok``
wait with :meth:`when_durable`; nothing else waits. File descriptors are
closed only when no fsync is in flight, so a thread never syncs a reused fd.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from .segments import QueueLog

log = logging.getLogger("leveret.store")


class Committer:
    def __init__(self):
        self.loop = None
        self.writes = 0               # persistent records buffered so far (monotonic)
        self.epoch = 1                # the epoch that records buffered now belong to
        self.durable = 0              # every epoch <= this is fsynced
        self._synced_writes = 0       # ``writes`` value covered by the last fsync started
        self._dirty: set = set()      # segments with buffered bytes
        self._to_sync: set = set()    # segments/objects written but not fsynced
        self._dirs: set = set()       # directories that got new files
        self._extra: set = set()      # other files to sync (definitions): objects with .sync_fd()
        self._waiters: list = []      # (epoch, callback)
        self._inflight = False
        self._scheduled = False
        self._close: list = []
        self._retired: set = set()    # closed-for-append segments whose fds can go once synced
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="leveret-fsync")
        self.failed: Exception | None = None
        self.write_error: OSError | None = None

    def attach(self, loop) -> None:
        self.loop = loop
        if self._dirty or self._extra or self._to_sync:
            self._scheduled = False
            self._schedule()

    # ------------------------------------------------------------ called by the logs

    def dirty(self, seg) -> None:
        self._dirty.add(seg)
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        """Flush at the end of this loop turn (before the loop runs, at :meth:`attach`)."""
        self._scheduled = True
        if self.loop is not None:
            self.loop.call_soon(self.flush)

    def new_file(self, directory: str) -> None:
        self._dirs.add(directory)

    def close_later(self, seg) -> None:
        """Close ``seg``'s files (anything with ``fd``/``ack_fd``) once no fsync uses them."""
        self._dirty.discard(seg)
        self._to_sync.discard(seg)
        self._extra.discard(seg)
        if self._inflight:
            self._close.append(seg)
        else:
            _close_fds(seg)

    def retire(self, seg) -> None:
        """``seg`` takes no more appends: close its file once nothing needs its fd (a long queue
        would otherwise hold one descriptor per segment)."""
        self._retired.add(seg)

    def _close_retired(self) -> None:
        if self._inflight:
            return
        keep = set()
        for seg in self._retired:
            if seg.deleted:
                continue
            if seg.needs_sync or seg in self._to_sync or seg.buf or seg.ack_buf:
                keep.add(seg)
            else:
                _close_fds(seg)
        self._retired = keep

    def need_sync(self, obj) -> None:
        """Sync ``obj`` (has ``sync_fd()``) with the next commit; counts as a write."""
        self._extra.add(obj)
        self.writes += 1
        if not self._scheduled:
            self._schedule()

    def when_durable(self, epoch: int, callback) -> None:
        if epoch <= self.durable:
            callback()
        else:
            self._waiters.append((epoch, callback))

    # ------------------------------------------------------------ end of a loop turn

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        failed = False
        for seg in dirty:
            try:
                QueueLog.flush_segment(seg)
            except OSError as e:
                # disk full or failing: keep the buffer (nothing it holds is confirmed) and retry
                failed = True
                self._dirty.add(seg)
                if self.write_error is None:
                    log.error("cannot write %s: %s — confirms are held until writes succeed", seg.path, e)
                self.write_error = e
                continue
            if seg.needs_sync:
                self._to_sync.add(seg)
        if failed:
            if self.loop is not None:
                self._scheduled = True
                self.loop.call_later(1.0, self.flush)
            return
        if self.write_error is not None:
            log.warning("writes to the data directory succeed again")
            self.write_error = None
        if self.writes != self._synced_writes and not self._inflight:
            self._start_sync()
        if self._retired:
            self._close_retired()

    def _take_sync_set(self) -> tuple[list, list]:
        """The file descriptors and directories the next fsync covers (and forget them)."""
        segs = [s for s in self._to_sync if not s.deleted]
        for s in segs:
            s.needs_sync = False
        fds = [s.fd for s in segs if s.fd is not None] + [o.sync_fd() for o in self._extra]
        dirs = list(self._dirs)
        self._to_sync, self._extra, self._dirs = set(), set(), set()
        return fds, dirs

    def _start_sync(self) -> None:
        fds, dirs = self._take_sync_set()
        epoch = self.epoch
        self.epoch += 1
        self._synced_writes = self.writes
        self._inflight = True
        if self.loop is None:
            self._sync(fds, dirs)
            self._done(epoch, None)
            return
        fut = self.loop.run_in_executor(self._pool, self._sync, fds, dirs)
        fut.add_done_callback(lambda f: self._done(epoch, f.exception()))

    @staticmethod
    def _sync(fds: list, dirs: list) -> None:
        for d in dirs:
            try:
                dfd = os.open(d, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        for fd in fds:
            os.fdatasync(fd)

    def _done(self, epoch: int, exc) -> None:
        self._inflight = False
        if exc is not None:
            # the data may not be on disk: never confirm it. Leave the waiters; the operator
            # sees the error, and the disk alarm blocks publishers.
            log.error("fsync failed: %r — confirms are withheld", exc)
            self.failed = exc
        else:
            self.durable = epoch
            if self._waiters:
                ready = [cb for e, cb in self._waiters if e <= epoch]
                self._waiters = [(e, cb) for e, cb in self._waiters if e > epoch]
                for cb in ready:
                    cb()
        for seg in self._close:
            _close_fds(seg)
        self._close.clear()
        if self._retired:
            self._close_retired()
        if self.writes != self._synced_writes and self.failed is None:
            if self._scheduled:
                return
            self.flush()

    def sync_now(self) -> None:
        """Flush and fsync everything, blocking (shutdown). An fsync already running in the
        worker finishes first, so no file is closed under it."""
        self.flush()
        self._pool.submit(_noop).result()
        self._sync(*self._take_sync_set())

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for seg in self._close:
            _close_fds(seg)
        self._close.clear()


def _noop() -> None:
    pass


def _close_fds(seg) -> None:
    for attr in ("fd", "ack_fd"):
        fd = getattr(seg, attr)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
            setattr(seg, attr, None)
