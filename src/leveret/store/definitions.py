"""Durable definitions: vhosts, users, permissions, policies, operator policies, global parameters,
runtime parameters of plugin-like components (``parameter``: the shovel's), durable exchanges,
queues, bindings.

One append-only file, ``definitions.log``, of records framed like message
records (``u32 length | u32 crc32 | payload``); a payload is an AMQP field
table ``{"op": "put"|"del", "kind": ..., "key": [...], ...fields}``. Entity
arguments are kept as their exact AMQP table encoding (hex), so a recovered
queue compares argument types exactly as the original declaration did.

Changes are appended (``write(2)`` at once) and fsynced with the next group
commit, before any confirm that follows them. On start the log is replayed
(a torn tail is cut away), then rewritten as a compact snapshot (written to a
temporary file, fsynced, renamed over the old one).

Deleting a queue or exchange implies deleting the bindings that name it, so
the log needs no record per cascaded binding.
"""
from __future__ import annotations

import logging
import os

from ..amqp.codec import decode_table, decode_table_typed, encode_table
from .segments import REC, _crc32, _write_all

log = logging.getLogger("leveret.store")

KINDS = ("vhost", "user", "permission", "topic_permission", "exchange", "queue", "binding", "policy",
         "operator_policy", "global_parameter", "parameter")


def encode_args(args: dict) -> str:
    return encode_table(args or {}).hex()


def decode_args(s: str) -> dict:
    return decode_table_typed(bytes.fromhex(s), 0)[0] if s else {}


class Definitions:
    def __init__(self, path: str, commit):
        self.path = path
        self.commit = commit
        self.state: dict[str, dict] = {k: {} for k in KINDS}
        self.fd: int | None = None
        self.paused = False         # while recovery replays the log

    # ------------------------------------------------------------ changes

    def put(self, kind: str, key: tuple, **fields) -> None:
        if self.paused:
            return
        self.state[kind][key] = fields
        self._append({"op": "put", "kind": kind, "key": list(key), **fields})

    def delete(self, kind: str, key: tuple) -> None:
        if self.paused:
            return
        if self.state[kind].pop(key, None) is None and kind not in ("queue", "exchange", "vhost"):
            return
        self._cascade(kind, key)
        self._append({"op": "del", "kind": kind, "key": list(key)})

    def _cascade(self, kind: str, key: tuple) -> None:
        b = self.state["binding"]
        if kind in ("queue", "exchange"):
            vhost, name = key
            for k in [k for k in b if k[0] == vhost and (k[1] == name and kind == "exchange"
                                                         or (k[2] == kind and k[3] == name))]:
                del b[k]
        elif kind == "vhost":
            for kd in ("exchange", "queue", "binding"):
                for k in [k for k in self.state[kd] if k[0] == key[0]]:
                    del self.state[kd][k]
            for kd in ("permission", "topic_permission", "policy", "operator_policy", "parameter"):
                at = 1 if kd in ("permission", "topic_permission") else 0     # where the key holds the vhost
                for k in [k for k in self.state[kd] if k[at] == key[0]]:
                    del self.state[kd][k]
        elif kind == "user":
            for kd in ("permission", "topic_permission"):
                for k in [k for k in self.state[kd] if k[0] == key[0]]:
                    del self.state[kd][k]

    def _append(self, rec: dict) -> None:
        payload = encode_table(rec)
        fd = self._fd()
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, REC.pack(len(payload), _crc32(payload)) + payload)
        except OSError:
            os.ftruncate(fd, size)      # never leave half a record for later ones to follow
            raise
        self.commit.need_sync(self)

    def _fd(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self.fd

    def sync_fd(self) -> int:
        return self._fd()

    # ------------------------------------------------------------ start

    def load(self) -> bool:
        """Replay the log into :attr:`state`; returns False if there was no log (first boot)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return False
        pos = 0
        while pos + 8 <= len(data):
            ln, crc = REC.unpack_from(data, pos)
            end = pos + 8 + ln
            if ln < 4 or end > len(data) or _crc32(data[pos + 8:end]) != crc:
                break           # a torn or zero-filled tail (an empty payload has CRC 0)
            try:
                rec = decode_table(data[pos + 8:end], 0)[0]
                kind, key = rec.pop("kind"), tuple(rec.pop("key"))
                op = rec.pop("op")
            except Exception:
                log.error("definitions: undecodable record at offset %d; the rest is cut away", pos)
                break
            pos = end
            if op == "put":
                self.state[kind][key] = rec
            else:
                self.state[kind].pop(key, None)
                self._cascade(kind, key)
        if pos < len(data):
            log.warning("definitions: %d torn bytes at the end cut away", len(data) - pos)
        self.compact()
        return True

    def compact(self) -> None:
        """Rewrite the log as one record per live entity."""
        parts = []
        for kind in KINDS:
            for key, fields in self.state[kind].items():
                payload = encode_table({"op": "put", "kind": kind, "key": list(key), **fields})
                parts.append(REC.pack(len(payload), _crc32(payload)) + payload)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(parts))
            f.flush()
            os.fsync(f.fileno())
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
