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

from ..amqp.codec import table_plain

DEFAULT_HEADER = "x-deduplication-header"


def _key(v):
    v = table_plain(v)
    if isinstance(v, (list, dict)):
        return repr(v)
    return v


class DedupCache:
    __slots__ = ("size", "ttl", "header", "entries", "queue_mode", "by_id")

    def __init__(self, size: int | None, ttl: int | None, header: str, queue_mode: bool):
        self.size = size
        self.ttl = ttl
        self.header = header
        self.entries: OrderedDict = OrderedDict()   # key -> expiry (epoch ms) or 0
        self.queue_mode = queue_mode
        self.by_id: dict = {}                       # queue mode: message id -> key

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

    def duplicate(self, msg) -> bool:
        """Is ``msg`` a duplicate? If not, remember its key."""
        if not msg.flags & 0x2000:
            return False
        headers = msg.headers
        raw = headers.get(self.header)
        if raw is None:
            return False
        key = _key(raw)
        now = int(time.time() * 1000)
        entries = self.entries
        exp = entries.get(key)
        if exp is not None and (exp == 0 or exp > now):
            return True
        ttl = table_plain(headers.get("x-cache-ttl"))
        if not isinstance(ttl, int) or ttl <= 0:
            ttl = self.ttl
        entries[key] = now + ttl if ttl else 0
        entries.move_to_end(key)
        if self.queue_mode:
            self.by_id[msg.id] = key
        if self.size is not None:
            while len(entries) > self.size:
                entries.popitem(last=False)
        return False

    def left_queue(self, msg) -> None:
        key = self.by_id.pop(msg.id, None) if self.by_id else None
        if key is not None:
            self.entries.pop(key, None)

    def close(self) -> None:
        self.entries.clear()
        self.by_id.clear()
