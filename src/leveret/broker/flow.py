"""Flow control: one object per broker that owns every threshold and every held publisher.

Three mechanisms keep a fast peer from making the broker buffer without bound
(``docs/architecture.md``, "Scheduling and flow control", has the measurements):

* **Publisher flow control** (RabbitMQ's credit flow, in spirit). When a
  publish leaves a queue with more than ``backlog`` ready messages (or a
  paged-out tail) and the queue is being drained (it delivered since the last
  check), the publishing connection is *held*: it is not read until the queue
  is below ``resume_below`` ready messages, or for at most ``max_pause``
  seconds. Only connections without consumers are held, so a connection's own
  acks are never held back; a queue nobody drains never holds publishers (it
  grows, as in RabbitMQ). The queue side is one flag (``Queue.flow_held``),
  checked where messages leave the ready list.
* **Delivery bursts**: a channel hands its deliveries to the socket once
  ``burst_bytes`` are pending in one loop turn, so a slow peer's transport
  pauses it (``BrokerConnection.set_writable``) before a whole queue is
  buffered. The socket's write-buffer marks are the I/O layer's settings.
* **The memory window**: how many messages (and bytes) a long queue keeps in
  memory before paging the rest to disk; the resource monitor switches it to
  the small paging window under memory pressure (:meth:`set_paging`).

A held connection is told through ``conn.set_flow_held(bool)``; the I/O layer
stops and resumes reading. Nothing here touches a socket.
"""
from __future__ import annotations

import logging

log = logging.getLogger("leveret.flow")


class FlowControl:
    def __init__(self, broker):
        s = broker.settings
        self.broker = broker
        self.backlog = s.flow_backlog
        self.resume_below = s.flow_resume
        self.max_pause = s.flow_max_pause
        self.burst_bytes = s.burst_bytes
        self.normal_window = (s.ram_msgs, s.ram_bytes)
        self.paging_window = (s.paging_ram_msgs, s.paging_ram_bytes)
        self.window = self.normal_window
        self.held: dict = {}            # queue -> connections held for its backlog
        self.timers: dict = {}          # held connection -> its max_pause timer

    # ------------------------------------------------------------ publisher flow control

    def backlog_seen(self, conn, q) -> None:
        """A publish on ``conn`` left ``q`` with a backlog: hold ``conn`` if ``q`` is being
        drained and holding ``conn`` cannot hold back its own acks."""
        delivered = q.stat_deliver + q.stat_deliver_noack
        progressing = delivered != q.flow_mark
        q.flow_mark = delivered
        if progressing and q.consumers and conn not in self.timers and not conn.has_consumers():
            self.hold(conn, q)

    def hold(self, conn, q) -> None:
        self.held.setdefault(q, []).append(conn)
        q.flow_held = True
        self.timers[conn] = self.broker.call_later(self.max_pause, lambda: self.resume(conn))
        conn.set_flow_held(True)

    def release(self, q) -> None:
        """``q`` drained below the resume mark (or was purged, deleted, lost its consumers)."""
        q.flow_held = False
        for conn in self.held.pop(q, ()):
            self.resume(conn)

    def resume(self, conn) -> None:
        t = self.timers.pop(conn, None)
        if t is not None:
            t.cancel()
            conn.set_flow_held(False)

    def forget(self, conn) -> None:
        """``conn`` is closing: drop its timer (the held lists forget it when their queue drains)."""
        t = self.timers.pop(conn, None)
        if t is not None:
            t.cancel()

    def is_held(self, conn) -> bool:
        return conn in self.timers

    # ------------------------------------------------------------ the memory window

    def set_paging(self, paging: bool) -> None:
        """Memory pressure: long queues keep the small window in memory (or the normal one)."""
        window = self.paging_window if paging else self.normal_window
        if window == self.window:
            return
        self.window = window
        for v in self.broker.vhosts.values():
            for q in v.queues.values():
                q.set_window(window)
