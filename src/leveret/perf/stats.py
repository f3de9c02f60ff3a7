"""Latency histograms and the message-accounting arithmetic of ``leveret perf``.

Latencies are kept as log-scale buckets (about 2.2 % wide: bucket ``k`` holds
values near ``2 ** (k / 32)`` ns) in plain dicts, so that worker processes can
ship them to the main process cheaply and the main process can merge them.

Per-message accounting: every consumer keeps, for each producer, a bytearray
indexed by sequence number holding how often that message arrived (saturating
at 255). :func:`union_nonzero` ORs those of several consumers of one queue.
"""
from __future__ import annotations

import math

SCALE = 32.0


def bucket(lat_ns: int) -> int:
    return int(math.log2(lat_ns) * SCALE) if lat_ns > 1 else 0


def bucket_value_ns(key: int) -> float:
    return 2.0 ** (key / SCALE)


def merge(into: dict, other: dict) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def percentiles(hist: dict, qs=(0.5, 0.75, 0.95, 0.99, 0.999)) -> dict | None:
    """{'min', 'p50', ..., 'max'} in ms, or None for an empty histogram."""
    total = sum(hist.values())
    if not total:
        return None
    keys = sorted(hist)
    out = {"min": round(bucket_value_ns(keys[0]) / 1e6, 3)}
    names = {0.5: "p50", 0.75: "p75", 0.95: "p95", 0.99: "p99", 0.999: "p999"}
    i = 0
    acc = 0
    for q in qs:
        need = q * total
        while i < len(keys) and acc + hist[keys[i]] < need:
            acc += hist[keys[i]]
            i += 1
        k = keys[min(i, len(keys) - 1)]
        out[names.get(q, f"p{q * 100:g}")] = round(bucket_value_ns(k) / 1e6, 3)
    out["max"] = round(bucket_value_ns(keys[-1]) / 1e6, 3)
    return out


def union_nonzero(arrays: list) -> bytes:
    """Byte i is non-zero iff byte i is non-zero in any of ``arrays``."""
    if not arrays:
        return b""
    if len(arrays) == 1:
        return bytes(arrays[0])
    n = max(len(a) for a in arrays)
    acc = 0
    for a in arrays:
        acc |= int.from_bytes(a, "little")
    return acc.to_bytes(n, "little")


def nonzero(b, start: int = 0, stop: int | None = None) -> int:
    """How many bytes of ``b[start:stop]`` are non-zero (past the end counts as zero)."""
    part = b[start:stop]
    return len(part) - part.count(0)


class ConfirmTracker:
    """Publisher-confirm bookkeeping for one channel (delivery tags 1, 2, 3, ...).

    ``upto``: every tag <= upto is settled; ``extra``: settled tags above it;
    ``nacked``: tags the broker nacked (a subset of the settled ones).
    """

    __slots__ = ("upto", "extra", "nacked", "acked_count", "nacked_count")

    def __init__(self):
        self.upto = 0
        self.extra: set = set()
        self.nacked: set = set()
        self.acked_count = 0
        self.nacked_count = 0

    @property
    def settled(self) -> int:
        return self.upto + len(self.extra)

    def settle(self, tag: int, multiple: bool, nack: bool) -> int:
        """Record a basic.ack/basic.nack; return how many tags it newly settled."""
        if multiple:
            if tag <= self.upto:
                return 0
            fresh = [t for t in range(self.upto + 1, tag + 1) if t not in self.extra] \
                if self.extra else range(self.upto + 1, tag + 1)
            n = len(fresh)
            if nack:
                self.nacked.update(fresh)
            if self.extra:
                self.extra = {t for t in self.extra if t > tag}
            self.upto = tag
        else:
            if tag <= self.upto or tag in self.extra:
                return 0
            n = 1
            if nack:
                self.nacked.add(tag)
            if tag == self.upto + 1:
                self.upto = tag
            else:
                self.extra.add(tag)
        extra = self.extra
        while extra and self.upto + 1 in extra:
            self.upto += 1
            extra.discard(self.upto)
        if nack:
            self.nacked_count += n
        else:
            self.acked_count += n
        return n

    def unconfirmed(self, produced: int) -> list:
        """0-based sequence numbers that were published but not positively confirmed."""
        out = [t - 1 for t in range(self.upto + 1, produced + 1) if t not in self.extra]
        out.extend(t - 1 for t in self.nacked)
        return out
