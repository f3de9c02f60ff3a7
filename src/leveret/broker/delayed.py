"""Delayed messages: the ``x-delayed-message`` exchange type and the scheduler behind it.

Compatible with the rabbitmq-delayed-message-exchange plugin: an exchange of
type ``x-delayed-message`` routes as its ``x-delayed-type`` (direct, fanout,
topic, headers) once a message's ``x-delay`` header (milliseconds, an integer
> 0) has passed; a message without a positive ``x-delay`` is routed at once.

Unlike the plugin (which keeps pending messages in a Mnesia table on one
node), pending messages here are

* stored durably: with a data directory every held message is appended to a
  log of its exchange (the queue log format, the due time in the record's
  ``expires_at`` field); a persistent message held by a durable exchange is
  fsynced before its publisher confirm and survives a restart or a crash,
  others are flagged transient and dropped at recovery;
* cheap to hold: in memory only the record address is kept, 8 bytes per
  message in an ``array('Q')`` per (time bucket, exchange), so millions can
  wait without the broker growing much; without a data directory the
  messages themselves are kept;
* delivered as the plugin (3.x) delivers them: the content header byte for byte as
  published (``x-delay`` included); held wherever routing meets a delayed exchange (also
  through an exchange-to-exchange binding), and only once (a released message is not held by
  the next delayed exchange on its way); a held message routes nowhere at publish time, so a
  mandatory publish is returned (312 NO_ROUTE) and the alternate exchange gets a copy at once,
  as with the plugin;
* released on time: buckets are 4 ms wide and one timer (``call_later``)
  fires at the earliest; a due bucket is routed in publish order, in slices
  of ``Settings.delay_batch`` so a burst of due messages does not stall the event loop.
"""
from __future__ import annotations

import heapq
import logging
import re
import time
from array import array

from ..amqp.codec import table_plain
from ..amqp.errors import ConnectionError_, command_invalid, precondition_failed
from .deadletter import header_routes
from .message import Message

log = logging.getLogger("leveret")



MAX_DELAY = 4294967295         # the plugin's limit (Erlang's largest timer)
_INT_STR = re.compile(rb"[+-]?[0-9]+")


def x_delay(msg: Message) -> int:
    """The message's ``x-delay`` in ms as the plugin reads it, or 0 for "route now": an integer
    (any width), a float or double (truncated) or a string of an optional sign and digits; zero,
    negative, above :data:`MAX_DELAY`, a boolean or another type route at once. A string that is
    not an integer, or a decimal, crashes the plugin's channel: 541 ``INTERNAL_ERROR``."""
    if not msg.flags & 0x2000:
        return 0
    v = msg.headers.get("x-delay")
    if v is None:
        return 0
    tag, val = v.tag, v.value
    if tag in "bBsuIilL":
        d = val
    elif tag in "fd":
        d = int(val)
    elif tag in "Sx":
        raw = val if isinstance(val, (bytes, bytearray)) else str(val).encode()
        if _INT_STR.fullmatch(raw) is None:
            raise ConnectionError_(541, "INTERNAL_ERROR", 0, 0)
        d = int(raw)
    elif tag == "D":
        raise ConnectionError_(541, "INTERNAL_ERROR", 0, 0)
    else:
        return 0
    return d if 0 < d <= MAX_DELAY else 0


def make_delayed_type(types: dict):
    """The exchange factory registered as ``x-delayed-message``: validates ``x-delayed-type``
    and returns an exchange of that type marked delayed."""
    classes = {}
    for name, cls in types.items():
        classes[name] = type("Delayed" + cls.__name__, (cls,), {
            "__slots__": ("log",), "delayed": True, "type_name": "x-delayed-message",
            "routing_type": name})

    def factory(name, vhost, durable=False, auto_delete=False, internal=False, arguments=None):
        t = table_plain((arguments or {}).get("x-delayed-type"))
        if isinstance(t, bytes):
            t = t.decode("utf-8", "replace")
        if t == "x-delayed-message":
            raise precondition_failed("Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
                                      40, 10)
        if not isinstance(t, str):
            raise precondition_failed("Invalid argument, 'x-delayed-type' must be an existing exchange type",
                                      40, 10)
        cls = classes.get(t)
        if cls is None:
            raise command_invalid(f"unknown exchange type '{t}'", 40, 10)
        x = cls(name, vhost, durable=durable, auto_delete=auto_delete, internal=internal, arguments=arguments)
        x.log = None
        return x
    return factory


class DelayScheduler:
    def __init__(self, broker):
        self.broker = broker
        self.bucket_ms = broker.settings.delay_bucket_ms
        self.batch = broker.settings.delay_batch
        self.buckets: dict[int, dict] = {}     # bucket -> {exchange: array('Q') | list[Message]}
        self.heap: list[int] = []              # bucket numbers with pending messages
        self.pending: dict = {}                # exchange -> messages held
        self.timer = None
        self.timer_bucket = None
        self.started = False

    # ------------------------------------------------------------ holding

    def hold(self, x, msg: Message, delay: int) -> None:
        """Hold ``msg`` (routed to delayed exchange ``x``) for ``delay`` ms. A durable exchange
        keeps it across a restart whatever its delivery mode, as the plugin does."""
        due = int(time.time() * 1000) + delay
        store = self.broker.store
        if store.durable:
            qlog = x.log
            if qlog is None:
                qlog = x.log = store.open_exchange_log(x.vhost, x.name, x.durable)
            item = qlog.append(msg, not x.durable, due)
        else:
            item = msg.copy()       # the held copy gets its own id when it is released
        self._add(x, due, item)

    def _add(self, x, due: int, item) -> None:
        b = due // self.bucket_ms + 1          # released at the end of its bucket: never early
        slot = self.buckets.get(b)
        if slot is None:
            slot = self.buckets[b] = {}
            heapq.heappush(self.heap, b)
        items = slot.get(x)
        if items is None:
            items = slot[x] = array("Q") if isinstance(item, int) else []
        items.append(item)
        self.pending[x] = self.pending.get(x, 0) + 1
        if self.started and (self.timer_bucket is None or b < self.timer_bucket):
            self._arm()

    # ------------------------------------------------------------ releasing

    def start(self) -> None:
        self.started = True
        self._arm()

    def stop(self) -> None:
        self.started = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_bucket = None
        if not self.heap or self.broker.loop is None:
            return
        b = self.heap[0]
        self.timer_bucket = b
        delay = max(0.0, (b * self.bucket_ms - time.time() * 1000) / 1000)
        self.timer = self.broker.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.timer_bucket = None
        now_b = int(time.time() * 1000) // self.bucket_ms
        budget = self.batch
        heap, buckets = self.heap, self.buckets
        while heap and heap[0] <= now_b and budget > 0:
            b = heap[0]
            slot = buckets[b]
            for x in list(slot):
                items = slot[x]
                n = min(len(items), budget)
                self._release(x, items[:n])
                del items[:n]
                budget -= n
                if not items:
                    del slot[x]
                if budget <= 0:
                    break
            if not slot:
                heapq.heappop(heap)
                del buckets[b]
        if heap and heap[0] <= now_b:
            # more is due: carry on after the loop has served its sockets
            self.timer_bucket = heap[0]
            self.timer = self.broker.loop.call_soon(self._fire)
        else:
            self._arm()

    def _release(self, x, items) -> None:
        self.pending[x] = self.pending.get(x, 0) - len(items)
        if self.pending[x] <= 0:
            self.pending.pop(x, None)
        v = self.broker.vhosts.get(x.vhost)
        alive = v is not None and v.exchanges.get(x.name) is x
        qlog = x.log
        if not alive:
            return
        new_id = self.broker.new_message_id
        for item in items:
            if qlog is not None:
                rec = qlog.read(item)
                qlog.ack(item)
                if rec is None:
                    continue
                msg = Message.from_record(0, rec[2], rec[3], rec[4])
            else:
                msg = item
            msg.id = new_id()
            out: list = []
            v.route(x, msg.routing_key, msg, out, False)    # released: not held again on the way
            if msg.flags & 0x2000 and "CC" in msg.headers:
                for k in header_routes(msg.headers):
                    v.route(x, k, msg, out, False)
                out = list(dict.fromkeys(out))
            for q in out:
                if not q.deleted:
                    q.enqueue(msg)

    # ------------------------------------------------------------ lifecycle

    def exchange_deleted(self, x) -> None:
        """Pending messages of a deleted exchange are dropped (their log goes)."""
        self.pending.pop(x, None)
        for slot in self.buckets.values():
            slot.pop(x, None)
        if x.log is not None:
            x.log.destroy()
            self.broker.store.forget_log(x.log)
            x.log = None

    def recover(self, x) -> None:
        """Reload a durable delayed exchange's pending messages."""
        store = self.broker.store
        if not store.durable:
            return
        qlog = x.log = store.open_exchange_log(x.vhost, x.name, True)
        index: list = []
        qlog.recover(0, 0, False, index)
        for addr, due in index:
            self._add(x, due, addr)
        if index:
            log.info("delayed exchange '%s': %d pending messages recovered", x.name, len(index))
