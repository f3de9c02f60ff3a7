"""Message deduplication (rabbitmq-message-deduplication plugin / LavinMQ argument names).

A message's deduplication key is the value of its ``x-deduplication-header``
header (or of the header named by the entity's ``x-deduplication-header``
argument, LavinMQ's spelling). Without the header a message is never a duplicate.

* Exchange (type ``x-message-deduplication``, or any exchange with
  ``x-message-deduplication: true``): a cache of up to ``x-cache-size`` keys,
  each remembered for ``x-cache-ttl`` ms (or the message's ``x-cache-ttl``
  header; no TTL = until evicted). A duplicate is not routed.
* Queue (``x-message-deduplication: true``): a duplicate is not enqueued while a
  message with that key is in the queue (its key leaves the cache when the
  message leaves the queue); ``x-cache-size``/``x-cache-ttl`` bound it as well.
"""
from __future__ import annotations

import time
from collections import OrderedDict

from ..amqp.codec import Typed, encode_table, table_plain

DEFAULT_HEADER = "x-deduplication-header"


def dedup_key(v) -> bytes:
    """A header value as a cache key: its AMQP encoding (type and value)."""
    if not isinstance(v, Typed):
        return encode_table({"": v})
    return encode_table({"": v})


class DedupCache:
    __slots__ = ("size", "ttl", "header", "entries", "queue_mode", "by_id", "log")

    def __init__(self, size: int | None, ttl: int | None, header: str, queue_mode: bool):
        self.size = size
        self.ttl = ttl
        self.header = header
        self.entries: OrderedDict = OrderedDict()   # key -> expiry (epoch ms) or 0
        self.queue_mode = queue_mode
        self.by_id: dict = {}                       # queue mode: message id -> key
        self.log = None                             # DedupLog of a durable entity

    @classmethod
    def for_entity(cls, entity, args: dict) -> "DedupCache":
        size = table_plain(args.get("x-cache-size"))
        ttl = table_plain(args.get("x-cache-ttl"))
        header = table_plain(args.get("x-deduplication-header"))
        if isinstance(header, bytes):
            header = header.decode("utf-8", "replace")
        return cls(size if isinstance(size, int) and size > 0 else None,
                   ttl if isinstance(ttl, int) and ttl > 0 else None,
                   header if isinstance(header, str) and header else DEFAULT_HEADER,
                   entity.kind == "queue")

    def attach(self, store, kind: str, vhost: str, name: str) -> None:
        """Durable entity on a durable store: keep the cache in a log and reload it now."""
        if not store.durable:
            return
        self.log = store.open_dedup_log(kind, vhost, name)
        now = int(time.time() * 1000)
        for key, exp in self.log.load():
            if exp == 0 or exp > now:
                self.entries[key] = exp

    def key_of(self, msg) -> bytes | None:
        if not msg.flags & 0x2000:
            return None
        raw = msg.headers.get(self.header)
        return None if raw is None else dedup_key(raw)

    def duplicate(self, msg) -> bool:
        """Is ``msg`` a duplicate? If not, remember its key."""
        key = self.key_of(msg)
        if key is None:
            return False
        now = int(time.time() * 1000)
        entries = self.entries
        exp = entries.get(key)
        if exp is not None and (exp == 0 or exp > now):
            return True
        ttl = table_plain(msg.headers.get("x-cache-ttl"))
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            ttl = self.ttl
        exp = entries[key] = now + ttl if ttl else 0
        entries.move_to_end(key)
        if self.log is not None:
            self.log.add(key, exp)
        if self.queue_mode:
            self.by_id[msg.id] = key
        if self.size is not None:
            while len(entries) > self.size:
                old, _ = entries.popitem(last=False)
                if self.log is not None:
                    self.log.remove(old)
        return False

    def loaded(self, msg) -> None:
        """Queue mode: ``msg`` came back from the store (recovery, page-in) with a new id."""
        key = self.key_of(msg)
        if key is not None and key in self.entries:
            self.by_id[msg.id] = key

    def left_queue(self, msg) -> None:
        key = self.by_id.pop(msg.id, None) if self.by_id else None
        if key is not None and self.entries.pop(key, None) is not None and self.log is not None:
            self.log.remove(key)

    def destroy(self) -> None:
        """The entity was deleted: its cache (and its file) go."""
        self.entries.clear()
        self.by_id.clear()
        if self.log is not None:
            self.log.destroy()
            self.log = None
