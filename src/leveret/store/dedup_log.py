"""The durable state of a deduplication cache: one small append-only file per entity.

Records are framed like message records (``u32 length | u32 crc32 | payload``);
a payload is ``u8 op | u64 expires_at (epoch ms, 0 = never) | key`` where op 1
adds a key and op 0 removes it, and the key is the AMQP encoding of the header
value (so equal values of different types stay different, as in the plugin).
Appends are written at once and fsynced with the group commit; they count as
persistent writes, so a publisher confirm is sent only once the key it added is
on disk (a duplicate published after a crash is still caught). On load a torn
tail is ignored, expired and removed keys are dropped, and the file is
rewritten compactly.
"""
from __future__ import annotations

import os
import struct
import time

from .segments import REC, _crc32, _write_all

ENTRY = struct.Struct(">BQ")


class DedupLog:
    def __init__(self, commit, path: str):
        self.commit = commit
        self.path = path
        self.fd: int | None = None
        self.ack_fd = None          # (the committer's close_later closes ``fd`` and ``ack_fd``)

    def load(self) -> list[tuple[bytes, int]]:
        """The live keys in insertion order, as ``(key, expires_at)``; compacts the file."""
        live: dict[bytes, int] = {}
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        pos = 0
        while pos + 8 <= len(data):
            ln, crc = REC.unpack_from(data, pos)
            end = pos + 8 + ln
            if ln < ENTRY.size or end > len(data) or _crc32(data[pos + 8:end]) != crc:
                break
            op, exp = ENTRY.unpack_from(data, pos + 8)
            key = bytes(data[pos + 8 + ENTRY.size:end])
            live.pop(key, None)
            if op:
                live[key] = exp
            pos = end
        now = int(time.time() * 1000)
        out = [(k, e) for k, e in live.items() if e == 0 or e > now]
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(_record(1, k, e) for k, e in out))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return out

    def add(self, key: bytes, expires_at: int) -> None:
        self._append(_record(1, key, expires_at))

    def remove(self, key: bytes) -> None:
        self._append(_record(0, key, 0))

    def _append(self, rec: bytes) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self.commit.new_file(os.path.dirname(self.path))
        _write_all(self.fd, rec)
        self.commit.need_sync(self)

    def sync_fd(self) -> int:
        return self.fd

    def close(self) -> None:
        """At shutdown, after the store's final sync."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def destroy(self) -> None:
        """The entity was deleted: the file goes; its fd is closed once no fsync uses it."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self.fd is not None:
            self.commit.close_later(self)


def _record(op: int, key: bytes, exp: int) -> bytes:
    payload = ENTRY.pack(op, exp) + key
    return REC.pack(len(payload), _crc32(payload)) + payload
