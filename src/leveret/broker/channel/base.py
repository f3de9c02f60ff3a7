"""Per-channel AMQP semantics (RabbitMQ's ``rabbit_channel``).

One :class:`Channel` per open channel of a connection. It owns:

* delivery tags and the unacked map (``OrderedDict`` tag → (message, queue,
  consumer)), ack/nack/reject with ``multiple``, recover, and requeue of
  everything unacked when the channel goes — in original queue order;
* its consumers and prefetch: per-consumer ``prefetch_count`` (``global=False``)
  and the channel-wide limit (``global=True``, RabbitMQ's meaning), with the
  rules of RabbitMQ's ``rabbit_limiter`` (see :meth:`Channel.global_credit`);
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

from .access import AccessChecks
from .confirms import PublisherConfirms
from .entities import EntityMethods
from .reply_to import REPLY_PREFIX, REPLY_TO, DirectReplyTo
from .transactions import Transactions


class Channel(AccessChecks, PublisherConfirms, Transactions, DirectReplyTo, EntityMethods):
    __slots__ = ("conn", "number", "vhost", "broker", "consumers", "unacked", "next_tag",
                 "prefetch", "global_prefetch", "volume", "suspended", "confirm", "publish_seq",
                 "confirm_upto", "tx", "tx_ops", "deliverable", "last_queue", "closed",
                 "_route_out", "_pub_method", "_pub_exrk", "confirm_sent", "commit", "confirm_wait",
                 "nacked", "tmarks", "reply_consumer", "reply_key", "flow_control", "flow_backlog", "burst_bytes",
                 "access", "_allowed", "_auth_gen", "_pub_gen", "_pub_x", "_pub_base", "stat_publish",
                 "stat_deliver_noack", "stat_get", "stat_get_noack", "stat_get_empty", "stat_redeliver",
                 "stat_return", "stat_drop", "stat_negative", "stat_nacks")

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
        self.volume = 0                  # the channel-wide window's count (rabbit_limiter's volume)
        self.suspended: dict = {}        # queues the channel-wide window held back (ordered set)
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
        self.access = self.broker.access
        self._allowed: set = set()       # checks passed, while access generation _auth_gen lasts
        self._auth_gen = -1
        self._pub_gen = -1               # access generation the cached publish was checked in
        self._pub_x = None               # ... and the exchange it went to
        # statistics (read by the sampler, :mod:`leveret.broker.stats`): the publishes since
        # ``_pub_base`` went to ``_pub_x``, whose ``stat_in`` gets them when the exchange changes
        # (so an exchange's publish_in costs the publish no counter); deliveries with an ack are
        # ``next_tag`` minus the rest, acks are derived (:attr:`stat_ack`)
        self._pub_base = 0
        self.stat_publish = 0
        self.stat_deliver_noack = self.stat_get = self.stat_get_noack = self.stat_get_empty = 0
        self.stat_redeliver = 0
        self.stat_return = self.stat_drop = 0       # unroutable: returned (mandatory) / dropped
        self.stat_negative = 0                      # deliveries nacked or rejected (requeued or not)
        self.stat_nacks = 0                         # publishes nacked (the rest confirmed)

    # ------------------------------------------------------------ helpers

    @property
    def stat_deliver(self) -> int:
        """Deliveries to consumers that need an ack."""
        return self.next_tag - self.stat_deliver_noack - self.stat_get - self.stat_get_noack

    @property
    def stat_ack(self) -> int:
        """Acks: ack-mode deliveries and gets neither outstanding nor nacked/rejected."""
        return self.stat_deliver + self.stat_get - len(self.unacked) - self.stat_negative

    @property
    def stat_confirm(self) -> int:
        return self.confirm_sent - self.stat_nacks

    def pub_x_flush(self) -> None:
        """Credit the exchange published to since the last switch with those publishes."""
        x = self._pub_x
        if x is not None:
            x.stat_in += self.stat_publish - self._pub_base
        self._pub_base = self.stat_publish

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
        """The queue of basic.get / basic.consume / queue.purge: the name expanded, then read
        permission, then existence and exclusivity -- RabbitMQ's order."""
        name = self.queue_name(name)
        self.check_access("queue", name, "read")
        q = self.vhost.queue(name)
        self.check_exclusive(q)
        return q

    def set_deliverable(self) -> None:
        d = self.conn.writable and not self.closed
        if d != self.deliverable:
            self.deliverable = d
            if d:
                # the socket drained: the consumers it blocked rejoin (RabbitMQ's notify_sent),
                # except where the channel-wide window still holds the channel back
                for q in self.consumer_queues():
                    if q not in self.suspended:
                        self._unblock(q)
                    q.dispatch()

    def consumer_queues(self) -> list:
        """The queues this channel consumes from, each once, in consume order."""
        return list(dict.fromkeys(c.queue for c in self.consumers.values() if c.queue is not None))

    def _unblock(self, q: Queue) -> None:
        """RabbitMQ's ``unblock`` of this channel at ``q``: its parked consumers that have room in
        their own window rejoin the rotation at its end, in the order they were parked (whether
        the channel may deliver is asked again when their turn comes)."""
        back = [c for c in q.consumers if c.parked and c.channel is self and not c.full()]
        if len(back) > 1:
            back.sort(key=_parked_order)
        for c in back:
            q.unpark(c)

    def _window_reopened(self, q: Queue, c: Consumer) -> None:
        """``c``'s own window was full and has room again: a classic queue unblocks the channel's
        consumers (``subtract_acks``); a quorum queue puts back only ``c`` (rabbit_fifo)."""
        if q.UNPARK_ONE:
            if c.parked:
                q.unpark(c)
        else:
            self._unblock(q)

    # ------------------------------------------------------------ the channel-wide window (global qos)

    def global_credit(self, c: Consumer) -> bool:
        """May ``c`` take a message under the channel-wide window (``basic.qos global=true``)?
        As RabbitMQ's limiter: it counts the channel's ack-required deliveries (``volume``);
        once it is full, the queue that asked is *suspended* for this channel -- all the
        channel's consumers there are blocked -- until acks bring the volume under the limit
        again, when the suspended queues are resumed (:meth:`_resume`). It is asked for no-ack
        consumers too. Quorum queues do not take part (RabbitMQ limits classic queues only)."""
        q = c.queue
        if not q.GLOBAL_QOS:
            return True
        suspended = self.suspended
        if q in suspended:
            return False
        if self.volume >= self.global_prefetch:
            suspended[q] = None
            return False
        return True

    def _limiter_ack(self, n: int) -> bool:
        """``n`` consumer deliveries were settled: the window's volume drops (never from 0,
        possibly below 0: rabbit_limiter's arithmetic). True if the window was full and is not
        any more: the caller then resumes the suspended queues (:meth:`_resume`) -- *after* the
        queues acted on the settlement, while the lower volume already counts for them (in
        RabbitMQ the limiter takes the ack before a queue asks it again, and its resume
        reaches the queues after the settlement did)."""
        v = self.volume
        self.volume = v - n if v else 0
        return v >= self.global_prefetch > self.volume

    def _resume(self) -> None:
        """The window has room again: each suspended queue takes back the channel's consumers
        that have credit, and delivers (in the order the queues were suspended)."""
        suspended = self.suspended
        if not suspended:
            return
        self.suspended = {}
        if not self.deliverable:
            return
        for q in suspended:
            if not q.deleted:
                self._unblock(q)
                if q.ready or q.tail:
                    q.dispatch()

    def _set_global_prefetch(self, n: int) -> None:
        """``basic.qos global=true`` (``n`` > 0) and the unlimiting done by ``global=true, 0`` and
        by any ``global=false`` qos (RabbitMQ's ``limit_prefetch`` / ``unlimit_prefetch``)."""
        old = self.global_prefetch
        if n:
            if not old:
                # (RabbitMQ starts from the unacked count, basic.get deliveries included)
                self.volume = len(self.unacked)
            self.global_prefetch = n
            if old and self.volume >= old and self.volume < n:
                self._resume()
        elif old:
            self.global_prefetch = 0
            self.volume = 0
            self._resume()

    # ------------------------------------------------------------ delivery (hot path)

    def deliver(self, c: Consumer, q: Queue, msg: Message, redelivered: bool) -> None:
        tag = self.next_tag = self.next_tag + 1
        if not c.no_ack:
            self.unacked[tag] = (msg, q, c)
            c.unacked += 1
            self.volume += 1
        else:
            self.stat_deliver_noack += 1
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
        """A complete basic.publish, checked in the order of RabbitMQ's
        ``rabbit_channel:handle_method(#'basic.publish'{})`` -- the first failing check is the
        error the client sees:

        1. ``immediate=true``: 540 NOT_IMPLEMENTED, a connection error (``check_publish`` of
           the connection, called before this);
        2. the message size against ``max_message_size``: 406 (the connection refuses it at
           the content header already);
        3. write permission on the exchange: 403 (RabbitMQ's ``check_write_permitted``,
           before the exchange lookup, so that a user without it learns nothing about which
           exchanges exist);
        4. the exchange exists: 404;
        5. the exchange is not internal: 403;
        6. topic write permission on the routing key (``check_write_permitted_on_topic``);
        7. the content properties decode: 541 INTERNAL_ERROR, a connection error
           (``ensure_content_decoded``: :meth:`~leveret.amqp.connection.ProtocolConnection.check_content`);
        8. ``reply-to`` ``amq.rabbitmq.reply-to`` without a direct reply-to consumer: 406;
        9. ``user-id`` is the connection's user: 406;
        10. ``expiration`` is valid: 406;
        11. ``CC`` / ``BCC`` headers are arrays, then ``delivery-mode`` is 1 or 2: 406
            "invalid message" (``rabbit_basic:message_no_id``);

        then it is routed (a transactional publish only to queue names, delivered at commit).

        A repeat of the last publish (the same method object, checked in this access
        generation, to the same exchange) has passed the permission checks already."""
        fresh = method is not self._pub_method or self._pub_gen != self.access.generation
        if fresh:
            self.check_access("exchange", method.exchange, "write")
        x = self.vhost.exchanges.get(method.exchange)
        if x is None:
            raise not_found(f"no exchange '{method.exchange}' in vhost '{self.vhost.name}'",
                            60, 40)
        if x.internal:
            raise access_refused(f"cannot publish to internal exchange '{x.name}' in vhost "
                                 f"'{self.vhost.name}'", 60, 40)
        recheck = fresh or x is not self._pub_x
        if recheck:
            self.check_topic_access(x, method.routing_key, "write")
        conn = self.conn
        if header[12:] != conn.props_ok:
            conn.check_content(header)
        if recheck:
            ex_rk = enc_shortstr(method.exchange) + enc_shortstr(method.routing_key)
            self._pub_method, self._pub_exrk = method, ex_rk
            self.pub_x_flush()
            self._pub_gen, self._pub_x = self.access.generation, x
        else:
            ex_rk = self._pub_exrk
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
        self.stat_publish += 1
        if self.confirm:
            self.publish_seq += 1
        if self.tx:
            # RabbitMQ routes a transactional publish now, to queue *names*, and delivers it at
            # commit to the queues that then have those names
            self.tx_ops.append((self._enqueue_names, (msg, self._route_names(x, msg), method.mandatory, x)))
            return
        out = self._route_out
        writes = self.commit.writes
        if self._enqueue(msg, self._route(x, msg, out), method.mandatory, x) and self.confirm:
            self.nacked.add(self.publish_seq)
        out.clear()
        if self.confirm:
            self._confirm_after_write(writes)

    def _check_user_id(self, msg: Message) -> None:
        uid = msg.properties.user_id
        if uid is not None:
            self.access.check_user_id(self.conn.user, uid)

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
            # (its CC and BCC keys too: a queue declared before the commit gets the message)
            if msg.flags & 0x2000 and b"CC" in msg.header:
                return self._sender_keys(msg)
            return [msg.routing_key]
        return [q.name for q in self._route(x, msg, [])]

    def _enqueue_names(self, msg: Message, names: list, mandatory: bool, x) -> tuple[bool, bool]:
        """A transactional publish at commit -> (reached a queue, refused by one)."""
        # the message enters its queues now: re-stamp its id so id order stays enqueue order
        msg.id = self.broker.new_message_id()
        queues = self.vhost.queues
        found = [queues[n] for n in names if n in queues]
        return bool(found), self._enqueue(msg, found, mandatory, x)

    def _enqueue(self, msg: Message, queues: list, mandatory: bool, x) -> bool:
        """Enqueue into ``queues`` (routed from exchange ``x``); True if a queue refused the
        message (overflow)."""
        if not queues:
            x.stat_unroutable += 1
            # a direct reply is delivered, yet routed to no queue: mandatory still returns it
            if msg.exchange == "" and msg.routing_key.startswith(REPLY_PREFIX):
                self._direct_reply(msg)
            if mandatory:
                self.stat_return += 1
                self.send_return(312, "NO_ROUTE", msg)
            else:
                self.stat_drop += 1
            return False
        if len(queues) == 1:
            return self._enqueue_each(msg, queues)
        x.stat_out_extra += len(queues) - 1
        if self.broker.dl_deferred is not None:
            return self._enqueue_each(msg, queues)
        # dead-letters caused by this message (a full queue dropping its head) are published
        # after the message has reached all its queues, as RabbitMQ's queue processes do
        deferred = self.defer_dead_letters()
        try:
            refused = self._enqueue_each(msg, queues)
        finally:
            self.publish_dead_letters(deferred)
        return refused

    def defer_dead_letters(self) -> list | None:
        """Hold the dead-letters the queues produce from now on (None if they are held already):
        what one channel operation sends to several queues reaches them all before any of them
        dead-letters because of it, as RabbitMQ's queue processes handle their mail."""
        broker = self.broker
        if broker.dl_deferred is not None:
            return None
        broker.dl_deferred = deferred = []
        return deferred

    def publish_dead_letters(self, deferred: list | None) -> None:
        """Release what :meth:`defer_dead_letters` held (nothing if it held nothing itself)."""
        if deferred is None:
            return
        self.broker.dl_deferred = None
        for q, msgs, reason in deferred:
            dead_letter(q, msgs, reason)

    def _enqueue_each(self, msg: Message, queues: list) -> bool:
        refused = False
        backlog = self.flow_backlog
        for q in queues:
            if q.deleted:
                continue
            q.stat_in += 1
            if q.enqueue(msg, self):
                refused = True
            elif q.tail or len(q.ready) > backlog:
                self.flow_control.backlog_seen(self.conn, q)    # publisher flow control
        return refused

    def _route_sender_selected(self, x, msg: Message) -> list:
        """Sender-selected distribution: the ``CC`` and ``BCC`` headers (arrays of longstr) are
        extra routing keys, matched with the routing key at every exchange on the way; ``BCC``
        is removed before delivery (RabbitMQ's rabbit_basic)."""
        keys = self._sender_keys(msg)
        found: list = []
        if x.delayed and x_delay(msg):
            # held once for all its keys; released with its routing key and CC keys
            self.vhost.route_special(x, msg.routing_key, msg, found)
            return found
        self.vhost.route_keys(x, keys, msg, found)
        return found

    def _sender_keys(self, msg: Message) -> list[str]:
        """The routing key and the ``CC`` and ``BCC`` keys of ``msg``, once each (``BCC`` is
        taken out of its headers)."""
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
        keys = [k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k for k in keys]
        return list(dict.fromkeys(keys))

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
        if not multiple and not self.tx:
            # Hot path (a consumer acking each delivery): _collect + _settle for one entry
            entry = unacked.pop(tag, None)
            if entry is not None:
                msg, q, c = entry
                q.ack(msg)
                reopened = False
                if c is not None:
                    if self.global_prefetch:
                        reopened = self._limiter_ack(1)
                    full = c.unacked >= c.prefetch > 0
                    c.unacked -= 1
                    if full and self.consumers.get(c.tag) is c:
                        self._window_reopened(q, c)     # (_credit_back)
                if q.ready or q.tail:
                    q.dispatch()
                if reopened:
                    self._resume()
                return
        elif multiple and tag and not self.tx and tag in unacked:
            # Hot path (a consumer acking every N deliveries): one pass that acks each message
            # and counts them per (queue, consumer), then what _settle does per batch -- without
            # its intermediate lists in the common case of one consumer
            popitem = unacked.popitem
            k, (msg, q0, c0) = popitem(last=False)
            k0 = k
            q0.ack(msg)
            n = 1
            more = None
            while k != tag:
                k, (msg, q, c) = popitem(last=False)
                q.ack(msg)
                if q is q0 and c is c0 and c is not None:
                    n += 1
                else:
                    if more is None:
                        more = {}
                    key = (q, c if c is not None else k)
                    more[key] = more.get(key, 0) + 1
            if more is None:
                reopened = c0 is not None and self.global_prefetch and self._limiter_ack(n)
                self._credit_back(q0, c0, n)
                if q0.ready or q0.tail:
                    q0.dispatch()
                if reopened:
                    self._resume()
                return
            more[(q0, c0 if c0 is not None else k0)] = n
            batches = sorted(more.items(), key=_batch_order)
            counted = sum(n for (_, c), n in batches if isinstance(c, Consumer))
            reopened = counted and self.global_prefetch and self._limiter_ack(counted)
            for (q, c), n in batches:
                if isinstance(c, Consumer):
                    self._credit_back(q, c, n)
                if q.ready or q.tail:
                    q.dispatch()
            if reopened:
                self._resume()
            return
        items = self._collect(tag, multiple, 80)
        if self.tx:
            self.tx_ops.append((self._settle, (items, False, False)))
        else:
            self._settle(items, False, False)

    def nack(self, tag: int, multiple: bool, requeue: bool, mid: int) -> None:
        items = self._collect(tag, multiple, mid)
        self.stat_negative += len(items)
        if self.tx:
            self.tx_ops.append((self._settle, (items, True, requeue)))
        else:
            self._settle(items, True, requeue)

    def _credit_back(self, q: Queue, c: Consumer | None, n: int) -> None:
        """``n`` of ``c``'s deliveries from ``q`` were settled: its window opens by ``n``. A
        consumer whose window was full unblocks (:meth:`_window_reopened`; RabbitMQ's
        ``subtract_acks`` / ``ack_from_queue``; not for a cancelled consumer, whose credit
        RabbitMQ has forgotten)."""
        if c is None:
            return
        full = c.unacked >= c.prefetch > 0
        c.unacked -= n
        if full and self.consumers.get(c.tag) is c:
            self._window_reopened(q, c)

    def _settle(self, items: list, negative: bool, requeue: bool) -> None:
        """Apply acks (or nacks/rejects) as RabbitMQ's channel does: one batch per (queue,
        consumer tag) in :func:`_batch_order`, each giving credit back and then acking,
        requeueing or dropping its messages, and letting the queue deliver before the next
        batch; the channel-wide window counts the settlement first and resumes the queues it
        held back after them (:meth:`_limiter_ack`); the dead-letters the settlement causes
        (rejects, overflow after a requeue) are published once every batch has reached its
        queue (:meth:`defer_dead_letters`)."""
        if not items:
            return
        batches = _batches(items)
        counted = sum(len(batch) for _, c, batch in batches if c is not None)
        reopened = counted and self.global_prefetch and self._limiter_ack(counted)
        deferred = self.defer_dead_letters()    # (every batch reaches its queue first)
        try:
            self._settle_batches(batches, negative, requeue)
            if reopened:
                self._resume()
        finally:
            self.publish_dead_letters(deferred)

    def _settle_batches(self, batches: list, negative: bool, requeue: bool) -> None:
        for q, c, batch in batches:
            self._credit_back(q, c, len(batch))
            if negative and requeue:
                q.requeue([entry[0] for _, entry in batch], True, c)  # (the queue delivers)
                continue
            if negative and q.max_priority is not None and len(batch) > 1:
                # a priority queue goes through a batch level by level, highest first (RabbitMQ's
                # rabbit_priority_queue:ackfold): the order its dead-letters are published in
                top = q.max_priority
                batch = sorted(batch, key=lambda e: -min(e[1][0].priority, top))
            for _, (msg, _q, _c) in batch:
                if negative and not q.deleted:
                    q.drop(msg)
                else:
                    # an ack; or a reject after the queue was deleted: RabbitMQ drops the
                    # message (no dead-lettering, the queue process is gone)
                    q.ack(msg)
            if q.ready or q.tail:
                q.dispatch()

    def requeue_all(self) -> None:
        """The channel went: every unacked delivery goes back to its queue, one batch per queue
        (RabbitMQ's queue takes back all the channel's messages when the channel is down). A
        quorum queue gets them consumer by consumer, in bytewise consumer-tag order (a basic.get
        delivery's tag is its delivery tag in decimal), each consumer's in delivery order: the
        order rabbit_fifo returns them in, which is the order it serves them again."""
        items = list(self.unacked.items())
        self.unacked.clear()
        if not items:
            return
        by_q: dict = {}
        for item in items:
            _, (msg, q, c) = item
            if c is not None:
                c.unacked -= 1
            by_q.setdefault(q, []).append(item)
        for q, qitems in by_q.items():
            if len(qitems) > 1 and q.RETURNS_BY_TAG:
                qitems.sort(key=_returned_order)
            q.requeue([e[0] for _, e in qitems], False)

    # ------------------------------------------------------------ consumers

    def consumer_gone(self, c: Consumer, notify: bool) -> None:
        """The queue went away under a consumer: forget it, tell the client (basic.cancel, after
        the replies of this turn: see :meth:`BrokerConnection.notify_cancel`)."""
        if self.consumers.get(c.tag) is c:
            del self.consumers[c.tag]
            self.suspended.pop(c.queue, None)
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
        if q in self.suspended and all(x.queue is not q for x in self.consumers.values()):
            del self.suspended[q]           # RabbitMQ forgets the limiter state with the last one
        if q.auto_delete and not q.consumers and q.had_consumer and not q.deleted:
            self.vhost.delete_queue(q)

    def close(self) -> None:
        """Release everything the channel holds (client close, error, connection end)."""
        if self.closed:
            return
        self.closed = True
        self.deliverable = False
        self.pub_x_flush()
        self.broker.stats.retire(self)
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
        """``global=false`` sets the prefetch of the consumers created from now on *and* lifts
        the channel-wide window (RabbitMQ's ``unlimit_prefetch``); ``global=true`` sets (or,
        with 0, lifts) the channel-wide window. Deliveries it lets through follow qos-ok."""
        if m.prefetch_size:
            raise not_implemented(f"prefetch_size!=0 ({m.prefetch_size})", 60, 10)
        self.conn.send_method(self.number, spec.BasicQosOk())
        if m.global_:
            if not self.broker.settings.ignore_global_qos:
                self._set_global_prefetch(m.prefetch_count)
        else:
            self.prefetch = m.prefetch_count
            self._set_global_prefetch(0)

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
        # The messages the get makes due at the head are dead-lettered after the get-ok (or
        # get-empty) has its delivery tag: in RabbitMQ the channel waits for the queue's reply
        # and only then takes the dead-letter target's deliveries.
        deferred = self.defer_dead_letters()
        try:
            self._get(q, m.no_ack)
        finally:
            self.publish_dead_letters(deferred)

    def _get(self, q, no_ack: bool) -> None:
        got = q.get(no_ack)
        if got is None:
            q.stat_get_empty += 1
            self.stat_get_empty += 1
            self.conn.send_method(self.number, spec.BasicGetEmpty())
            return
        msg, red = got
        if red:
            q.stat_redeliver += 1
            self.stat_redeliver += 1
        tag = self.next_tag = self.next_tag + 1
        if no_ack:
            q.stat_get_noack += 1
            self.stat_get_noack += 1
            q.settled(msg)
        else:
            q.stat_get += 1
            self.stat_get += 1
            q.unacked_count += 1
            self.unacked[tag] = (msg, q, None)     # no consumer: basic.get bypasses prefetch
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
        """Requeue every unacked delivery (as nack/reject batches do, see :meth:`_settle`). As
        in RabbitMQ, recover-ok goes out before the redeliveries, and ``requeue=false`` is a
        540 connection error naming the method that asked (recover or recover-async)."""
        if not m.requeue:
            raise not_implemented("requeue=false", 60, mid)
        if mid == 110:
            self.conn.send_method(self.number, spec.BasicRecoverOk())
        items = list(self.unacked.items())
        self.unacked.clear()
        if items:
            self.stat_negative += len(items)
            self._settle(items, True, True)

    def m_basic_recover_async(self, m):
        self.m_basic_recover(m, 100)

    # ------------------------------------------------------------ channel

    def m_channel_flow(self, m):
        # RabbitMQ (3.x) refuses to pause deliveries with channel.flow: 540 active=false
        if not m.active:
            raise not_implemented("active=false", 20, 20)
        self.conn.send_method(self.number, spec.ChannelFlowOk(active=True))

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


def _batch_order(entry) -> tuple:
    """RabbitMQ settles per ``{QueueName, Tag}`` in Erlang term order: queues by name (bytewise),
    then basic.get deliveries (their tag is the delivery tag, an integer: each alone, in tag
    order), then consumers by tag (bytewise)."""
    (q, c) = entry[0]
    name = q.name.encode("utf-8", "surrogateescape")
    if isinstance(c, Consumer):
        return name, 1, 0, c.tag.encode("utf-8", "surrogateescape")
    return name, 0, c, b""


def _parked_order(c: Consumer) -> int:
    return c.parked


def _returned_order(item) -> tuple:
    tag, (_, _, c) = item
    ctag = c.tag if c is not None else str(tag)
    return ctag.encode("utf-8", "surrogateescape"), tag


def _batches(items: list) -> list:
    """``items`` (``(tag, (msg, queue, consumer))`` in tag order) as ``(queue, consumer or None,
    items)`` batches in RabbitMQ's settle order (:func:`_batch_order`)."""
    _, (_, q0, c0) = items[0]
    if c0 is not None and all(e[1] is q0 and e[2] is c0 for _, e in items):
        return [(q0, c0, items)]
    groups: dict = {}
    for item in items:
        tag, (_, q, c) = item
        groups.setdefault((q, c if c is not None else tag), []).append(item)
    return [(q, c if isinstance(c, Consumer) else None, batch)
            for (q, c), batch in sorted(groups.items(), key=_batch_order)]
