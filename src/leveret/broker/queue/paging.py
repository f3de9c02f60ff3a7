"""A queue's log: persistent messages, the paged-out tail, read-back and compaction.

Everything a queue keeps on disk goes through its
:class:`~leveret.store.segments.QueueLog` (opened from the store):

* **Persistence.** A persistent message in a durable queue (every message in
  a durable quorum queue: its Raft log keeps them all) is appended to the log
  when it is enqueued; ``pos`` maps its id to its record address, so an ack
  (or a purge, or a drop) appends an ack entry. Delivered marks are written
  only at an orderly stop (for redelivered and unacked messages): after a
  crash every recovered message is marked redelivered, as in RabbitMQ.
* **Paging.** ``ready`` is the in-memory *head* of the queue, at most
  ``ram_msgs`` messages / ``ram_bytes`` bytes (the broker's memory window,
  :class:`~leveret.broker.flow.FlowControl`, shrinks it under memory
  pressure). Once it is full, new messages go only to the log (transient ones
  too, flagged so they are never recovered) and are counted in ``tail``; they
  are read back, in order, when the head runs empty. Everything in the tail
  was enqueued after everything in the head, so message-id order is still
  queue order (read-back messages get fresh ids). Priority and deduplicating
  queues do not page (``pages``).
* **Compaction.** A segment pinned by a few live records is rewritten by
  moving them to the end of the log, so disk use tracks what is queued.
"""
from __future__ import annotations

from ..message import Message
from .ttl import TAIL_EXP, now_ms

SLOTS = ("store", "log", "pos", "persist", "persist_all", "tail", "tail_bytes", "ram_msgs", "ram_bytes")


class QueueLogging:
    """Mixin of :class:`~leveret.broker.queue.base.Queue`."""

    __slots__ = ()

    def _init_log(self, store, window: tuple[int, int]) -> None:
        self.store = store
        self.persist = bool(self.durable and store is not None and store.durable)
        # a quorum queue's Raft log keeps every message, whatever its delivery mode
        self.persist_all = self.persist and self.PERSIST_ALL
        self.log = store.open_queue_log(self.vhost.name, self.name, True) if self.persist else None
        self.pos: dict[int, int] = {}       # message id -> record address in ``log``
        self.tail = 0                       # messages paged out (only in the log)
        self.tail_bytes = 0
        self.ram_msgs, self.ram_bytes = window

    def keeps(self, msg: Message) -> bool:
        """Does ``msg`` survive a restart in this queue?"""
        return self.persist and (msg.persistent or self.persist_all)

    @property
    def pages(self) -> bool:
        return self.store is not None and self.store.pages and self.max_priority is None and self.dedup is None

    def _head_full(self) -> bool:
        return bool(self.tail) or len(self.ready) >= self.ram_msgs or self.ready_bytes >= self.ram_bytes

    def _page_out(self, msg: Message, exp_at: int) -> int:
        """Append ``msg`` to the paged-out tail; its record's address."""
        log = self.log
        if log is None:
            log = self.log = self.store.open_queue_log(self.vhost.name, self.name, False)
        if not self.tail:
            log.start_tail()
        addr = log.append(msg, not self.keeps(msg), exp_at)
        self.tail += 1
        self.tail_bytes += msg.size
        return addr

    def _page_in(self) -> None:
        """Read the next batch of the paged-out tail into the head."""
        recs = self.log.read_tail(max(1, min(self.ram_msgs, 1024)), max(self.ram_bytes // 2, 1))
        self.load(recs)
        self.tail -= len(recs)
        if self.tail <= 0 or not recs:
            self.tail = self.tail_bytes = 0
            self.log.end_tail()
            self.exp.pop(TAIL_EXP, None)

    def load(self, recs: list) -> None:
        """Append records read from the log (recovery, page-in) to the head."""
        ready, pos, red = self.ready, self.pos, self.redelivered
        new_id = self.vhost.broker.new_message_id
        nbytes = 0
        exp = self.exp
        for addr, _flags, exp_at, ex_rk, header, body, delivered in recs:
            m = Message.from_record(new_id(), ex_rk, header, body)
            pos[m.id] = addr
            if delivered:
                red.add(m.id)
            ready.append(m)
            nbytes += m.size
            if self.dedup is not None:
                self.dedup.loaded(m)
            if exp_at:
                exp[m.id] = exp_at
        self.ready_bytes += nbytes
        self.tail_bytes -= nbytes

    def recover_from_log(self, unclean: bool) -> dict:
        """Recovery: read the head of the log back (whole, for queues that do not page); the rest
        stays on disk as the paged-out tail. Returns the log's recovery statistics."""
        whole = not self.pages
        head, tail_n, tail_bytes, stats = self.log.recover(1 << 62 if whole else self.ram_msgs,
                                                           1 << 62 if whole else self.ram_bytes, unclean)
        self.load(head)
        self.tail, self.tail_bytes = tail_n, tail_bytes
        if tail_n:
            self._tail_expiry()     # (the tail's deadlines are known only once it is read back)
        if self.exp:
            self.special = True             # deliveries and requeues keep the deadlines
            self._arm_expiry(now_ms())      # the head is checked once the broker runs
        stats["messages"] = len(head) + tail_n
        return stats

    def mark_delivered(self, msg: Message) -> None:
        """Record that ``msg`` was delivered, so the next start marks it redelivered (written at
        an orderly stop: after a crash every recovered message counts as delivered anyway)."""
        addr = self.pos.get(msg.id)
        if addr is not None:
            self.log.mark_delivered(addr)

    def save_delivered_marks(self) -> None:
        if self.pos and self.redelivered:
            for m in self.ready:
                if m.id in self.redelivered:
                    self.mark_delivered(m)

    def compact(self, unacked) -> int:
        """Move the few live records of stuck log segments to the end of the log so the
        segments can be deleted (disk use then tracks what is queued). ``unacked``: this queue's
        delivered, unacked messages. Returns records moved."""
        log = self.log
        if log is None or not self.pos or self.tail:
            return 0        # appends would land in the paged-out tail: not now
        stuck = log.stuck_segments()
        if not stuck:
            return 0
        nums = set(stuck)
        by_id = {m.id: m for m in self.ready}
        for msg in unacked:
            by_id[msg.id] = msg
        moved = 0
        for mid, addr in list(self.pos.items()):
            if addr >> 32 not in nums:
                continue
            msg = by_id.get(mid)
            if msg is None:
                continue
            self.pos[mid] = log.append(msg, not self.keeps(msg), self.exp.get(mid) or self.exp_out.get(mid, 0))
            log.ack(addr)
            moved += 1
        return moved

    def destroy_log(self) -> None:
        """The queue was deleted: its files go."""
        self.pos.clear()
        self.tail = self.tail_bytes = 0
        if self.log is not None:
            self.log.destroy()
            self.store.forget_log(self.log)
            self.log = None
