"""Message deduplication (rabbitmq-message-deduplication plugin / LavinMQ argument names).

A message's deduplication key is the value of its ``x-deduplication-header``
header (or of the header named by the entity's ``x-deduplication-header``
argument, LavinMQ's spelling). Without the header a message is never a duplicate.

* Exchange (type ``x-message-deduplication``, or any exchange with
  ``x-message-deduplication: true``): a cache of up to ``x-cache-size`` keys,
  each remembered for ``x-cache-ttl`` ms (or the message's ``x-cache-ttl``
  header; no TTL = until evicted). A duplicate is not routed.
* Queue (``x-message-deduplication: true``): a duplicate is not enqueued while a
  message with that key is in the queue, ready or unacked (its key leaves the
  cache when the message leaves the queue; a requeue keeps it); the publisher
  gets a nack in confirm mode, as with the plugin.

Keys compare as Erlang values (:func:`dedup_key`). Leveret's addition: state
survives a restart. A durable exchange keeps its cache in a
:class:`~leveret.store.dedup_log.DedupLog`; a durable queue takes its keys back
from the persistent messages it recovers (such a queue keeps all its messages in
memory, like a priority queue, so every key is known).
"""
from __future__ import annotations

import time
from collections import OrderedDict

from ..amqp.codec import Typed, encode_table, table_plain
from ..amqp.errors import precondition_failed

DEFAULT_HEADER = "x-deduplication-header"


DEFAULT_SIZE = 128      # LavinMQ's default for the argument form

_INT = frozenset("bBsuIilL")


def dedup_key(v) -> bytes:
    """A header value as a cache key, equal when Erlang's values are equal: an integer of any
    width is one key, a longstr equals the same bytes as binary ('x'), a boolean is not an
    integer. Other types: their AMQP encoding."""
    if isinstance(v, Typed):
        tag, val = v.tag, v.value
        if tag in _INT:
            return b"i" + str(val).encode()
        if tag in "Sx":
            return b"s" + (val if isinstance(val, (bytes, bytearray)) else str(val).encode())
        if tag == "t":
            return b"t1" if val else b"t0"
    return b"o" + encode_table({"": v})


def _int_arg(v):
    """An integer argument as the plugin reads it: an integer, or a longstr of digits."""
    if not isinstance(v, Typed):
        return None
    if v.tag in _INT:
        return v.value
    if v.tag in "Sx":
        raw = v.value if isinstance(v.value, (bytes, bytearray)) else str(v.value).encode()
        return int(raw) if raw.isdigit() else None
    return None


def validate_exchange_args(args: dict, plugin_type: bool) -> None:
    """406 for arguments the plugin (type form) or LavinMQ (argument form) would refuse."""
    size = args.get("x-cache-size")
    n = _int_arg(size) if size is not None else None
    if (plugin_type and size is None) or (size is not None and (n is None or n <= 0)):
        raise precondition_failed("Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
                                  40, 10)
    ttl = args.get("x-cache-ttl")
    if ttl is not None:
        t = _int_arg(ttl)
        if t is None or t <= 0:
            raise precondition_failed("Invalid argument, 'x-cache-ttl' must be an integer greater than 0", 40, 10)
    pers = args.get("x-cache-persistence")
    if pers is not None and table_plain(pers) not in ("disk", "memory"):
        raise precondition_failed("Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
                                  40, 10)
    hdr = args.get(DEFAULT_HEADER)
    if hdr is not None and not (isinstance(hdr, Typed) and hdr.tag == "S"):
        raise precondition_failed(f"Invalid argument, '{DEFAULT_HEADER}' must be a string", 40, 10)


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
        queue = entity.kind == "queue"
        size = _int_arg(args.get("x-cache-size"))
        ttl = _int_arg(args.get("x-cache-ttl"))
        header = table_plain(args.get(DEFAULT_HEADER))
        if isinstance(header, bytes):
            header = header.decode("utf-8", "replace")
        if not (isinstance(size, int) and size > 0):
            size = None if queue else DEFAULT_SIZE     # a queue holds the keys of what it holds
        return cls(size, ttl if isinstance(ttl, int) and ttl > 0 else None,
                   header if isinstance(header, str) and header else DEFAULT_HEADER, queue)

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
        ttl = _int_arg(msg.headers.get("x-cache-ttl"))
        if ttl is None or ttl <= 0:
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
        """Queue mode: ``msg`` came back from the store (recovery) with a new id: its key is
        taken again (a durable queue's keys are those of the persistent messages it recovered)."""
        key = self.key_of(msg)
        if key is not None:
            self.entries[key] = 0
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
