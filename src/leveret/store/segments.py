"""A queue's message log: append-only, checksummed segment files (one directory per queue).

Why hand-written: the log *is* the durability promise (a confirm is sent only
after its record is fsynced), its crash behaviour must be provable record by
record, and the hot path must cost one buffer append per message. An embedded
database would add a second transaction log, a page cache and per-row
overhead to what is an append, a scan and an unlink. ``docs/storage.md``
describes the format; this docstring is the short version.

Files in a queue directory, ``NNNNNNNN`` being the segment number (hex, from 1):

``NNNNNNNN.msgs``
    8-byte magic ``LVRTSEG1``, then records::

        u32 payload length | u32 crc32(payload) | payload
        payload = u8 flags | u64 expires-at (ms since epoch, 0 = never)
                | shortstr exchange | shortstr routing key
                | u32 header length | content header (class..property list) | body

    ``flags`` bit 0 = transient: a paged-out non-persistent message, never
    recovered. A record's address is ``(segment << 32) | offset``.
``NNNNNNNN.acks``
    8-byte entries ``u32 entry | u32 entry ^ 0xFFFFFFFF`` about records of the
    same segment: ``entry`` is the record offset (it left the queue for good),
    or the offset with bit 31 set (it was delivered; recovery marks it
    redelivered), or ``0xFFFFFFFF``: every record of the segment counts as
    delivered (written when recovering from a crash). The check word makes a
    zero-filled or torn tail invalid.

Invariants:

* A segment's records are in queue (enqueue) order, and segment numbers
  increase, so reading the segments in order yields the queue in order.
* An acks file refers only to its own segment, so deleting a segment (both
  files) once every record in it is acked never resurrects or loses anything.
* Buffers are written out (``pwrite(2)``) at the end of every event-loop turn,
  each segment's records before its acks; a SIGKILL can therefore lose only
  unconfirmed records. fsync happens in :mod:`leveret.store.commit`.
* Recovery verifies every record's CRC. The first bad or short record ends the
  segment: the file is truncated there and acks pointing past it are dropped,
  so a later record at the same offset cannot inherit a stale ack.
"""
from __future__ import annotations

import logging
import os
import struct
import zlib

log = logging.getLogger("leveret.store")

MAGIC = b"LVRTSEG1"
REC = struct.Struct("<II")           # payload length, crc32(payload)
PHDR = struct.Struct("<BQ")          # flags, expires-at
U32 = struct.Struct("<I")
ACK = struct.Struct("<II")
DELIVERED = 0x80000000
ALL_DELIVERED = 0xFFFFFFFF          # acks entry: every record of the segment counts as delivered
FLAG_TRANSIENT = 1
SEGMENT_BYTES = 8 * 1024 * 1024      # a segment is closed for appends once it is this large
READ_CHUNK = 1024 * 1024
READ_AHEAD = 3                       # segments recovery asks the kernel to read ahead of its scan
_crc32 = zlib.crc32


class Segment:
    __slots__ = ("num", "path", "fd", "size", "buf", "live", "total", "last_live", "ack_fd", "ack_buf",
                 "ack_size", "dead", "delivered", "needs_sync", "deleted")

    def __init__(self, num: int, path: str):
        self.num = num
        self.path = path             # without extension
        self.fd: int | None = None   # .msgs, opened read/write on demand
        self.size = 0                # bytes in the file including buffered ones
        self.buf = bytearray()       # appended records not yet written
        self.live = 0                # records not yet acked (or dead at recovery)
        self.total = 0               # records in the segment
        self.last_live = -1          # ``live`` at the previous compaction check
        self.ack_fd: int | None = None
        self.ack_buf = bytearray()
        self.ack_size = 0            # bytes in the acks file (set when it is opened)
        self.dead: set | None = None       # recovered segments: offsets not to read back
        self.delivered: set | None = None  # recovered segments: offsets delivered before
        self.needs_sync = False      # holds persistent records not yet fsynced
        self.deleted = False

    def open(self) -> int:
        fd = self.fd
        if fd is None:
            fd = self.fd = os.open(self.path + ".msgs", os.O_RDWR | os.O_CREAT, 0o644)
        return fd


class QueueLog:
    """The on-disk part of one queue (durable, or paging for a transient queue)."""

    __slots__ = ("commit", "path", "segments", "head", "cursor", "created", "_next_num")

    def __init__(self, commit, path: str):
        self.commit = commit
        self.path = path
        self.segments: dict[int, Segment] = {}
        self.head: Segment | None = None
        self.cursor: tuple[int, int] | None = None    # next record of the paged-out tail
        self.created = False
        self._next_num = 1

    # ------------------------------------------------------------ writing (hot path)

    def append(self, msg, transient: bool, expires_at: int = 0) -> int:
        """Buffer a record for ``msg``; returns its address."""
        seg = self.head
        if seg is None or seg.size >= SEGMENT_BYTES:
            seg = self._new_segment()
        header = msg.header
        prefix = PHDR.pack(FLAG_TRANSIENT if transient else 0, expires_at) + msg.ex_rk + \
            U32.pack(len(header)) + header
        body = msg.body
        off = seg.size
        buf = seg.buf
        buf += REC.pack(len(prefix) + len(body), _crc32(body, _crc32(prefix)))
        buf += prefix
        buf += body
        seg.size = off + 8 + len(prefix) + len(body)
        seg.live += 1
        seg.total += 1
        commit = self.commit
        if not transient:
            seg.needs_sync = True
            commit.writes += 1
        commit.dirty(seg)
        return (seg.num << 32) | off

    def ack(self, addr: int) -> None:
        seg = self.segments.get(addr >> 32)
        if seg is None:
            return
        seg.ack_buf += _entry(addr & 0x7FFFFFFF)
        seg.live -= 1
        if seg.live <= 0 and seg is not self.head:
            self._delete_segment(seg)
        else:
            self.commit.dirty(seg)

    def mark_delivered(self, addr: int) -> None:
        seg = self.segments.get(addr >> 32)
        if seg is not None:
            seg.ack_buf += _entry((addr & 0x7FFFFFFF) | DELIVERED)
            self.commit.dirty(seg)

    def _new_segment(self) -> Segment:
        if not self.created:
            os.makedirs(self.path, exist_ok=True)
            self.created = True
        num = self._next_num
        self._next_num = num + 1
        seg = Segment(num, os.path.join(self.path, f"{num:08x}"))
        seg.buf += MAGIC
        seg.size = len(MAGIC)
        old = self.head
        self.segments[num] = self.head = seg
        self.commit.new_file(self.path)
        if old is not None:
            if old.live <= 0:
                self._delete_segment(old)
            else:
                self.commit.retire(old)
        return seg

    def _delete_segment(self, seg: Segment) -> None:
        seg.deleted = True
        self.segments.pop(seg.num, None)
        seg.buf.clear()
        seg.ack_buf.clear()
        for ext in (".msgs", ".acks"):
            try:
                os.unlink(seg.path + ext)
            except FileNotFoundError:
                pass
        self.commit.close_later(seg)

    # ------------------------------------------------------------ flushing (commit calls)

    @staticmethod
    def flush_segment(seg: Segment) -> None:
        """Write buffered records, then buffered acks (in that order), each at its known file
        offset (``pwrite``): if a write fails half-way (disk full), the buffer is kept and the
        retry overwrites the same bytes, so a file never holds a record or entry twice."""
        if seg.deleted:
            return
        if seg.buf:
            fd = seg.open()
            _pwrite_all(fd, seg.buf, seg.size - len(seg.buf))
            seg.buf.clear()
        if seg.ack_buf:
            fd = seg.ack_fd
            if fd is None:
                fd = seg.ack_fd = os.open(seg.path + ".acks", os.O_WRONLY | os.O_CREAT, 0o644)
                seg.ack_size = os.fstat(fd).st_size // ACK.size * ACK.size
            _pwrite_all(fd, seg.ack_buf, seg.ack_size)
            seg.ack_size += len(seg.ack_buf)
            seg.ack_buf.clear()

    # ------------------------------------------------------------ reading the paged-out tail

    def start_tail(self) -> None:
        """Messages appended from now on form the paged-out tail (read back in order)."""
        if self.cursor is None:
            seg = self.head
            if seg is None or seg.size >= SEGMENT_BYTES:
                seg = self._new_segment()
            self.cursor = (seg.num, seg.size)

    def read_tail(self, max_count: int, max_bytes: int) -> list:
        """Up to ``max_count`` live records from the cursor on, as
        ``(addr, flags, expires_at, ex_rk, header, body, delivered)``."""
        out: list = []
        cur = self.cursor
        if cur is None:
            return out
        num, off = cur
        nbytes = 0
        while len(out) < max_count and nbytes < max_bytes:
            seg = self.segments.get(num)
            if seg is None:
                # segment gone (all its records were acked): move on
                if num >= self._next_num - 1:
                    break
                num, off = num + 1, len(MAGIC)
                continue
            if seg.buf:
                self.flush_segment(seg)
            if off >= seg.size:
                if seg is self.head:
                    break
                self.commit.retire(seg)     # read to the end: its fd can go
                num, off = num + 1, len(MAGIC)
                continue
            fd = seg.open()
            data = os.pread(fd, READ_CHUNK, off)
            pos = 0
            while pos + 8 <= len(data) and len(out) < max_count and nbytes < max_bytes:
                ln, crc = REC.unpack_from(data, pos)
                end = pos + 8 + ln
                if end > len(data):
                    if pos == 0:          # one record larger than a chunk
                        data = os.pread(fd, 8 + ln, off)
                        pos, end = 0, 8 + ln
                    else:
                        break
                rec_off = off + pos
                payload = data[pos + 8:end]
                pos = end
                if seg.dead is not None and rec_off in seg.dead:
                    continue
                if _crc32(payload) != crc:
                    log.error("corrupt record in %s at %d: skipped", seg.path, rec_off)
                    seg.live -= 1
                    continue
                rec = _parse(payload)
                delivered = seg.delivered is not None and rec_off in seg.delivered
                out.append(((num << 32) | rec_off,) + rec + (delivered,))
                nbytes += ln
            off += pos
        self.cursor = (num, off)
        return out

    def read(self, addr: int) -> tuple | None:
        """One record by address, as ``(flags, expires_at, ex_rk, header, body)`` (None if its
        segment is gone or the record is corrupt). Random access, for delayed messages."""
        seg = self.segments.get(addr >> 32)
        if seg is None:
            return None
        if seg.buf:
            self.flush_segment(seg)
        fd = seg.open()
        off = addr & 0xFFFFFFFF
        hdr = os.pread(fd, 8, off)
        if len(hdr) < 8:
            return None
        ln, crc = REC.unpack(hdr)
        payload = os.pread(fd, ln, off + 8)
        if len(payload) != ln or _crc32(payload) != crc:
            log.error("corrupt record in %s at %d: skipped", seg.path, off)
            return None
        return _parse(payload)

    def skip_tail(self) -> None:
        """Drop the whole paged-out tail (purge). Every record from the cursor on belongs to the
        tail, so the segments after the cursor's are deleted outright and only the records of
        the cursor's own segment are acked one by one (their lengths are read, not their bodies
        parsed)."""
        cur = self.cursor
        if cur is None:
            return
        num, off = cur
        self.cursor = None
        for n in [n for n in self.segments if n > num]:
            seg = self.segments[n]
            if seg is self.head:
                self.head = None
            self._delete_segment(seg)
        seg = self.segments.get(num)
        if seg is None:
            return
        if seg.buf:
            self.flush_segment(seg)
        data = os.pread(seg.open(), seg.size - off, off) if seg.size > off else b""
        pos = 0
        addrs = []
        while pos + 8 <= len(data):
            ln = REC.unpack_from(data, pos)[0]
            rec_off = off + pos
            if seg.dead is None or rec_off not in seg.dead:
                addrs.append((num << 32) | rec_off)
            pos += 8 + ln
        for a in addrs:
            self.ack(a)

    def end_tail(self) -> None:
        self.cursor = None

    # ------------------------------------------------------------ compaction

    def stuck_segments(self) -> list[int]:
        """Segments kept alive by a few records that have not moved since the last check (a
        message left unacked or requeued at the head, say): rewriting those records at the end
        of the log lets the whole segment go. Only segments before the paged-out tail qualify:
        their live records are all in memory, so moving them cannot change the queue order."""
        limit = self.cursor[0] if self.cursor is not None else None
        out = []
        for num, seg in self.segments.items():
            if seg is self.head or (limit is not None and num >= limit) or seg.live <= 0:
                continue
            sparse = seg.live * 8 <= seg.total
            if sparse and seg.live == seg.last_live:
                out.append(num)
            seg.last_live = seg.live if sparse else -1
        return out

    # ------------------------------------------------------------ lifecycle

    def destroy(self) -> None:
        """The queue is deleted: remove every file."""
        for seg in list(self.segments.values()):
            self._delete_segment(seg)
        self.head = None
        self.cursor = None
        if self.created:
            for name in os.listdir(self.path) if os.path.isdir(self.path) else ():
                try:
                    os.unlink(os.path.join(self.path, name))
                except OSError:
                    pass
            try:
                os.rmdir(self.path)
            except OSError:
                pass
            self.created = False

    def close(self) -> None:
        for seg in self.segments.values():
            self.flush_segment(seg)
            for fd in (seg.fd, seg.ack_fd):
                if fd is not None:
                    os.close(fd)
            seg.fd = seg.ack_fd = None

    # ------------------------------------------------------------ recovery

    def recover(self, window: int, window_bytes: int, unclean: bool = False, index: list | None = None):
        """Scan the directory. Returns ``(head, tail_count, tail_bytes, stats)``: ``head`` is a
        list of the first live records (as :meth:`read_tail` returns them) up to the window; the rest of
        the live records stay on disk and are read with :meth:`read_tail`. After an unclean stop
        every recovered message counts as delivered (RabbitMQ cannot know which were, so it marks
        them all redelivered). With ``index``, nothing is read into a head: each live record's
        ``(addr, expires_at)`` is appended to it instead (delayed messages)."""
        stats = {"records": 0, "live": 0, "transient_dropped": 0, "truncated_bytes": 0}
        head: list = []
        hbytes = 0
        tail_n = tail_bytes = 0
        if not os.path.isdir(self.path):
            return head, 0, 0, stats
        self.created = True
        nums = sorted(int(n[:-5], 16) for n in os.listdir(self.path)
                      if n.endswith(".msgs") and len(n) == 13 and _is_hex(n[:-5]))
        for n in os.listdir(self.path):
            if n.endswith(".acks") and (len(n) != 13 or not _is_hex(n[:-5]) or int(n[:-5], 16) not in nums):
                os.unlink(os.path.join(self.path, n))       # acks of a segment already deleted
        for ahead in nums[1:1 + READ_AHEAD]:
            self._read_ahead(ahead)
        for i, num in enumerate(nums):
            if i and i + READ_AHEAD < len(nums):
                self._read_ahead(nums[i + READ_AHEAD])      # keep READ_AHEAD segments in flight
            seg = Segment(num, os.path.join(self.path, f"{num:08x}"))
            with open(seg.path + ".msgs", "rb") as f:
                data = f.read()
            acked, delivered, torn = _read_acks(seg.path + ".acks")
            mark_all = unclean and delivered is not ALL
            if mark_all:
                delivered = ALL
            dead: set = set()
            good_end = len(MAGIC) if data[:8] == MAGIC else 0
            pos = good_end
            offsets: list = []
            live = transient = 0
            if good_end:
                # one pass: check each record's CRC and sort it into dead / head / tail (the
                # loop runs once per message recovered, so it is kept free of calls it can avoid)
                mv = memoryview(data)
                size = len(data)
                rec_unpack = REC.unpack_from
                u32_unpack = U32.unpack_from
                add_offset = offsets.append
                while pos + 8 <= size:
                    ln, crc = rec_unpack(data, pos)
                    end = pos + 8 + ln
                    if ln < PHDR.size + 6 or end > size or _crc32(mv[pos + 8:end]) != crc:
                        break
                    off = pos
                    pos = end
                    add_offset(off)
                    if off in acked:
                        dead.add(off)
                        continue
                    if data[off + 8] & FLAG_TRANSIENT:
                        dead.add(off)
                        transient += 1
                        continue
                    live += 1
                    if index is not None:
                        index.append(((num << 32) | off, PHDR.unpack_from(data, off + 8)[1]))
                    elif self.cursor is None and len(head) < window and hbytes < window_bytes:
                        rec = _parse(mv[off + 8:end])
                        head.append(((num << 32) | off,) + rec + (off in delivered,))
                        hbytes += ln
                    else:
                        if self.cursor is None:
                            self.cursor = (num, off)
                        tail_n += 1
                        p = off + 17                      # record header + flags + expires-at
                        p += 1 + data[p]                  # exchange
                        p += 1 + data[p]                  # routing key
                        tail_bytes += end - p - 4 - u32_unpack(data, p)[0]
                good_end = pos
                mv.release()
            stats["records"] += len(offsets)
            stats["transient_dropped"] += transient
            if good_end < len(data):
                stats["truncated_bytes"] += len(data) - good_end
                log.warning("segment %s: %d bytes after offset %d are torn or corrupt; cut away",
                            seg.path, len(data) - good_end, good_end)
                with open(seg.path + ".msgs", "r+b") as f:
                    if good_end == 0:
                        f.write(MAGIC)
                        good_end = len(MAGIC)
                    f.truncate(good_end)
                    os.fsync(f.fileno())
            valid = set(offsets)
            if torn or (acked - valid) or (delivered is not ALL and delivered - valid):
                acked &= valid
                if delivered is not ALL:
                    delivered &= valid
                _rewrite_acks(seg.path + ".acks", acked, delivered)
            elif mark_all:
                # remember it: this segment's records count as delivered from now on
                with open(seg.path + ".acks", "ab") as f:
                    f.write(_entry(ALL_DELIVERED))
            stats["live"] += live
            seg.size = good_end
            seg.live = live
            seg.total = len(offsets)
            seg.dead = dead or None
            seg.delivered = delivered or None
            self.segments[num] = seg
            self._next_num = num + 1
            del data
        # recovered segments are closed for appends; a fresh head starts with the next write
        for seg in list(self.segments.values()):
            if seg.live <= 0:
                self._delete_segment(seg)
        return head, tail_n, tail_bytes, stats

    def _read_ahead(self, num: int) -> None:
        """Ask the kernel to start reading a segment that recovery will scan soon, so the disk
        works while this thread checks the segments before it."""
        try:
            fd = os.open(os.path.join(self.path, f"{num:08x}.msgs"), os.O_RDONLY)
        except OSError:
            return
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except (OSError, AttributeError):
            pass
        finally:
            os.close(fd)


class _All:
    """The delivered-set of a segment recovered after a crash: everything."""

    def __contains__(self, item) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


ALL = _All()


def _parse(payload) -> tuple:
    flags, expires = PHDR.unpack_from(payload, 0)
    p = PHDR.size
    p2 = p + 1 + payload[p]
    p3 = p2 + 1 + payload[p2]
    ex_rk = bytes(payload[p:p3])
    hl = U32.unpack_from(payload, p3)[0]
    hs = p3 + 4
    header = bytes(payload[hs:hs + hl])
    body = bytes(payload[hs + hl:])
    return flags, expires, ex_rk, header, body


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
        return True
    except ValueError:
        return False


def _entry(e: int) -> bytes:
    return ACK.pack(e, e ^ 0xFFFFFFFF)


def _read_acks(path: str) -> tuple:
    """``(acked offsets, delivered offsets or ALL, torn)``; ``torn``: the file holds a partial
    or invalid entry (it is then rewritten with the valid ones)."""
    acked: set = set()
    delivered = set()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return acked, delivered, False
    torn = len(data) % 8 != 0
    for e, chk in ACK.iter_unpack(data[:len(data) - len(data) % 8]):
        if e ^ chk != 0xFFFFFFFF:
            torn = True
        elif e == ALL_DELIVERED:
            delivered = ALL
        elif e & DELIVERED:
            if delivered is not ALL:
                delivered.add(e & 0x7FFFFFFF)
        else:
            acked.add(e)
    return acked, delivered, torn


def _rewrite_acks(path: str, acked: set, delivered: set) -> None:
    parts = [_entry(e) for e in sorted(acked)]
    if delivered is ALL:
        parts.append(_entry(ALL_DELIVERED))
    else:
        parts += [_entry(e | DELIVERED) for e in sorted(delivered)]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(parts))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_all(fd: int, buf) -> None:
    with memoryview(buf) as whole:
        mv = whole
        while mv:
            n = os.write(fd, mv)
            mv = mv[n:]


def _pwrite_all(fd: int, buf, offset: int) -> None:
    # the views are released even when a write raises, so ``buf`` can still be resized
    with memoryview(buf) as whole:
        done = 0
        while done < len(whole):
            with whole[done:] as rest:
                n = os.pwrite(fd, rest, offset + done)
            done += n
