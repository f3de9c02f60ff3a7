"""Per-channel AMQP semantics (RabbitMQ's ``rabbit_channel``).

One :class:`Channel` per open channel of a connection. It owns:

* delivery tags and the unacked map (``OrderedDict`` tag → (message, queue,
  consumer)), ack/nack/reject with ``multiple``, recover, and requeue of
  everything unacked when the channel goes — in original queue order;
* its consumers and prefetch: per-consumer ``prefetch_count`` (``global=False``)
  and the channel-wide limit (``global=True``, RabbitMQ's meaning);
* publisher confirms (sequence numbers; acks coalesced into one
  ``multiple=True`` frame per flush) and transactions (publishes and acks held
  until ``tx.commit``);
* the "last declared queue" that an empty queue name refers to.

Every method handler is ``m_<class>_<method>``; :data:`HANDLERS` maps method
indexes to them, built once at import. Handlers raise
:class:`~leveret.amqp.errors.ChannelError` / ``ConnectionError_`` with
RabbitMQ's reply texts; the connection turns them into close frames.
"""
from __future__ import annotations

import re
from collections import OrderedDict, deque

from ..amqp import spec
from ..amqp.codec import TYPE_NAMES, enc_shortstr, table_plain
from ..amqp.errors import (ConnectionError_, access_refused, command_invalid,
                           not_allowed, not_found, not_implemented, precondition_failed,
                           resource_locked)
from ..amqp.frames import ack_frame, deliver_frames, get_ok_frames, return_frames
from .deadletter import dead_letter
from .delayed import x_delay
from .exchanges import TYPES
from .message import Message
from .queue import Consumer, Queue
from .queue_args import check_queue_args, consumer_priority
from .vhost import assert_args_equivalent, fmt_bool, gen_name

QUEUE_TYPES = ("classic", "quorum")
FLOW_BACKLOG = 2000    # ready messages above which a draining queue slows its publishers
BURST_BYTES = 256 * 1024   # deliveries buffered in one loop turn before they go to the socket
REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = REPLY_TO + "."


class Channel:
    __slots__ = ("conn", "number", "vhost", "broker", "consumers", "unacked", "next_tag",
                 "prefetch", "global_prefetch", "unacked_count", "confirm", "publish_seq",
                 "confirm_upto", "tx", "tx_ops", "flow", "deliverable", "last_queue", "closed",
                 "_route_out", "_pub_method", "_pub_exrk", "confirm_sent", "commit", "confirm_wait",
                 "nacked", "tmarks", "reply_consumer", "reply_key")

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
        self.flow = True
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
        d = self.flow and self.conn.writable and not self.closed
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
        if pending > BURST_BYTES and conn.flush_now is not None:
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
        if msg.flags & 0x0310:
            if msg.flags & 0x0010:
                self._check_user_id(msg)
            if msg.flags & 0x0100:
                check_expiration(msg.properties.expiration)
            if msg.flags & 0x0200 and msg.properties.reply_to == REPLY_TO:
                self._rewrite_reply_to(msg)
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

    def _confirm_now(self) -> None:
        if self.confirm:
            self._confirm_after_write(self.commit.writes)

    def _confirm_after_write(self, writes: int) -> None:
        """Confirm the current publish: at once, or once the records it wrote are fsynced."""
        if self.confirm:
            commit = self.commit
            wait = self.confirm_wait
            if commit.writes != writes:
                # a persistent message reached a durable queue: confirm once it is fsynced
                epoch = commit.epoch
                if wait and wait[-1][0] == epoch:
                    wait[-1][1] = self.publish_seq
                else:
                    wait.append([epoch, self.publish_seq])
                    commit.when_durable(epoch, self._durable)
            elif wait:
                wait[-1][1] = self.publish_seq      # confirms go out in order
            else:
                self.confirm_upto = self.publish_seq
                self._confirm_soon()

    def _confirm_soon(self) -> None:
        """The ack goes out with the next flush (coalesced with the confirms around it)."""
        conn = self.conn
        pending = conn.confirm_channels
        if not pending and conn.wakeup is not None:
            conn.wakeup()
        pending.add(self)

    def _durable(self) -> None:
        """The committer fsynced an epoch: release the confirms that waited for it."""
        wait = self.confirm_wait
        durable = self.commit.durable
        upto = 0
        while wait and wait[0][0] <= durable:
            upto = wait.pop(0)[1]
        if upto and not self.closed:
            self.confirm_upto = upto
            self._confirm_soon()

    def _check_user_id(self, msg: Message) -> None:
        uid = msg.properties.user_id
        if uid is not None and uid != self.conn.user.name:
            raise precondition_failed(f"user_id property set to '{uid}' but authenticated user was "
                                      f"'{self.conn.user.name}'", 60, 40)

    def _rewrite_reply_to(self, msg: Message) -> None:
        """Direct reply-to: ``reply_to = amq.rabbitmq.reply-to`` becomes this channel's name."""
        if self.reply_consumer is None:
            raise precondition_failed("fast reply consumer does not exist", 60, 40)
        props = msg.properties
        props.reply_to = self.reply_key
        msg.set_properties(props)

    def _direct_reply(self, msg: Message) -> bool:
        """A publish to ``amq.rabbitmq.reply-to.<key>`` on the default exchange: deliver it to
        the channel that owns the key (dropped if that channel has gone)."""
        ch = self.broker.reply_channels.get(msg.routing_key)
        if ch is not None and not ch.closed and ch.reply_consumer is not None:
            # RabbitMQ sends a reply with the channel's next delivery tag without using it up
            tag = ch.next_tag
            ch.deliver(ch.reply_consumer, None, msg, False)
            ch.next_tag = tag
            return True
        return False

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

    def _enqueue_names(self, msg: Message, names: list, mandatory: bool) -> None:
        # the message enters its queues now: re-stamp its id so id order stays enqueue order
        msg.id = self.broker.new_message_id()
        queues = self.vhost.queues
        self._enqueue(msg, [queues[n] for n in names if n in queues], mandatory)

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
        for q in queues:
            if q.deleted:
                continue
            if q.enqueue(msg):
                refused = True
            elif q.tail or len(q.ready) > FLOW_BACKLOG:
                self.conn.flow_hint(q)          # a backlog: publisher flow control
        return refused

    def _route_sender_selected(self, x, msg: Message) -> list:
        """Sender-selected distribution: the ``CC`` and ``BCC`` headers (arrays of longstr) are
        extra routing keys; ``BCC`` is removed before delivery (RabbitMQ's rabbit_basic)."""
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
        for k in keys:
            if isinstance(k, bytes):
                k = k.decode("utf-8", "surrogateescape")
            self.vhost.route(x, k, msg, found)
        return list(dict.fromkeys(found))

    def send_return(self, code: int, text: str, msg: Message) -> None:
        parts: list = []
        return_frames(self.number, code, text, msg.ex_rk, msg.header, msg.body, self.conn.frame_max, parts)
        self.conn.emit_many(parts)

    def flush_confirms(self) -> None:
        """Send the acks owed since the last flush: one frame, ``multiple`` when it covers several
        (RabbitMQ sends a single confirm with multiple=false)."""
        upto = self.confirm_upto
        if upto > self.confirm_sent and not self.closed:
            if self.nacked:
                self._flush_with_nacks(upto)
                return
            multiple = upto - self.confirm_sent > 1
            self.confirm_sent = upto
            self.conn.emit(ack_frame(self.number, upto, multiple))

    def _flush_with_nacks(self, upto: int) -> None:
        """A batch holding nacks, as RabbitMQ's ``send_confirms_and_nacks`` sends it: the acks
        first, then the nacks, each list coalesced by ``coalesce_and_send`` (tags below a cutoff
        -- the smallest still-unconfirmed publish and the other list's tags -- go as one
        ``multiple`` frame, the rest one by one; a lone ack is never ``multiple``)."""
        nacks = sorted(n for n in self.nacked if n <= upto)
        self.nacked.difference_update(nacks)
        nset = set(nacks)
        acks = [t for t in range(self.confirm_sent + 1, upto + 1) if t not in nset]
        unconfirmed = upto + 1 if self.publish_seq > upto else None
        emit = self.conn.emit
        if len(acks) == 1:
            emit(ack_frame(self.number, acks[0], False))
        elif acks:
            self._coalesce(acks, nacks, unconfirmed, lambda t, m: emit(ack_frame(self.number, t, m)))
        send = self.conn.send_method
        self._coalesce(nacks, acks, unconfirmed, lambda t, m: send(
            self.number, spec.BasicNack(delivery_tag=t, multiple=m, requeue=False)))
        self.confirm_sent = upto

    @staticmethod
    def _coalesce(tags: list, others: list, unconfirmed, send) -> None:
        if not tags:
            return
        cutoff = unconfirmed if unconfirmed is not None else tags[-1] + 1
        if others:
            cutoff = min(cutoff, others[0])
        below = [t for t in tags if t < cutoff]
        if below:
            send(below[-1], True)
        for t in tags[len(below):]:
            send(t, False)

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
                if negative:
                    q.drop(msg)
                else:
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
        """The queue went away under a consumer: forget it, tell the client (basic.cancel)."""
        if self.consumers.get(c.tag) is c:
            del self.consumers[c.tag]
            if notify and not self.closed and self.conn.capability("consumer_cancel_notify"):
                self.conn.send_method(self.number, spec.BasicCancel(consumer_tag=c.tag, nowait=True))

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
        self.conn.confirm_channels.discard(self)
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
        if m.queue == REPLY_TO:
            return self._consume_reply_to(m)
        q = self.get_queue(m.queue)
        tag = m.consumer_tag or gen_name("amq.ctag-")
        if tag in self.consumers:
            raise not_allowed(f"attempt to reuse consumer tag '{tag}'", 60, 20)
        if q.exclusive_consumer is not None or (m.exclusive and (q.consumers or (q.sac and q.queue_type != "quorum"))):
            raise access_refused(f"queue '{q.name}' in vhost '{self.vhost.name}' in exclusive use", 60, 20)
        prio = consumer_priority(m.arguments, f"queue '{q.name}' in vhost '{self.vhost.name}'")
        c = Consumer(tag, enc_shortstr(tag), self, q, m.no_ack, m.exclusive, self.prefetch, m.arguments, prio)
        self.consumers[tag] = c
        if not m.nowait:
            self.conn.send_method(self.number, spec.BasicConsumeOk(consumer_tag=tag))
        q.add_consumer(c)

    def _consume_reply_to(self, m):
        """basic.consume on the direct reply-to pseudo-queue (no-ack only, one per channel)."""
        if not m.no_ack:
            raise precondition_failed("reply consumer cannot acknowledge", 60, 20)
        if self.reply_consumer is not None:
            raise precondition_failed("reply consumer already set", 60, 20)
        tag = m.consumer_tag or gen_name("amq.ctag-")
        if tag in self.consumers:
            raise not_allowed(f"attempt to reuse consumer tag '{tag}'", 60, 20)
        c = Consumer(tag, enc_shortstr(tag), self, None, True, False, 0, m.arguments)
        self.consumers[tag] = c
        self.reply_consumer = c
        if self.reply_key is None:
            self.reply_key = REPLY_PREFIX + gen_name("") + "." + gen_name("")
        self.broker.reply_channels[self.reply_key] = self
        if not m.nowait:
            self.conn.send_method(self.number, spec.BasicConsumeOk(consumer_tag=tag))

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
        if q.sac and q.queue_type == "quorum":
            raise resource_locked(f"cannot obtain access to locked queue '{q.name}' in vhost '{self.vhost.name}'. "
                                  "basic.get operations are not supported by quorum queues with single active "
                                  "consumer", 60, 70)
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

    def m_basic_recover(self, m, reply=True):
        if not m.requeue:
            raise not_implemented("requeue=false", 60, 110)
        self.requeue_all(True)
        if reply:
            self.conn.send_method(self.number, spec.BasicRecoverOk())

    def m_basic_recover_async(self, m):
        self.m_basic_recover(m, reply=False)

    # ------------------------------------------------------------ exchange

    def m_exchange_declare(self, m):
        name = m.exchange
        v = self.vhost
        if m.passive:
            if not name:
                raise access_refused("operation not permitted on the default exchange", 40, 10)
            v.exchange(name)
        else:
            if m.type not in TYPES:
                raise command_invalid(f"unknown exchange type '{m.type}'", 40, 10)
            if not name:
                raise access_refused("operation not permitted on the default exchange", 40, 10)
            if name not in v.exchanges and name.startswith("amq."):
                raise access_refused(f"exchange name '{name}' contains reserved prefix 'amq.*'", 40, 10)
            v.declare_exchange(name, m.type, m.durable, m.auto_delete, m.internal, m.arguments or {})
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeDeclareOk())

    def m_exchange_delete(self, m):
        name = m.exchange
        if not name:
            raise access_refused("operation not permitted on the default exchange", 40, 20)
        if name.startswith("amq."):
            raise access_refused(f"deletion of system exchange '{name}' in vhost "
                                 f"'{self.vhost.name}' not allowed", 40, 20)
        x = self.vhost.exchanges.get(name)
        if x is not None:
            self.vhost.delete_exchange(x, m.if_unused)
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeDeleteOk())

    def _binding_ends(self, source: str, dest_kind: str, dest: str, cid: int, mid: int):
        v = self.vhost
        if not source or (dest_kind == "exchange" and not dest):
            raise access_refused("operation not permitted on the default exchange", cid, mid)
        if dest_kind == "queue":
            dest = self.queue_name(dest)
        s = v.exchanges.get(source)
        if s is None:
            raise not_found(f"no exchange '{source}' in vhost '{v.name}'", cid, mid)
        d = (v.queues if dest_kind == "queue" else v.exchanges).get(dest)
        if d is None:
            raise not_found(f"no {dest_kind} '{dest}' in vhost '{v.name}'", cid, mid)
        if dest_kind == "queue":
            self.check_exclusive(d)
        return s, d

    def _unbind(self, source: str, dest_kind: str, dest: str, routing_key: str, args: dict) -> None:
        """RabbitMQ answers unbind-ok whatever is missing (binding, queue, exchange)."""
        v = self.vhost
        if not source or (dest_kind == "exchange" and not dest):
            raise access_refused("operation not permitted on the default exchange", 50 if dest_kind == "queue" else 40,
                                 50 if dest_kind == "queue" else 40)
        if dest_kind == "queue":
            dest = self.queue_name(dest)
        s = v.exchanges.get(source)
        d = (v.queues if dest_kind == "queue" else v.exchanges).get(dest)
        if s is not None and d is not None:
            v.unbind(s, d, routing_key, args)

    def m_exchange_bind(self, m):
        s, d = self._binding_ends(m.source, "exchange", m.destination, 40, 30)
        self.vhost.bind(s, d, m.routing_key, m.arguments or {})
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeBindOk())

    def m_exchange_unbind(self, m):
        self._unbind(m.source, "exchange", m.destination, m.routing_key, m.arguments or {})
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeUnbindOk())

    # ------------------------------------------------------------ queue

    def m_queue_declare(self, m):
        v = self.vhost
        name = m.queue
        args = m.arguments or {}
        if name == REPLY_TO or name.startswith(REPLY_PREFIX):
            return self._declare_reply_to(m, name)
        if m.passive:
            q = v.queue(name)
            self.check_exclusive(q)
            q.touch()
        else:
            server_named = not name
            if server_named:
                name = gen_name("amq.gen-")
            elif name.startswith("amq."):
                raise access_refused(f"queue name '{name}' contains reserved prefix 'amq.*'", 50, 10)
            q = v.queues.get(name)
            if q is not None:
                self.check_exclusive(q)
                if bool(m.exclusive) != (q.exclusive_owner is not None):
                    self.check_exclusive_mismatch(q)
                self._assert_queue_equivalent(q, m, args)
                q.touch()
            else:
                q = self._create_queue(name, m, args, server_named)
        self.last_queue = q.name
        if not m.nowait:
            # a quorum queue with a single active consumer counts only the active one
            n = min(1, len(q.consumers)) if q.sac and q.queue_type == "quorum" else len(q.consumers)
            self.conn.send_method(self.number, spec.QueueDeclareOk(
                queue=q.name, message_count=q.message_count, consumer_count=n))

    def _declare_reply_to(self, m, name: str):
        """The direct reply-to pseudo-queue always "exists" (0 messages, 1 consumer); a reply
        name exists while its channel's reply consumer does."""
        if name != REPLY_TO:
            ch = self.broker.reply_channels.get(name)
            if ch is None or ch.reply_consumer is None:
                raise not_found(f"no queue '{name}' in vhost '{self.vhost.name}'", 50, 10)
        if not m.nowait:
            self.conn.send_method(self.number, spec.QueueDeclareOk(queue=name, message_count=0, consumer_count=1))

    def check_exclusive_mismatch(self, q):
        raise resource_locked(
            f"cannot obtain exclusive access to locked queue '{q.name}' in vhost '{self.vhost.name}'. "
            "It could be originally declared on another connection or the exclusive property value "
            "does not match that of the original declaration.", 50, 10)

    def _assert_queue_equivalent(self, q: Queue, m, args: dict) -> None:
        what = f"queue '{q.name}' in vhost '{self.vhost.name}'"
        # an exclusive declare is always transient (RabbitMQ ignores its durable flag)
        durable = m.durable and not m.exclusive
        for arg, new, cur in (("durable", durable, q.durable), ("auto_delete", m.auto_delete, q.auto_delete)):
            if bool(new) != bool(cur):
                raise precondition_failed(f"inequivalent arg '{arg}' for {what}: "
                                          f"received '{fmt_bool(new)}' but current is '{fmt_bool(cur)}'", 50, 10)
        cur, new = q.arguments, args
        if "x-queue-type" not in cur or "x-queue-type" not in new:
            # an explicit x-queue-type=classic is equivalent to none (both values present: compared)
            cur, new = _without_classic(cur), _without_classic(new)
        present = set(cur) | set(new)
        keys = [k for k in EQUIVALENCE_ORDER if k in present]
        assert_args_equivalent(cur, new, what, keys)

    def _create_queue(self, name: str, m, args: dict, server_named: bool = False) -> Queue:
        """Checks in RabbitMQ's order: the queue type, arguments the type does not support,
        argument values, then the type's property rules."""
        what = f"queue '{name}' in vhost '{self.vhost.name}'"
        qt = args.get("x-queue-type")
        if qt is not None and getattr(qt, "tag", "S") != "S":
            raise precondition_failed(f"invalid arg 'x-queue-type' for {what}: "
                                      f"{{unacceptable_type,{TYPE_NAMES.get(qt.tag, qt.tag)}}}", 50, 10)
        qtype = table_plain(qt) if qt is not None else "classic"
        if qtype not in QUEUE_TYPES:
            raise precondition_failed(f"invalid arg 'x-queue-type' for {what}: \"unsupported queue type "
                                      f"'{_fmt_value(qtype)}'\"", 50, 10)
        refused = QUORUM_REFUSES if qtype == "quorum" else CLASSIC_REFUSES
        for k in args:
            if k in refused:
                raise precondition_failed(f"invalid arg '{k}' for {what} of queue type rabbit_{qtype}_queue", 50, 10)
        check_queue_args(args, what)
        if qtype == "quorum":
            if server_named:
                raise precondition_failed("Cannot declare a server-named queue for type rabbit_quorum_queue", 50, 10)
            for bad, prop in ((m.auto_delete, "auto-delete"), (m.exclusive, "exclusive-owner"),
                              (not m.durable, "non-durable")):
                if bad:
                    raise precondition_failed(f"invalid property '{prop}' for {what}", 50, 10)
        elif self.broker.settings.refuse_transient_queues and not m.durable and not m.exclusive:
            # RabbitMQ 4.3+: deprecated feature denied by default -> 541 connection error
            raise ConnectionError_(541, "INTERNAL_ERROR - " + TRANSIENT_NONEXCL_DENIED, 50, 10)
        q = Queue(name, self.vhost, durable=m.durable and not m.exclusive,
                  exclusive_owner=self.conn if m.exclusive else None,
                  auto_delete=m.auto_delete, arguments=args, store=self.broker.store)
        self.vhost.add_queue(q)
        if m.exclusive:
            self.conn.exclusive_queues.append(q)
        return q

    def m_queue_bind(self, m):
        s, q = self._binding_ends(m.exchange, "queue", m.queue, 50, 20)
        # RabbitMQ's shortcut: no queue name and no key means "the last queue, by its name"
        rk = m.routing_key if (m.queue or m.routing_key) else q.name
        self.vhost.bind(s, q, rk, m.arguments or {})
        if not m.nowait:
            self.conn.send_method(self.number, spec.QueueBindOk())

    def m_queue_unbind(self, m):
        rk = m.routing_key if (m.queue or m.routing_key) else self.queue_name("")
        self._unbind(m.exchange, "queue", m.queue, rk, m.arguments or {})
        self.conn.send_method(self.number, spec.QueueUnbindOk())

    def m_queue_purge(self, m):
        q = self.get_queue(m.queue)
        n = q.purge()
        if not m.nowait:
            self.conn.send_method(self.number, spec.QueuePurgeOk(message_count=n))

    def m_queue_delete(self, m):
        name = self.queue_name(m.queue)
        q = self.vhost.queues.get(name)
        n = 0
        if q is not None:
            self.check_exclusive(q)
            if m.if_unused and q.consumers:
                raise precondition_failed(f"queue '{name}' in vhost '{self.vhost.name}' in use", 50, 40)
            if m.if_empty and q.message_count:
                raise precondition_failed(f"queue '{name}' in vhost '{self.vhost.name}' not empty", 50, 40)
            n = self.vhost.delete_queue(q)
        if not m.nowait:
            self.conn.send_method(self.number, spec.QueueDeleteOk(message_count=n))

    # ------------------------------------------------------------ channel / tx / confirm

    def m_channel_flow(self, m):
        # RabbitMQ (3.x) refuses to pause deliveries with channel.flow: 540 active=false
        if not m.active:
            raise not_implemented("active=false", 20, 20)
        self.conn.send_method(self.number, spec.ChannelFlowOk(active=True))

    def m_channel_flow_ok(self, m):
        pass

    def m_access_request(self, m):
        self.conn.send_method(self.number, spec.AccessRequestOk(ticket=1))

    def m_confirm_select(self, m):
        if self.tx:
            raise precondition_failed("cannot switch from tx to confirm mode", 85, 10)
        self.confirm = True
        if not m.nowait:
            self.conn.send_method(self.number, spec.ConfirmSelectOk())

    def m_tx_select(self, m):
        if self.confirm:
            raise precondition_failed("cannot switch from confirm to tx mode", 90, 10)
        self.tx = True
        self.conn.send_method(self.number, spec.TxSelectOk())

    def m_tx_commit(self, m):
        if not self.tx:
            raise precondition_failed("channel is not transactional", 90, 20)
        ops, self.tx_ops = self.tx_ops, []
        commit = self.commit
        writes = commit.writes
        for fn, args in ops:
            fn(*args)
        if commit.writes == writes:
            self.conn.send_method(self.number, spec.TxCommitOk())
        else:
            # persistent messages reached durable queues: commit-ok once they are fsynced
            commit.when_durable(commit.epoch, self._tx_durable)

    def _tx_durable(self) -> None:
        if not self.closed:
            self.conn.send_method(self.number, spec.TxCommitOk())

    def m_tx_rollback(self, m):
        if not self.tx:
            raise precondition_failed("channel is not transactional", 90, 30)
        self._discard_tx()
        self.conn.send_method(self.number, spec.TxRollbackOk())

    def _discard_tx(self) -> None:
        """Forget uncommitted work; acks/nacks it held go back to the unacked map, in tag order."""
        ops, self.tx_ops = self.tx_ops, []
        restored = [item for fn, args in ops if fn == self._settle for item in args[0]]
        if restored:
            self.unacked = OrderedDict(sorted(list(self.unacked.items()) + restored))


TRANSIENT_NONEXCL_DENIED = (
    "Feature `transient_nonexcl_queues` is deprecated.\n"
    "By default, this feature is not permitted anymore.\n"
    "The feature will be removed from a future major RabbitMQ version, regardless of the "
    "configuration; actual version to be determined.\n"
    "To continue using this feature when it is not permitted by default, set the following "
    "parameter in your configuration:\n"
    "    \"deprecated_features.permit.transient_nonexcl_queues = true\"")

QUORUM_REFUSES = frozenset(("x-max-priority", "x-queue-mode", "x-queue-master-locator", "x-queue-version"))
CLASSIC_REFUSES = frozenset(("x-delivery-limit", "x-quorum-initial-group-size", "x-dead-letter-strategy",
                             "x-max-in-memory-length", "x-max-in-memory-bytes", "x-queue-leader-locator"))

# the order RabbitMQ checks them in (rabbit_amqqueue:declare_args/0): the first difference is reported
EQUIVALENCE_ORDER = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
    "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode", "x-single-active-consumer",
    "x-queue-type", "x-delivery-limit", "x-queue-master-locator", "x-queue-version",
)
_INT_PREFIX = re.compile(r"[+-]?[0-9]+")


def check_expiration(exp: str) -> int:
    """Validate the ``expiration`` property as RabbitMQ does (``string:to_integer``)."""
    m = _INT_PREFIX.match(exp)
    if m is None:
        reason = "no_integer"
    elif m.end() != len(exp):
        reason = '{leftover_string,"%s"}' % exp[m.end():]
    elif int(m.group()) < 0:
        reason = f"{{value_negative,{int(m.group())}}}"
    else:
        return int(m.group())
    raise precondition_failed(f"invalid expiration '{exp}': {reason}", 60, 40)


def _without_classic(args: dict) -> dict:
    """``x-queue-type: classic`` is equivalent to no type at all."""
    if table_plain(args.get("x-queue-type")) == "classic":
        args = dict(args)
        del args["x-queue-type"]
    return args


def _fmt_value(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def build_handlers() -> dict:
    h = {}
    for idx, cls in spec.METHODS.items():
        name = "m_" + cls.NAME.replace(".", "_").replace("-", "_")
        fn = getattr(Channel, name, None)
        if fn is not None:
            h[idx] = fn
    return h


HANDLERS = build_handlers()
