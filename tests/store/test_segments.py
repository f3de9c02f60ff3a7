"""Unit tests of the durable store's files: QueueLog segments, the group Committer, Definitions.

These call the store directly on a temporary directory (no broker, no event loop:
a ``Committer`` without a loop writes and fsyncs synchronously in :meth:`flush`),
then damage the files the way a crash or a bad disk would and check what recovery
keeps, what it cuts away, and that the log stays usable afterwards.
"""
from __future__ import annotations

import os
import struct

import pytest

from leveret.amqp.codec import Typed
from leveret.store import commit as commit_mod
from leveret.store import segments
from leveret.store.commit import Committer
from leveret.store.definitions import Definitions, decode_args, encode_args
from leveret.store.segments import QueueLog


# --------------------------------------------------------------------------- helpers
def shortstr(s: str) -> bytes:
    b = s.encode()
    return bytes([len(b)]) + b


class FakeMsg:
    """What QueueLog.append reads from a message: ``header``, ``ex_rk``, ``body``."""

    def __init__(self, body: bytes, exchange: str = "ex", routing_key: str = "rk",
                 persistent: bool = True, content_type: str | None = None):
        self.body = body
        self.ex_rk = shortstr(exchange) + shortstr(routing_key)
        flags = 0x1000                       # delivery-mode
        props = b""
        if content_type is not None:
            flags |= 0x8000                  # content-type comes first in the property list
            props += shortstr(content_type)
        props += bytes([2 if persistent else 1])
        # class 60, weight 0, body size, property flags, property list
        self.header = struct.pack(">HHQH", 60, 0, len(body), flags) + props


def make_msgs(n: int, size: int = 20) -> list[FakeMsg]:
    out = []
    for i in range(n):
        body = (f"m{i:04d}-".encode() * size)[: size + i % 7]
        out.append(FakeMsg(body, exchange=f"x{i % 3}", routing_key=f"key.{i}",
                           content_type="text/plain" if i % 2 else None))
    return out


def new_log(path) -> tuple[Committer, QueueLog]:
    c = Committer()
    return c, QueueLog(c, str(path))


def recover_all(path, window: int = 1 << 30, window_bytes: int = 1 << 60):
    """A fresh QueueLog over ``path``; returns (log, committer, records, stats) with the tail read too."""
    c, qlog = new_log(path)
    head, tail_n, _tail_bytes, stats = qlog.recover(window, window_bytes)
    rest = read_whole_tail(qlog)
    assert len(rest) == tail_n
    return qlog, c, head + rest, stats


def read_whole_tail(qlog: QueueLog) -> list:
    out = []
    while True:
        recs = qlog.read_tail(3, 1 << 60)
        if not recs:
            return out
        out.extend(recs)


def content(recs) -> list[tuple]:
    """(ex_rk, header, body) of each record, the part that must round-trip byte for byte."""
    return [(r[3], r[4], r[5]) for r in recs]


def msg_content(msgs) -> list[tuple]:
    return [(m.ex_rk, m.header, m.body) for m in msgs]


def seg_path(qdir, num: int, ext: str) -> str:
    return os.path.join(str(qdir), f"{num:08x}.{ext}")


def write_and_flush(qdir, msgs, transient=()) -> tuple[Committer, QueueLog, list[int]]:
    c, qlog = new_log(qdir)
    addrs = [qlog.append(m, i in transient) for i, m in enumerate(msgs)]
    c.flush()
    return c, qlog, addrs


def offset(addr: int) -> int:
    return addr & 0xFFFFFFFF


# --------------------------------------------------------------------------- round trip
def test_records_round_trip_in_order_with_head_window_and_tail(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(50)
    msgs.append(FakeMsg(b""))                         # empty body
    msgs.append(FakeMsg(os.urandom(300_000)))         # a large one
    _c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.close()

    _c2, log2 = new_log(qdir)
    head, tail_n, tail_bytes, stats = log2.recover(10, 1 << 40)
    assert len(head) == 10
    assert tail_n == len(msgs) - 10
    assert tail_bytes == sum(len(m.body) for m in msgs[10:])      # body bytes, as Queue counts them
    assert stats["records"] == stats["live"] == len(msgs)
    assert stats["truncated_bytes"] == 0
    assert content(head) == msg_content(msgs[:10])
    assert [r[0] for r in head] == addrs[:10]                      # same record addresses
    assert all(r[1] == 0 and r[2] == 0 and r[6] is False for r in head)  # flags, expires, delivered
    rest = read_whole_tail(log2)
    assert content(rest) == msg_content(msgs[10:])
    assert [r[0] for r in rest] == addrs[10:]
    assert log2.read_tail(10, 1 << 40) == []


def test_tail_records_larger_than_a_read_chunk(tmp_path):
    qdir = tmp_path / "q"
    big = segments.READ_CHUNK + 12345
    msgs = [FakeMsg(b"s0"), FakeMsg(os.urandom(big)), FakeMsg(b"s1"), FakeMsg(os.urandom(big)),
            FakeMsg(b"s2")]
    write_and_flush(qdir, msgs)
    _c, qlog = new_log(qdir)
    head, tail_n, _tb, _st = qlog.recover(1, 1 << 40)
    assert len(head) == 1 and tail_n == 4
    rest = []
    while True:
        recs = qlog.read_tail(2, 1 << 40)
        if not recs:
            break
        rest.extend(recs)
    assert content(head + rest) == msg_content(msgs)


def test_window_bytes_limits_the_head(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(20, size=100)
    write_and_flush(qdir, msgs)
    _c, qlog = new_log(qdir)
    head, tail_n, _tb, _st = qlog.recover(1000, 250)
    # the head stops once it holds window_bytes (it may pass it by the last record)
    assert 1 <= len(head) < 20
    assert len(head) + tail_n == 20
    assert content(head + read_whole_tail(qlog)) == msg_content(msgs)


def test_expires_at_and_flags_are_kept(tmp_path):
    qdir = tmp_path / "q"
    c, qlog = new_log(qdir)
    m = FakeMsg(b"x")
    qlog.append(m, False, expires_at=1_700_000_000_123)
    c.flush()
    _l, _c, recs, _s = recover_all(qdir)
    assert [(r[1], r[2]) for r in recs] == [(0, 1_700_000_000_123)]


# --------------------------------------------------------------------------- acks / delivered
def test_acked_records_are_not_recovered_and_delivered_marks_come_back(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(6)
    c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.ack(addrs[1])
    qlog.mark_delivered(addrs[2])
    qlog.mark_delivered(addrs[4])
    qlog.ack(addrs[4])                                # delivered, then acked: gone
    c.flush()

    _l, _c, recs, stats = recover_all(qdir)
    assert content(recs) == msg_content([msgs[0], msgs[2], msgs[3], msgs[5]])
    assert [r[6] for r in recs] == [False, True, False, False]
    assert stats["records"] == 6 and stats["live"] == 4


def test_acks_of_a_recovered_log_persist(tmp_path):
    """Acking a record of a recovered (closed) segment is written to its acks file too."""
    qdir = tmp_path / "q"
    msgs = make_msgs(5)
    write_and_flush(qdir, msgs)
    log2, c2, recs, _s = recover_all(qdir)
    log2.ack(recs[0][0])
    log2.mark_delivered(recs[1][0])
    c2.flush()
    _l, _c, recs3, _s = recover_all(qdir)
    assert content(recs3) == msg_content(msgs[1:])
    assert [r[6] for r in recs3] == [True, False, False, False]


def test_unflushed_records_are_not_on_disk(tmp_path):
    """Only flush() writes: a buffered record never reaches the file before it (no partial writes)."""
    qdir = tmp_path / "q"
    _c, qlog, _ = write_and_flush(qdir, make_msgs(2))
    qlog.append(FakeMsg(b"buffered"), False)
    _l, _c, recs, stats = recover_all(qdir)
    assert len(recs) == 2 and stats["truncated_bytes"] == 0


def test_unclean_recovery_marks_every_record_delivered_and_remembers_it(tmp_path):
    """After a crash nothing tells which records were delivered: all count as delivered, and this
    is remembered, so a later clean recovery still reports them delivered. Records appended after
    the recovery (a new segment) are not affected."""
    qdir = tmp_path / "q"
    msgs = make_msgs(4)
    write_and_flush(qdir, msgs)
    c, qlog = new_log(qdir)
    head, _n, _b, _s = qlog.recover(100, 1 << 40, True)
    assert [r[6] for r in head] == [True] * 4
    extra = FakeMsg(b"after")
    qlog.append(extra, False)
    c.flush()
    qlog.close()
    _l, _c, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content(msgs + [extra])
    assert [r[6] for r in recs] == [True] * 4 + [False]


def test_acks_written_after_an_unclean_recovery_count(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(4)
    write_and_flush(qdir, msgs)
    c, qlog = new_log(qdir)
    head, _n, _b, _s = qlog.recover(100, 1 << 40, True)
    qlog.ack(head[0][0])
    qlog.ack(head[2][0])
    c.flush()
    qlog.close()
    _l, _c, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content([msgs[1], msgs[3]])


# --------------------------------------------------------------------------- torn / corrupt .msgs
def _torn_truncate(path: str, last_off: int) -> int:
    size = os.path.getsize(path)
    cut = last_off + (size - last_off) // 2
    with open(path, "r+b") as f:
        f.truncate(cut)
    return cut - last_off


def _torn_garbage(path: str, _last_off: int) -> int:
    junk = b"\xde\xad\xbe\xef" * 9 + b"\x01"
    with open(path, "ab") as f:
        f.write(junk)
    return len(junk)


def _torn_zeros(path: str, _last_off: int) -> int:
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)                      # a preallocated, never written block
    return 4096


@pytest.mark.parametrize("damage", [_torn_truncate, _torn_garbage, _torn_zeros],
                         ids=["truncated-mid-record", "garbage", "zero-filled"])
def test_torn_tail_is_cut_and_the_log_keeps_working(tmp_path, damage):
    qdir = tmp_path / "q"
    msgs = make_msgs(8)
    _c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.close()
    path = seg_path(qdir, 1, "msgs")
    good_size = os.path.getsize(path)
    damage(path, offset(addrs[-1]))
    damaged_size = os.path.getsize(path)
    lost = 1 if damage is _torn_truncate else 0
    good_end = offset(addrs[-1]) if lost else good_size

    log2, c2, recs, stats = recover_all(qdir)
    assert content(recs) == msg_content(msgs[:len(msgs) - lost])
    assert stats["truncated_bytes"] == damaged_size - good_end
    assert os.path.getsize(path) == good_end                       # cut to the last good record

    # the log keeps working: a record appended after recovery is recovered next time
    extra = FakeMsg(b"after the crash", routing_key="after")
    log2.append(extra, False)
    c2.flush()
    log2.close()
    _l, _c, recs3, stats3 = recover_all(qdir)
    assert content(recs3) == msg_content(msgs[:len(msgs) - lost] + [extra])
    assert stats3["truncated_bytes"] == 0


def test_truncated_reports_exact_torn_bytes(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(3)
    _c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.close()
    path = seg_path(qdir, 1, "msgs")
    with open(path, "r+b") as f:
        f.truncate(offset(addrs[2]) + 5)            # 5 bytes of the last record's 8-byte frame header
    _l, _c, recs, stats = recover_all(qdir)
    assert len(recs) == 2
    assert stats["truncated_bytes"] == 5
    assert os.path.getsize(path) == offset(addrs[2])


def test_segment_torn_inside_magic_is_reset(tmp_path):
    """A segment file that never got its whole 8-byte magic holds nothing: recovery makes it valid."""
    qdir = tmp_path / "q"
    _c, qlog, _ = write_and_flush(qdir, make_msgs(1))
    qlog.close()
    path = seg_path(qdir, 1, "msgs")
    with open(path, "r+b") as f:
        f.truncate(5)
    _l, _c, recs, stats = recover_all(qdir)
    assert recs == [] and stats["truncated_bytes"] == 5


def test_flipped_byte_cuts_the_segment_from_the_corrupt_record_on(tmp_path, monkeypatch):
    """Documented behaviour: a record whose CRC fails ends its segment. Records before it come
    back; the corrupt record and every later record *of the same segment* are cut away (the
    file is truncated there), because after a bad frame the log cannot trust where the next
    record starts. Later segments are independent files and are recovered in full."""
    monkeypatch.setattr(segments, "SEGMENT_BYTES", 600)
    qdir = tmp_path / "q"
    msgs = make_msgs(12, size=100)
    _c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.close()
    seg1 = [i for i, a in enumerate(addrs) if a >> 32 == 1]
    assert len(seg1) >= 4 and max(a >> 32 for a in addrs) >= 2
    victim = seg1[len(seg1) // 2]
    path = seg_path(qdir, 1, "msgs")
    pos = offset(addrs[victim]) + 8 + 30                           # inside the payload
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))
    size_before = os.path.getsize(path)

    _l, _c, recs, stats = recover_all(qdir)
    kept = [i for i in range(len(msgs)) if i < victim or i > seg1[-1]]
    assert content(recs) == msg_content([msgs[i] for i in kept])
    assert stats["truncated_bytes"] == size_before - offset(addrs[victim])
    assert os.path.getsize(path) == offset(addrs[victim])


# --------------------------------------------------------------------------- damaged .acks
def test_acks_file_with_torn_odd_tail(tmp_path):
    """An acks file ending in a partial entry: complete entries count, and acks appended after
    recovery land on entry boundaries (the file is rewritten), so they count next time too."""
    qdir = tmp_path / "q"
    msgs = make_msgs(5)
    c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.ack(addrs[0])
    qlog.mark_delivered(addrs[1])
    c.flush()
    qlog.close()
    acks = seg_path(qdir, 1, "acks")
    with open(acks, "ab") as f:
        f.write(b"\x08\x00\x00")                    # 3 bytes of a torn entry
    assert os.path.getsize(acks) % 8 == 3

    log2, c2, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content(msgs[1:])
    assert [r[6] for r in recs] == [True, False, False, False]
    assert os.path.getsize(acks) % 8 == 0
    log2.ack(recs[1][0])                            # msgs[2]
    c2.flush()
    log2.close()

    _l, _c, recs3, _s = recover_all(qdir)
    assert content(recs3) == msg_content([msgs[1], msgs[3], msgs[4]])
    assert [r[6] for r in recs3] == [True, False, False]


def test_acks_file_with_zero_filled_tail(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(4)
    c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.ack(addrs[1])
    c.flush()
    qlog.close()
    acks = seg_path(qdir, 1, "acks")
    with open(acks, "ab") as f:
        f.write(b"\x00" * 24)                       # zero entries: the check word makes them invalid

    log2, c2, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content([msgs[0], msgs[2], msgs[3]])
    assert [r[6] for r in recs] == [False, False, False]
    log2.ack(recs[0][0])
    c2.flush()
    log2.close()
    _l, _c, recs3, _s = recover_all(qdir)
    assert content(recs3) == msg_content([msgs[2], msgs[3]])


def test_stale_ack_past_truncation_does_not_hit_a_later_record_at_that_offset(tmp_path):
    """The last record was acked (and marked delivered), then its bytes were torn away. Recovery
    drops the acks that point past the cut. If a *different* record is later written at that
    same offset of that segment, it must not inherit the stale ack (nor the delivered mark)."""
    qdir = tmp_path / "q"
    msgs = make_msgs(4)
    c, qlog, addrs = write_and_flush(qdir, msgs)
    qlog.mark_delivered(addrs[1])
    qlog.mark_delivered(addrs[3])
    qlog.ack(addrs[3])
    c.flush()
    qlog.close()
    path = seg_path(qdir, 1, "msgs")
    with open(path, "r+b") as f:
        f.truncate(offset(addrs[3]) + 11)

    _l, _c, recs, stats = recover_all(qdir)
    assert content(recs) == msg_content(msgs[:3])
    assert [r[6] for r in recs] == [False, True, False]            # valid marks survive the rewrite
    assert stats["truncated_bytes"] == 11
    entries = set()
    with open(seg_path(qdir, 1, "acks"), "rb") as f:
        data = f.read()
    for e, chk in struct.iter_unpack("<II", data):
        assert e ^ chk == 0xFFFFFFFF
        entries.add(e & 0x7FFFFFFF)
    assert offset(addrs[3]) not in entries                         # the stale entries are gone

    # a different record now occupies the old offset of msgs[3] (same first three records, so
    # the same offsets; built by a scratch log and copied in)
    other = FakeMsg(b"a different message at the same offset", routing_key="other")
    sdir = tmp_path / "scratch"
    _sc, slog, saddrs = write_and_flush(sdir, msgs[:3] + [other])
    slog.close()
    assert offset(saddrs[3]) == offset(addrs[3])
    with open(seg_path(sdir, 1, "msgs"), "rb") as f:
        f.seek(offset(saddrs[3]))
        rec_bytes = f.read()
    with open(path, "ab") as f:
        f.write(rec_bytes)

    _l, _c, recs2, _s = recover_all(qdir)
    assert content(recs2) == msg_content(msgs[:3] + [other])
    assert [r[6] for r in recs2] == [False, True, False, False]


# --------------------------------------------------------------------------- segments
def test_segments_rotate_and_fully_acked_ones_are_deleted(tmp_path, monkeypatch):
    monkeypatch.setattr(segments, "SEGMENT_BYTES", 1000)
    qdir = tmp_path / "q"
    msgs = make_msgs(38, size=150)
    c, qlog, addrs = write_and_flush(qdir, msgs)
    nums = sorted({a >> 32 for a in addrs})
    assert len(nums) >= 4
    assert nums == list(range(1, len(nums) + 1))
    assert [a >> 32 for a in addrs] == sorted(a >> 32 for a in addrs)   # in order
    for n in nums:
        assert os.path.getsize(seg_path(qdir, n, "msgs")) <= 1000 + 200  # closed once >= limit
    in_seg = {n: [i for i, a in enumerate(addrs) if a >> 32 == n] for n in nums}

    # ack all of segment 1 and part of segment 2
    for i in in_seg[1]:
        qlog.ack(addrs[i])
    qlog.ack(addrs[in_seg[2][0]])
    c.flush()
    assert not os.path.exists(seg_path(qdir, 1, "msgs"))
    assert not os.path.exists(seg_path(qdir, 1, "acks"))
    assert os.path.exists(seg_path(qdir, 2, "msgs"))

    # ack everything in the head segment: it stays (it is still open for appends)
    head = nums[-1]
    assert os.path.getsize(seg_path(qdir, head, "msgs")) < 1000      # not full yet
    for i in in_seg[head]:
        qlog.ack(addrs[i])
    c.flush()
    assert os.path.exists(seg_path(qdir, head, "msgs"))
    more = FakeMsg(b"appended to the head")
    a = qlog.append(more, False)
    assert a >> 32 == head
    c.flush()
    qlog.close()

    expect = [m for i, m in enumerate(msgs) if addrs[i] >> 32 not in (1, head) and i != in_seg[2][0]]
    _l, _c, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content(expect + [more])


def test_full_fully_acked_head_is_deleted_when_the_next_segment_opens(tmp_path, monkeypatch):
    monkeypatch.setattr(segments, "SEGMENT_BYTES", 300)
    qdir = tmp_path / "q"
    c, qlog = new_log(qdir)
    a1 = qlog.append(FakeMsg(b"x" * 400), False)                     # fills segment 1 at once
    c.flush()
    qlog.ack(a1)
    c.flush()
    assert os.path.exists(seg_path(qdir, 1, "msgs"))                # still the head
    a2 = qlog.append(FakeMsg(b"y"), False)
    assert a2 >> 32 == 2
    c.flush()
    assert not os.path.exists(seg_path(qdir, 1, "msgs"))
    assert not os.path.exists(seg_path(qdir, 1, "acks"))
    qlog.close()
    _l, _c, recs, _s = recover_all(qdir)
    assert [r[5] for r in recs] == [b"y"]


def test_recovery_deletes_segments_with_nothing_live(tmp_path, monkeypatch):
    monkeypatch.setattr(segments, "SEGMENT_BYTES", 500)
    qdir = tmp_path / "q"
    msgs = make_msgs(12, size=150)
    c, qlog, addrs = write_and_flush(qdir, msgs)
    last = addrs[-1] >> 32
    assert last >= 3
    for i, a in enumerate(addrs):
        if a >> 32 == last:
            qlog.ack(a)
    c.flush()
    qlog.close()
    assert os.path.exists(seg_path(qdir, last, "msgs"))   # the head was not deleted in-process

    log2, c2, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content([m for m, a in zip(msgs, addrs) if a >> 32 != last])
    assert not os.path.exists(seg_path(qdir, last, "msgs"))
    assert not os.path.exists(seg_path(qdir, last, "acks"))
    # numbering continues after the deleted segment: a new append never reuses its number
    a = log2.append(FakeMsg(b"new"), False)
    assert a >> 32 == last + 1
    c2.flush()


def test_orphan_acks_file_is_removed(tmp_path):
    """A crash between unlinking a segment's .msgs and its .acks leaves an orphan .acks."""
    qdir = tmp_path / "q"
    msgs = make_msgs(2)
    write_and_flush(qdir, msgs)
    with open(seg_path(qdir, 7, "acks"), "wb") as f:
        f.write(struct.pack("<II", 8, 8 ^ 0xFFFFFFFF))
    _l, _c, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content(msgs)
    assert not os.path.exists(seg_path(qdir, 7, "acks"))


def test_transient_records_are_not_recovered(tmp_path):
    qdir = tmp_path / "q"
    msgs = make_msgs(7)
    transient = {1, 2, 5}
    c, qlog, _addrs = write_and_flush(qdir, msgs, transient)
    assert c.writes == 4                              # only persistent records count as writes
    qlog.close()
    _l, _c, recs, stats = recover_all(qdir)
    assert content(recs) == msg_content([m for i, m in enumerate(msgs) if i not in transient])
    assert stats["transient_dropped"] == 3


def test_segment_of_only_transient_records_is_deleted_at_recovery(tmp_path):
    qdir = tmp_path / "q"
    _c, qlog, _ = write_and_flush(qdir, make_msgs(3), transient={0, 1, 2})
    qlog.close()
    _l, _c, recs, _s = recover_all(qdir)
    assert recs == []
    assert not os.path.exists(seg_path(qdir, 1, "msgs"))


def test_paged_tail_reads_back_in_order_and_skip_tail_acks_it(tmp_path):
    qdir = tmp_path / "q"
    c, qlog = new_log(qdir)
    first = make_msgs(3)
    for m in first:
        qlog.append(m, False)
    qlog.start_tail()
    tail = make_msgs(10)
    for i, m in enumerate(tail):
        qlog.append(m, i % 2 == 1)
    got = qlog.read_tail(4, 1 << 40)
    assert content(got) == msg_content(tail[:4])
    rest = read_whole_tail(qlog)
    assert content(rest) == msg_content(tail[4:])
    qlog.end_tail()
    c.flush()
    # purge of a paged tail acks its records
    qlog.start_tail()
    late = make_msgs(4)
    for m in late:
        qlog.append(m, False)
    qlog.skip_tail()
    c.flush()
    qlog.close()
    _l, _c, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content(first + [m for i, m in enumerate(tail) if i % 2 == 0])


def test_skip_tail_across_segments_drops_only_the_tail(tmp_path, monkeypatch):
    """Purge of a paged queue: every record from the tail cursor on goes (later segments are
    deleted outright), the records before the cursor stay, and the log keeps working."""
    monkeypatch.setattr(segments, "SEGMENT_BYTES", 700)
    qdir = tmp_path / "q"
    c, qlog = new_log(qdir)
    head_msgs = make_msgs(5, size=100)
    head_addrs = [qlog.append(m, False) for m in head_msgs]
    qlog.ack(head_addrs[0])
    qlog.start_tail()
    tail_addrs = [qlog.append(m, i % 3 == 0) for i, m in enumerate(make_msgs(20, size=100))]
    c.flush()
    tail_segs = {a >> 32 for a in tail_addrs} - {a >> 32 for a in head_addrs}
    assert len(tail_segs) >= 2
    qlog.skip_tail()
    c.flush()
    for n in tail_segs:
        assert not os.path.exists(seg_path(qdir, n, "msgs"))
    after = FakeMsg(b"after the purge")
    qlog.append(after, False)
    c.flush()
    qlog.close()
    _l, _c, recs, _s = recover_all(qdir)
    assert content(recs) == msg_content(head_msgs[1:] + [after])


def test_destroy_removes_the_directory(tmp_path):
    qdir = tmp_path / "q"
    c, qlog, _ = write_and_flush(qdir, make_msgs(3))
    qlog.destroy()
    c.flush()
    assert not os.path.exists(qdir)


# --------------------------------------------------------------------------- committer
def test_committer_without_loop_fsyncs_in_flush(tmp_path, monkeypatch):
    synced = []
    real = os.fdatasync

    def spy(fd):
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(commit_mod.os, "fdatasync", spy)
    c, qlog = new_log(tmp_path / "q")
    fired = []
    qlog.append(FakeMsg(b"p"), False)
    epoch = c.epoch
    c.when_durable(epoch, lambda: fired.append(epoch))
    assert fired == [] and c.durable < epoch
    assert not os.path.exists(seg_path(tmp_path / "q", 1, "msgs"))   # nothing written yet
    c.flush()
    assert fired == [epoch] and c.durable == epoch
    assert qlog.head.fd in synced
    # a transient record is written but does not start another fsync
    synced.clear()
    qlog.append(FakeMsg(b"t", persistent=False), True)
    c.flush()
    assert synced == [] and c.epoch == epoch + 1
    # an already durable epoch runs its callback at once
    c.when_durable(epoch, lambda: fired.append("now"))
    assert fired == [epoch, "now"]
    c.close()


# --------------------------------------------------------------------------- definitions
def new_defs(path) -> tuple[Committer, Definitions]:
    c = Committer()
    return c, Definitions(str(path), c)


def sample_defs(d: Definitions) -> None:
    d.put("vhost", ("/",))
    d.put("vhost", ("v2",))
    d.put("user", ("guest",), salt="00112233", hash="ab" * 32, tags=["administrator"])
    d.put("permission", ("guest", "/"), configure=".*", write=".*", read=".*")
    d.put("exchange", ("/", "x1"), type="direct", auto_delete=False, internal=False,
          args=encode_args({"alternate-exchange": "ae"}))
    d.put("exchange", ("/", "q1"), type="fanout", auto_delete=True, internal=False, args=encode_args({}))
    d.put("queue", ("/", "q1"), auto_delete=False,
          args=encode_args({"x-max-length": Typed("I", 10), "x-single-active-consumer": True}))
    d.put("queue", ("/", "q2"), auto_delete=True, args=encode_args({}))
    d.put("binding", ("/", "x1", "queue", "q1", "rk1", encode_args({})))
    d.put("binding", ("/", "x1", "queue", "q2", "rk2", encode_args({})))
    d.put("binding", ("/", "q1", "queue", "q2", "", encode_args({})))        # source exchange named q1
    d.put("binding", ("/", "x1", "exchange", "q1", "e2e", encode_args({"x-match": "all"})))


def test_definitions_put_delete_replay(tmp_path):
    path = tmp_path / "definitions.log"
    c, d = new_defs(path)
    assert d.load() is False                          # first boot: no log
    sample_defs(d)
    d.delete("vhost", ("v2",))
    d.put("permission", ("guest", "/"), configure="", write=".*", read=".*")    # overwrite
    d.delete("binding", ("/", "x1", "queue", "q2", "rk2", encode_args({})))
    d.delete("binding", ("/", "nope", "queue", "q2", "", encode_args({})))   # unknown: no-op
    assert c.writes > 0
    c.flush()
    d.close()

    _c2, d2 = new_defs(path)
    assert d2.load() is True
    assert d2.state == d.state
    assert ("v2",) not in d2.state["vhost"]
    assert d2.state["permission"][("guest", "/")]["configure"] == ""
    assert d2.state["user"][("guest",)]["tags"] == ["administrator"]
    args = decode_args(d2.state["queue"][("/", "q1")]["args"])
    assert {k: (v.tag, v.value) for k, v in args.items()} == {
        "x-max-length": ("I", 10), "x-single-active-consumer": ("t", True)}
    assert d2.state["exchange"][("/", "q1")]["auto_delete"] is True


def test_definitions_cascade_on_queue_and_exchange_delete(tmp_path):
    path = tmp_path / "definitions.log"
    c, d = new_defs(path)
    sample_defs(d)
    d.delete("queue", ("/", "q1"))
    # only the binding *to queue* q1 went; the one from exchange q1 and the e2e one to exchange q1 stay
    expect_after_q = {("/", "x1", "queue", "q2", "rk2", encode_args({})),
                      ("/", "q1", "queue", "q2", "", encode_args({})),
                      ("/", "x1", "exchange", "q1", "e2e", encode_args({"x-match": "all"}))}
    assert set(d.state["binding"]) == expect_after_q
    c.flush()
    d.close()
    _c2, d2 = new_defs(path)
    d2.load()
    assert set(d2.state["binding"]) == expect_after_q      # the log has no per-binding delete records

    d2.delete("exchange", ("/", "q1"))                     # source and destination of bindings
    expect_after_x = {("/", "x1", "queue", "q2", "rk2", encode_args({}))}
    assert set(d2.state["binding"]) == expect_after_x
    d2.close()
    _c3, d3 = new_defs(path)
    d3.load()
    assert set(d3.state["binding"]) == expect_after_x
    d3.delete("vhost", ("/",))
    assert all(not d3.state[k] for k in ("exchange", "queue", "binding", "permission"))
    d3.close()
    _c4, d4 = new_defs(path)
    d4.load()
    assert d4.state["vhost"] == {("v2",): {}}
    assert d4.state["user"]                                # users are not per-vhost


def test_definitions_torn_tail_is_cut_on_load(tmp_path):
    path = tmp_path / "definitions.log"
    _c, d = new_defs(path)
    d.put("vhost", ("/",))
    d.put("queue", ("/", "a"), auto_delete=False, args="")
    good = os.path.getsize(path)
    d.put("queue", ("/", "b"), auto_delete=False, args="")
    d.close()
    with open(path, "r+b") as f:
        f.truncate(good + (os.path.getsize(path) - good) // 2)
    _c2, d2 = new_defs(path)
    assert d2.load() is True
    assert set(d2.state["queue"]) == {("/", "a")}
    assert os.path.getsize(path) == good                   # compacted without the torn bytes
    # appends after the cut are replayed next time
    d2.put("queue", ("/", "c"), auto_delete=True, args="")
    d2.close()
    _c3, d3 = new_defs(path)
    d3.load()
    assert set(d3.state["queue"]) == {("/", "a"), ("/", "c")}


def test_definitions_zero_filled_tail_is_cut_on_load(tmp_path):
    path = tmp_path / "definitions.log"
    _c, d = new_defs(path)
    d.put("vhost", ("/",))
    d.put("queue", ("/", "a"), auto_delete=False, args="")
    d.close()
    good = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"\x00" * 512)                             # a preallocated block never written
    _c2, d2 = new_defs(path)
    assert d2.load() is True
    assert set(d2.state["queue"]) == {("/", "a")}
    assert os.path.getsize(path) == good


def test_definitions_compaction_rewrites_a_smaller_file(tmp_path):
    path = tmp_path / "definitions.log"
    _c, d = new_defs(path)
    d.put("vhost", ("/",))
    for i in range(200):
        d.put("queue", ("/", f"tmp{i}"), auto_delete=False, args="")
        d.put("binding", ("/", "amq.direct", "queue", f"tmp{i}", "k", encode_args({})))
        if i % 10:
            d.delete("queue", ("/", f"tmp{i}"))
    state = {k: dict(v) for k, v in d.state.items()}
    d.close()
    big = os.path.getsize(path)

    _c2, d2 = new_defs(path)
    d2.load()
    small = os.path.getsize(path)
    assert small < big / 3
    assert d2.state == state
    assert len(d2.state["queue"]) == 20 and len(d2.state["binding"]) == 20
    assert not os.path.exists(str(path) + ".tmp")
    # the compacted file replays to the same state, and is already compact
    d2.close()
    _c3, d3 = new_defs(path)
    d3.load()
    assert d3.state == state
    assert os.path.getsize(path) == small


def test_definitions_paused_while_replaying_appends_nothing(tmp_path):
    path = tmp_path / "definitions.log"
    c, d = new_defs(path)
    d.paused = True
    d.put("vhost", ("/",))
    d.delete("vhost", ("/",))
    assert c.writes == 0 and not os.path.exists(path)


def test_failed_write_is_retried_without_duplicating_bytes(tmp_path, monkeypatch):
    """Disk full half-way through a flush: the buffers are kept, nothing is confirmed, and the
    retry writes every record and ack exactly once."""
    c, qlog = new_log(tmp_path / "q")
    msgs = make_msgs(20, size=500)
    addrs = [qlog.append(m, False) for m in msgs]
    c.flush()
    for a in addrs[:5]:
        qlog.ack(a)
    more = [qlog.append(m, False) for m in make_msgs(10, size=700)]
    real = os.pwrite
    calls = {"n": 0}

    def failing_pwrite(fd, data, offset):
        calls["n"] += 1
        if calls["n"] == 1:
            real(fd, bytes(data[:len(data) // 2]), offset)     # half of it lands, then ENOSPC
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    durable_before = c.durable
    monkeypatch.setattr(segments.os, "pwrite", failing_pwrite)
    c.flush()
    assert c.write_error is not None
    assert c.durable == durable_before, "nothing may be confirmed while writes fail"
    monkeypatch.setattr(segments.os, "pwrite", real)
    c.flush()
    assert c.write_error is None
    assert c.durable > durable_before
    qlog.close()
    _log, _c, recs, stats = recover_all(tmp_path / "q")
    assert stats["records"] == 30 and stats["truncated_bytes"] == 0
    assert len(recs) == 15 + 10
    assert [r[5] for r in recs] == [m.body for m in msgs[5:]] + [m.body for m in make_msgs(10, size=700)]
    assert len(more) == 10
