"""Per-channel AMQP semantics (RabbitMQ's ``rabbit_channel``).

One :class:`Channel` per open channel of a connection. It owns:

* delivery tags and the unacked map (``OrderedDict`` tag → (message, queue,
  consumer)), ack/nack/reject with ``multiple``, recover, and requeue of
  everything unacked when the channel goes — in original queue order;
* its consumers and prefetch: per-consumer ``prefetch_count`` (``global=False``)
  and the channel-wide limit (``global=True``, RabbitMQ's meaning);
* publish: the message, its checks (``user_id``, ``expiration``), routing
  (sender-selected ``CC``/``BCC`` too), enqueueing, returns, and the hand-off to
  publisher flow control (:mod:`leveret.broker.flow`);
* the ``basic.*`` and ``channel.*`` methods, consumer acknowledgement timeouts;
* the "last declared queue" that an empty queue name refers to.

Publisher confirms, transactions, direct reply-to and the ``exchange.*`` /
``queue.*`` methods are mixed in from their own modules (see the package).

Every method handler is ``m_<class>_<method>``; :data:`HANDLERS` maps method
indexes to them, built once at import. Handlers raise
:class:`~leveret.amqp.errors.ChannelError` / ``ConnectionError_`` with
RabbitMQ's reply texts; the connection turns them into close frames.
"""
from __future__ import annotations

from collections import OrderedDict, deque

from ...amqp import spec
from ...amqp.codec import TYPE_NAMES, enc_shortstr, table_plain
from ...amqp.errors import (access_refused, not_allowed, not_found,
                           not_implemented, precondition_failed, resource_locked)
from ...amqp.frames import deliver_frames, get_ok_frames, return_frames
from ..deadletter import dead_letter
from ..delayed import x_delay
from ..message import Message
from ..queue import Consumer, Queue
from ..queue.arguments import consumer_priority
from ..queue.ttl import check_expiration
from ..vhost import gen_name

from .confirms import PublisherConfirms
from .entities import EntityMethods
from .reply_to import REPLY_PREFIX, REPLY_TO, DirectReplyTo
from .transactions import Transactions


class Channel(PublisherConfirms, Transactions, DirectReplyTo, EntityMethods):
    __slots__ = ("conn", "number", "vhost", "broker", "consumers", "unacked", "next_tag",
                 "prefetch", "global_prefetch", "unacked_count", "confirm", "publish_seq",
                 "confirm_upto", "tx", "tx_ops", "deliverable", "last_queue", "closed",
                 "_route_out", "_pub_method", "_pub_exrk", "confirm_sent", "commit", "confirm_wait",
                 "nacked", "tmarks", "reply_consumer", "reply_key", "flow_control", "flow_backlog", "burst_bytes")

    def __init__(self, conn, number: int):
        self.conn = conn
        self.number = number
        self.broker = conn.broker
        self.vhost = conn.vhost
        self.consumers: dict[str, Consumer] = {}
        self.unacked: OrderedDict = OrderedDict()
        self.next_tag = 0
        self.prefetch = 0
        self.global_prefetch = 0
        self.unacked_count = 0
        self.confirm = False
        self.publish_seq = 0
        self.confirm_upto = 0
        self.confirm_sent = 0
        self.tx = False
        self.tx_ops: list = []
        self.deliverable = conn.writable
        self.last_queue: str | None = None
        self.closed = False
        self._route_out: list = []
        self._pub_method = None
        self._pub_exrk = b""
        self.commit = self.broker.store.commit
        self.confirm_wait: list = []     # [epoch, seq]: confirms waiting for an fsync
        self.nacked: set = set()         # publish seqs to nack (refused by a queue's overflow rule)
        self.tmarks: deque = deque()     # (monotonic time, next_tag) samples for consumer timeouts
        self.reply_consumer: Consumer | None = None     # direct reply-to
        self.reply_key: str | None = None
        self.flow_control = flow = self.broker.flow
        self.flow_backlog = flow.backlog        # (copied: read on every publish)
        self.burst_bytes = flow.burst_bytes     # (copied: read on every delivery)

    # ------------------------------------------------------------ helpers

    def queue_name(self, name: str) -> str:
        if name:
            return name
        if self.last_queue is None:
            raise not_found("no previously declared queue")
        return self.last_queue

    def check_exclusive(self, q: Queue) -> None:
        if q.exclusive_owner is not None and q.exclusive_owner is not self.conn:
            raise resource_locked(
                f"cannot obtain exclusive access to locked queue '{q.name}' in vhost '{self.vhost.name}'. "
                "It could be originally declared on another connection or the exclusive property value "
                "does not match that of the original declaration.")

    def get_queue(self, name: str) -> Queue:
        q = self.vhost.queue(self.queue_name(name))
        self.check_exclusive(q)
        return q

    def set_deliverable(self) -> None:
        d = self.conn.writable and not self.closed
        if d != self.deliverable:
            self.deliverable = d
            if d:
                self.kick_queues()

    def kick_queues(self) -> None:
        # in consumer order (a set would go by memory address: delivery tags would vary by run)
        for q in dict.fromkeys(c.queue for c in self.consumers.values()):
            if q is not None:
                q.dispatch()

    # ------------------------------------------------------------ delivery (hot path)

    def deliver(self, c: Consumer, q: Queue, msg: Message, redelivered: bool) -> None:
        tag = self.next_tag = self.next_tag + 1
        if not c.no_ack:
            self.unacked[tag] = (msg, q, c)
            c.unacked += 1
            self.unacked_count += 1
        conn = self.conn
        out = conn._out
        if not out and conn.wakeup is not None:
            conn.wakeup()
        deliver_frames(self.number, c.ctag, tag, redelivered, msg.ex_rk, msg.header, msg.body,
                       conn.frame_max, out)
        pending = conn.out_bytes = conn.out_bytes + msg.size + 64
        if pending > self.burst_bytes and conn.flush_now is not None:
            # hand a burst to the socket now: if the peer is slow the transport pauses this
            # connection (writable=False) and dispatch stops, instead of buffering a whole queue
            conn.flush_now()

    # ------------------------------------------------------------ publish (hot path)

    def publish(self, method, header: bytes, body: bytes) -> None:
        x = self.vhost.exchanges.get(method.exchange)
        if x is None:
            raise not_found(f"no exchange '{method.exchange}' in vhost '{self.vhost.name}'",
                            60, 40)
        if x.internal:
            raise access_refused(f"cannot publish to internal exchange '{x.name}' in vhost "
                                 f"'{self.vhost.name}'", 60, 40)
        if method is self._pub_method:
            ex_rk = self._pub_exrk
        else:
            ex_rk = enc_shortstr(method.exchange) + enc_shortstr(method.routing_key)
            self._pub_method, self._pub_exrk = method, ex_rk
        msg = Message(self.broker.new_message_id(), method.exchange, method.routing_key, ex_rk, header, body)
        flags = msg.flags
        if flags & 0x3310:
            # reply-to, user-id, expiration, headers, delivery-mode: checked in RabbitMQ's order
            # (a message with none of these properties pays this one flag test)
            if flags & 0x0200 and msg.properties.reply_to == REPLY_TO:
                self._rewrite_reply_to(msg)
            if flags & 0x0010:
                self._check_user_id(msg)
            if flags & 0x0100:
                check_expiration(msg.properties.expiration)
            if flags & 0x2000 and b"CC" in header:     # (a substring test; decoded only on a hit)
                self._check_routing_headers(msg)
            if flags & 0x1000 and not msg.persistent:
                # delivery-mode other than 2: one byte read (the properties are decoded already
                # when a field precedes it); only 1 is valid besides 2
                p = msg._props
                dm = p.delivery_mode if p is not None else header[14]
                if dm != 1:
                    raise precondition_failed(f"invalid message: {{delivery_mode_unknown,{dm}}}", 60, 40)
        if self.confirm:
            self.publish_seq += 1
        if self.tx:
            # RabbitMQ routes a transactional publish now, to queue *names*, and delivers it at
            # commit to the queues that then have those names
            self.tx_ops.append((self._enqueue_names, (msg, self._route_names(x, msg), method.mandatory)))
            return
        out = self._route_out
        writes = self.commit.writes
        if self._enqueue(msg, self._route(x, msg, out), method.mandatory) and self.confirm:
            self.nacked.add(self.publish_seq)
        out.clear()
        if self.confirm:
            self._confirm_after_write(writes)

    def _check_user_id(self, msg: Message) -> None:
        uid = msg.properties.user_id
        if uid is not None and uid != self.conn.user.name:
            raise precondition_failed(f"user_id property set to '{uid}' but authenticated user was "
                                      f"'{self.conn.user.name}'", 60, 40)

    @staticmethod
    def _check_routing_headers(msg: Message) -> None:
        """``CC`` and ``BCC`` must be arrays (their longstr items are routing keys; other items
        are ignored): RabbitMQ's ``rabbit_basic:header_routes`` refuses the message otherwise."""
        headers = msg.properties.headers or {}
        for name in ("CC", "BCC"):
            v = headers.get(name)
            if v is not None and v.tag != "A":
                raise precondition_failed(f'invalid message: {{unacceptable_type_in_header,"{name}",'
                                          f'{TYPE_NAMES.get(v.tag, v.tag)}}}', 60, 40)

    def _route(self, x, msg: Message, out: list) -> list:
        """The queues ``msg`` goes to (each once)."""
        if x.special:
            if x.dedup is not None and x.dedup.duplicate(msg):
                # a duplicate routes nowhere (returned if mandatory; the alternate exchange gets it)
                if x.alternate is not None:
                    ae = self.vhost.exchanges.get(x.alternate)
                    if ae is not None:
                        self.vhost.route_special(ae, msg.routing_key, msg, out)
                return out
            if not (msg.flags & 0x2000 and b"CC" in msg.header):
                self.vhost.route_special(x, msg.routing_key, msg, out)
                return out
        if msg.flags & 0x2000 and b"CC" in msg.header:       # (a cheap pre-check: decoded next)
            return self._route_sender_selected(x, msg)
        self.vhost.route(x, msg.routing_key, msg, out)
        return out

    def _route_names(self, x, msg: Message) -> list:
        if x is self.vhost.default_exchange:
            # the default exchange routes to a name whether or not the queue exists (yet)
            names = [msg.routing_key]
            if msg.flags & 0x2000 and b"CC" in msg.header:
                names = [q.name for q in self._route_sender_selected(x, msg)] or names
            return names
        return [q.name for q in self._route(x, msg, [])]

    def _enqueue_names(self, msg: Message, names: list, mandatory: bool) -> tuple[bool, bool]:
        """A transactional publish at commit -> (reached a queue, refused by one)."""
        # the message enters its queues now: re-stamp its id so id order stays enqueue order
        msg.id = self.broker.new_message_id()
        queues = self.vhost.queues
        found = [queues[n] for n in names if n in queues]
        return bool(found), self._enqueue(msg, found, mandatory)

    def _enqueue(self, msg: Message, queues: list, mandatory: bool) -> bool:
        """Enqueue into ``queues``; True if a queue refused the message (overflow)."""
        if not queues:
            # a direct reply is delivered, yet routed to no queue: mandatory still returns it
            if msg.exchange == "" and msg.routing_key.startswith(REPLY_PREFIX):
                self._direct_reply(msg)
            if mandatory:
                self.send_return(312, "NO_ROUTE", msg)
            return False
        if len(queues) == 1:
            return self._enqueue_each(msg, queues)
        # dead-letters caused by this message (a full queue dropping its head) are published
        # after the message has reached all its queues, as RabbitMQ's queue processes do
        broker = self.broker
        broker.dl_deferred = deferred = []
        try:
            refused = self._enqueue_each(msg, queues)
        finally:
            broker.dl_deferred = None
        for q, msgs, reason in deferred:
            dead_letter(q, msgs, reason)
        return refused

    def _enqueue_each(self, msg: Message, queues: list) -> bool:
        refused = False
        backlog = self.flow_backlog
        for q in queues:
            if q.deleted:
                continue
            if q.enqueue(msg, self):
                refused = True
            elif q.tail or len(q.ready) > backlog:
                self.flow_control.backlog_seen(self.conn, q)    # publisher flow control
        return refused

    def _route_sender_selected(self, x, msg: Message) -> list:
        """Sender-selected distribution: the ``CC`` and ``BCC`` headers (arrays of longstr) are
        extra routing keys, matched with the routing key at every exchange on the way; ``BCC``
        is removed before delivery (RabbitMQ's rabbit_basic)."""
        props = msg.properties
        headers = props.headers or {}
        keys = [msg.routing_key]
        for name in ("CC", "BCC"):
            v = headers.get(name)
            if v is not None and v.tag == "A":
                keys.extend(table_plain(i) for i in v.value if i.tag == "S")
        if "BCC" in headers:
            del headers["BCC"]
            msg.set_properties(props)
            msg.bcc = [k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k for k in keys[1:]
                       if k not in keys[:1]]
        found: list = []
        if x.delayed and x_delay(msg):
            # held once for all its keys; released with its routing key and CC keys
            self.vhost.route_special(x, msg.routing_key, msg, found)
            return found
        keys = [k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k for k in keys]
        self.vhost.route_keys(x, list(dict.fromkeys(keys)), msg, found)
        return found

    def send_return(self, code: int, text: str, msg: Message) -> None:
        parts: list = []
        return_frames(self.number, code, text, msg.ex_rk, msg.header, msg.body, self.conn.frame_max, parts)
        self.conn.emit_many(parts)

    # ------------------------------------------------------------ ack / nack / reject

    def _collect(self, tag: int, multiple: bool, mid: int) -> list:
        """Take entries out of the unacked map: a list of ``(tag, (msg, queue, consumer))``."""
        unacked = self.unacked
        if multiple:
            if tag == 0:
                items = list(unacked.items())
                unacked.clear()
                return items
            if tag not in unacked:
                raise precondition_failed(f"unknown delivery tag {tag}", 60, mid)
            items = []
            while unacked:
                k = next(iter(unacked))
                if k > tag:
                    break
                items.append(unacked.popitem(last=False))
            return items
        entry = unacked.pop(tag, None)
        if entry is None:
            raise precondition_failed(f"unknown delivery tag {tag}", 60, mid)
        return [(tag, entry)]

    def ack(self, tag: int, multiple: bool) -> None:
        unacked = self.unacked
        if multiple and tag and not self.tx and not self.global_prefetch and tag in unacked:
            # Hot path (a consumer acking every N deliveries): one pass that frees the credit,
            # acks each message and remembers the queues to refill: what _collect + _settle do
            # for a positive multiple ack, without their intermediate lists
            popitem = unacked.popitem
            queues = []
            n = 0
            while True:
                k, (msg, q, c) = popitem(last=False)
                if c is not None:
                    c.unacked -= 1
                    if c.parked:
                        q.unpark(c)
                q.ack(msg)
                n += 1
                if q not in queues:
                    queues.append(q)
                if k == tag:
                    break
            self.unacked_count -= n
            for q in queues:
                if q.ready or q.tail:
                    q.dispatch()
            return
        items = self._collect(tag, multiple, 80)
        if self.tx:
            self.tx_ops.append((self._settle, (items, False, False)))
        else:
            self._settle(items, False, False)

    def nack(self, tag: int, multiple: bool, requeue: bool, mid: int) -> None:
        items = self._collect(tag, multiple, mid)
        if self.tx:
            self.tx_ops.append((self._settle, (items, True, requeue)))
        else:
            self._settle(items, True, requeue)

    def _release(self, items: list) -> dict:
        """Give back the prefetch credit held by ``items``; returns the queues involved (dict
        keys), in the order of their first item: the order they refill in, as in :meth:`ack`."""
        queues = {}
        for _, (_msg, q, c) in items:
            if c is not None:
                c.unacked -= 1
                if c.parked:
                    q.unpark(c)             # back into the queue's rotation
            queues[q] = None
        self.unacked_count -= len(items)
        return queues

    def _settle(self, items: list, negative: bool, requeue: bool) -> None:
        """Apply acks (or nacks/rejects) to the queues and free prefetch credit."""
        queues = self._release(items)
        if negative and requeue:
            self._requeue(items, True)
        else:
            for _, (msg, q, _c) in items:
                if negative and not q.deleted:
                    q.drop(msg)
                else:
                    # an ack; or a reject after the queue was deleted: RabbitMQ drops the
                    # message (no dead-lettering, the queue process is gone)
                    q.ack(msg)
        if self.global_prefetch:
            queues.update(dict.fromkeys(c.queue for c in self.consumers.values() if c.queue is not None))
        for q in queues:
            if q.ready or q.tail:
                q.dispatch()

    def _requeue(self, items: list, explicit: bool) -> None:
        by_q: dict = {}
        for _, (msg, q, _c) in items:
            by_q.setdefault(q, []).append(msg)
        for q, msgs in by_q.items():
            q.requeue(msgs, explicit)

    def requeue_all(self, explicit: bool = False) -> None:
        """Requeue every unacked delivery (``explicit``: basic.recover, else the channel went)."""
        items = list(self.unacked.items())
        self.unacked.clear()
        if items:
            self._release(items)
            self._requeue(items, explicit)

    # ------------------------------------------------------------ consumers

    def consumer_gone(self, c: Consumer, notify: bool) -> None:
        """The queue went away under a consumer: forget it, tell the client (basic.cancel, after
        the replies of this turn: see :meth:`BrokerConnection.notify_cancel`)."""
        if self.consumers.get(c.tag) is c:
            del self.consumers[c.tag]
            if notify and not self.closed and self.conn.capability("consumer_cancel_notify"):
                self.conn.notify_cancel(self, c.tag)

    def cancel_consumer(self, c: Consumer, dispatch: bool = True) -> None:
        self.consumers.pop(c.tag, None)
        q = c.queue
        if q is None:                       # the direct reply-to consumer
            self.reply_consumer = None
            self.broker.reply_channels.pop(self.reply_key, None)
            return
        q.remove_consumer(c, dispatch)
        if q.auto_delete and not q.consumers and q.had_consumer and not q.deleted:
            self.vhost.delete_queue(q)

    def close(self) -> None:
        """Release everything the channel holds (client close, error, connection end)."""
        if self.closed:
            return
        self.closed = True
        self.deliverable = False
        self.conn.confirm_channels.pop(self, None)
        if self.reply_key is not None:
            self.broker.reply_channels.pop(self.reply_key, None)
        self._discard_tx()
        # a queue takes back the channel's unacked messages before it serves its other consumers
        # (a single active consumer's successor gets the requeued messages first)
        later = []
        for c in list(self.consumers.values()):
            self.cancel_consumer(c, False)
            if c.queue is not None:
                later.append(c.queue)
        self.requeue_all()
        for q in later:
            if not q.deleted and q.consumers:
                q.dispatch()

    # ============================================================ method handlers

    def m_basic_qos(self, m):
        if m.prefetch_size:
            raise not_implemented(f"prefetch_size!=0 ({m.prefetch_size})", 60, 10)
        if m.global_:
            if not self.broker.settings.ignore_global_qos:
                self.global_prefetch = m.prefetch_count
        else:
            self.prefetch = m.prefetch_count
        self.conn.send_method(self.number, spec.BasicQosOk())
        if m.global_:
            self.kick_queues()

    def m_basic_consume(self, m):
        if m.consumer_tag and m.consumer_tag in self.consumers:
            raise not_allowed(f"attempt to reuse consumer tag '{m.consumer_tag}'", 60, 20)
        if m.queue == REPLY_TO:
            return self._consume_reply_to(m)
        q = self.get_queue(m.queue)
        tag = m.consumer_tag or gen_name("amq.ctag-")
        what = f"queue '{q.name}' in vhost '{self.vhost.name}'"
        prio = consumer_priority(m.arguments, what)
        q.check_consume(self)           # (quorum: 540 with a global prefetch limit)
        if q.exclusive_consume_refused(m.exclusive):
            raise access_refused(f"{what} in exclusive use", 60, 20)
        c = Consumer(tag, enc_shortstr(tag), self, q, m.no_ack, m.exclusive, self.prefetch, m.arguments, prio)
        self.consumers[tag] = c
        if not m.nowait:
            self.conn.send_method(self.number, spec.BasicConsumeOk(consumer_tag=tag))
        q.add_consumer(c)

    def check_consumer_timeout(self, now: float) -> None:
        """Close the channel (406) if an unacked delivery waited longer than its queue's consumer
        timeout. Delivery times are bounded by samples of ``next_tag`` taken by the broker's
        timer: a tag below a sample's ``next_tag`` was delivered before that sample's time."""
        marks = self.tmarks
        marks.append((now, self.next_tag))
        unacked = self.unacked
        default = self.broker.settings.consumer_timeout
        for tag, (_msg, q, _c) in unacked.items():
            while marks and marks[0][1] < tag:
                marks.popleft()
            if not marks:
                return
            age = now - marks[0][0]
            if age < 0.2:
                return
            limit = q.consumer_timeout if q.consumer_timeout is not None else default
            if limit is not None and age * 1000 > limit:
                self.conn.channel_error(self.number, precondition_failed(
                    f"delivery acknowledgement on channel {self.number} timed out. Timeout value used: "
                    f"{limit} ms. This timeout value can be configured, see consumers doc guide to learn more"))
                return

    def m_basic_cancel(self, m):
        c = self.consumers.get(m.consumer_tag)
        if c is not None:
            self.cancel_consumer(c)
        if not m.nowait:
            self.conn.send_method(self.number, spec.BasicCancelOk(consumer_tag=m.consumer_tag))

    def m_basic_get(self, m):
        q = self.get_queue(m.queue)
        q.check_get()
        got = q.get()
        if got is None:
            self.conn.send_method(self.number, spec.BasicGetEmpty())
            return
        msg, red = got
        tag = self.next_tag = self.next_tag + 1
        if m.no_ack:
            q.settled(msg)
        else:
            q.unacked_count += 1
            self.unacked[tag] = (msg, q, None)     # no consumer: basic.get bypasses prefetch
            self.unacked_count += 1
        parts: list = []
        get_ok_frames(self.number, tag, red, msg.ex_rk, q.message_count, msg.header, msg.body,
                      self.conn.frame_max, parts)
        self.conn.emit_many(parts)

    def m_basic_ack(self, m):
        self.ack(m.delivery_tag, m.multiple)

    def m_basic_nack(self, m):
        self.nack(m.delivery_tag, m.multiple, m.requeue, 120)

    def m_basic_reject(self, m):
        self.nack(m.delivery_tag, False, m.requeue, 90)

    def m_basic_recover(self, m, mid: int = 110):
        """Requeue every unacked delivery. As in RabbitMQ, recover-ok goes out before the
        redeliveries, and ``requeue=false`` is a 540 connection error naming the method that
        asked (recover or recover-async)."""
        if not m.requeue:
            raise not_implemented("requeue=false", 60, mid)
        if mid == 110:
            self.conn.send_method(self.number, spec.BasicRecoverOk())
        self.requeue_all(True)

    def m_basic_recover_async(self, m):
        self.m_basic_recover(m, 100)

    # ------------------------------------------------------------ channel

    def m_channel_flow(self, m):
        # RabbitMQ (3.x) refuses to pause deliveries with channel.flow: 540 active=false
        if not m.active:
            raise not_implemented("active=false", 20, 20)
        self.conn.send_method(self.number, spec.ChannelFlowOk(active=True))

    def m_channel_flow_ok(self, m):
        pass

    def m_access_request(self, m):
        self.conn.send_method(self.number, spec.AccessRequestOk(ticket=1))


def build_handlers() -> dict:
    h = {}
    for idx, cls in spec.METHODS.items():
        name = "m_" + cls.NAME.replace(".", "_").replace("-", "_")
        fn = getattr(Channel, name, None)
        if fn is not None:
            h[idx] = fn
    return h


HANDLERS = build_handlers()
