"""Resource alarms (memory high watermark, disk free limit) and memory-driven paging.

As RabbitMQ's ``vm_memory_monitor`` and ``rabbit_disk_monitor``:

* Memory is the process's resident set (``/proc/self/statm``, RabbitMQ's
  default ``rss`` strategy). The alarm is on while it is *above* the high
  watermark: a fraction of physical RAM (default 0.4) or an absolute size.
* Disk is the free space of the data directory's filesystem; the alarm is on
  while it is *below* ``disk_free_limit`` (default 50 MB = 50,000,000 bytes).
* Both are checked every second, and at once when a limit is changed.
* While any alarm is on, every connection carries the alarm text ("low on
  memory", "low on disk", "low on disk & memory"); a connection blocks itself
  when it next publishes (see :meth:`ProtocolConnection.set_alarm`).
* Paging: above ``Settings.paging_ratio`` (0.5) of the watermark, queues keep a
  small in-memory window (:meth:`FlowControl.set_paging`) and send everything
  else to disk; glibc is asked to give freed memory back (``malloc_trim``) so
  the resident set can fall again.
"""
from __future__ import annotations

import logging
import os
import re

_UNRESOLVED = object()


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere). Looked up lazily: ``ctypes`` costs start-up
    time, and ``ctypes.util.find_library`` runs ``ldconfig``; the running process's own symbols
    (``CDLL(None)``) include libc's."""
    try:
        import ctypes
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, ImportError):
        return None

log = logging.getLogger("leveret.alarms")

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


def parse_size(text) -> int:
    """``50MB`` (decimal), ``512MiB`` (binary), ``1000000`` — RabbitMQ's information units."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"invalid size {text!r} (examples: 50MB, 2GiB, 1000000)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_watermark(value) -> int:
    """The memory high watermark in bytes: a fraction of RAM (``0.4``, ``"0.4"``) or a size.
    A float above 1 (``vm_memory_high_watermark.relative = 1.5`` in rabbitmq.conf) is allowed,
    as RabbitMQ allows it."""
    if isinstance(value, float) or (isinstance(value, str) and re.fullmatch(r"\s*(0?\.[0-9]+|1\.0*)\s*", value)):
        if not 0 <= float(value) <= (float("inf") if isinstance(value, float) else 1):
            raise ValueError(f"invalid relative memory high watermark {value!r} (0..1)")
        return int(float(value) * total_memory())
    return parse_size(value)


def parse_disk_limit(value) -> int:
    """The disk free limit in bytes: a size, or a float, a multiple of RAM (RabbitMQ's
    ``disk_free_limit.relative``, ``{mem_relative, F}``)."""
    if isinstance(value, float):
        if value < 0:
            raise ValueError(f"invalid relative disk free limit {value!r}")
        return int(value * total_memory())
    return parse_size(value)


def total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_memory() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def alarm_text(alarms) -> str | None:
    if "disk" in alarms and "memory" in alarms:
        return "low on disk & memory"
    if "disk" in alarms:
        return "low on disk"
    if "memory" in alarms:
        return "low on memory"
    return None


class ResourceMonitor:
    def __init__(self, broker):
        self.broker = broker
        s = broker.settings
        self.memory_limit = 0
        self.set_memory_high_watermark(s.memory_high_watermark, check=False)
        self.disk_free_limit = parse_disk_limit(s.disk_free_limit)
        self.data_dir = s.data_dir
        self.paging_ratio = s.paging_ratio
        self.alarms: set[str] = set()
        self.paging = False
        self.rss = 0
        self.disk_free = None
        self._trim = _UNRESOLVED      # libc's malloc_trim, looked up when first needed

    # ------------------------------------------------------------ limits (rabbitmqctl set_*)

    def set_memory_high_watermark(self, value, check: bool = True) -> None:
        """``0.4`` (fraction of RAM) or an absolute size (``"512MB"``, ``2**30``)."""
        self.memory_limit = parse_watermark(value)
        if check:
            self.check()

    def set_disk_free_limit(self, value, check: bool = True) -> None:
        self.disk_free_limit = parse_disk_limit(value)
        if check:
            self.check()

    # ------------------------------------------------------------ the periodic check

    def check(self) -> None:
        rss = self.rss = resident_memory()
        paging = rss > self.paging_ratio * self.memory_limit
        if paging and self._trim is _UNRESOLVED:
            self._trim = _malloc_trim()
        if paging and self._trim is not None:
            self._trim(0)
            rss = self.rss = resident_memory()
            paging = rss > self.paging_ratio * self.memory_limit
        if paging != self.paging:
            self.paging = paging
            self.broker.flow.set_paging(paging)
            log.info("memory %d bytes: queues %s", rss,
                     "page messages to disk" if paging else "keep their usual in-memory window")
        alarms = set()
        if rss > self.memory_limit:
            alarms.add("memory")
        if self.data_dir:
            try:
                st = os.statvfs(self.data_dir)
                self.disk_free = st.f_bavail * st.f_frsize
                if self.disk_free < self.disk_free_limit:
                    alarms.add("disk")
            except OSError as e:
                log.error("cannot check free disk space of %s: %s", self.data_dir, e)
        if alarms != self.alarms:
            for a in alarms - self.alarms:
                log.warning("%s resource limit alarm set. Publishers will be blocked "
                            "(memory %d, limit %d; disk free %s, limit %d)", a, rss, self.memory_limit,
                            self.disk_free, self.disk_free_limit)
            for a in self.alarms - alarms:
                log.warning("%s resource limit alarm cleared", a)
            self.alarms = alarms
            self.broker.set_alarm(alarm_text(alarms))
