"""The ``exchange.*`` and ``queue.*`` methods: declare, delete, bind, unbind, purge.

Checks run in RabbitMQ's order with its reply texts: reserved names
(``amq.*``, the default exchange), passive declares, exclusivity, equivalence
of a redeclare (``rabbit_misc:assert_args_equivalence`` over the existing
queue's type's argument list), then for a new queue its type, the arguments the type refuses,
argument values and the type's property rules (``broker/queue/``).
"""
from __future__ import annotations


from ...amqp import spec
from ...amqp.codec import TYPE_NAMES, Typed, table_plain
from ...amqp.errors import (ConnectionError_, access_refused, command_invalid,
                            not_found, precondition_failed, resource_locked)
from ..exchanges import TYPES
from ..queue import QUEUE_TYPES, Queue
from ..queue.arguments import check_queue_args
from ..vhost import assert_args_equivalent, fmt_bool, gen_name
from .reply_to import REPLY_PREFIX, REPLY_TO


class EntityMethods:
    """Mixin of :class:`~leveret.broker.channel.base.Channel`."""

    __slots__ = ()

    def m_exchange_declare(self, m):
        name = m.exchange
        v = self.vhost
        if m.passive:
            if not name:
                raise access_refused("operation not permitted on the default exchange", 40, 10)
            v.exchange(name)
        else:
            if m.type not in TYPES:
                # rabbit_exchange:check_type: command_invalid (a connection error) in 3.10; a
                # channel's precondition_failed since rabbitmq-server#11214 (3.12.x, 3.13.x, 4.x)
                error = precondition_failed if self.broker.settings.exchange_type_precondition else command_invalid
                raise error(f"unknown exchange type '{m.type}'", 40, 10)
            if not name:
                raise access_refused("operation not permitted on the default exchange", 40, 10)
            self.check_access("exchange", name, "configure")
            if name not in v.exchanges:
                if name.startswith("amq."):
                    raise access_refused(f"exchange name '{name}' contains reserved prefix 'amq.*'", 40, 10)
                ae = (m.arguments or {}).get("alternate-exchange")
                if ae is not None and getattr(ae, "tag", "S") == "S":
                    self.check_access("exchange", name, "read")
                    self.check_access("exchange", table_plain(ae), "write")
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
        self.check_access("exchange", name, "configure")
        x = self.vhost.exchanges.get(name)
        if x is not None:
            self.vhost.delete_exchange(x, m.if_unused)
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeDeleteOk())

    def _binding_access(self, source: str, dest_kind: str, dest: str, routing_key: str) -> None:
        """``rabbit_channel:binding_action``'s checks, in its order: write on the destination,
        neither end the default exchange, read on the source, then (a topic source that
        exists) topic read permission on the routing key."""
        self.check_access(dest_kind, dest, "write")
        if not source or (dest_kind == "exchange" and not dest):
            raise access_refused("operation not permitted on the default exchange")
        self.check_access("exchange", source, "read")
        s = self.vhost.exchanges.get(source)
        if s is not None:
            self.check_topic_access(s, routing_key, "read")

    def _binding_ends(self, source: str, dest_kind: str, dest: str, routing_key: str, cid: int, mid: int):
        v = self.vhost
        if dest_kind == "queue":
            dest = self.queue_name(dest)
        self._binding_access(source, dest_kind, dest, routing_key)
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
        """RabbitMQ answers unbind-ok whatever is missing (binding, queue, exchange); removing an
        existing binding of another connection's exclusive queue is 405 RESOURCE_LOCKED."""
        v = self.vhost
        if dest_kind == "queue":
            dest = self.queue_name(dest)
        self._binding_access(source, dest_kind, dest, routing_key)
        s = v.exchanges.get(source)
        d = (v.queues if dest_kind == "queue" else v.exchanges).get(dest)
        if s is not None and d is not None:
            v.unbind(s, d, routing_key, args, self.check_exclusive if dest_kind == "queue" else None)

    def m_exchange_bind(self, m):
        s, d = self._binding_ends(m.source, "exchange", m.destination, m.routing_key, 40, 30)
        self.vhost.bind(s, d, m.routing_key, m.arguments or {})
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeBindOk())

    def m_exchange_unbind(self, m):
        self._unbind(m.source, "exchange", m.destination, m.routing_key, m.arguments or {})
        if not m.nowait:
            self.conn.send_method(self.number, spec.ExchangeUnbindOk())

    def m_queue_declare(self, m):
        v = self.vhost
        name = m.queue
        args = m.arguments or {}
        if name == REPLY_TO or name.startswith(REPLY_PREFIX):
            return self._declare_reply_to(m, name)
        dqt = v.default_queue_type
        if dqt and "x-queue-type" not in args and QUEUE_TYPES[dqt].is_compatible(m.durable, m.exclusive, m.auto_delete):
            # rabbit_amqqueue:augment_declare_args: the vhost's default queue type, where it fits
            args = {**args, "x-queue-type": Typed("S", dqt)}
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
            self.check_access("queue", name, "configure")
            self.broker.stats.churn["queues_declared"] += 1     # (RabbitMQ counts it here)
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
            self.conn.send_method(self.number, spec.QueueDeclareOk(
                queue=q.name, message_count=q.message_count, consumer_count=q.declare_ok_consumers()))

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
        # the existing queue's type says which arguments are compared, and in which order
        assert_args_equivalent(cur, new, what, q.RULES.equivalence)

    def _create_queue(self, name: str, m, args: dict, server_named: bool = False) -> Queue:
        """Checks in RabbitMQ's order: the queue type, arguments the type does not support,
        argument values, then the type's property rules."""
        what = f"queue '{name}' in vhost '{self.vhost.name}'"
        lim = self.vhost.limits.get("max-queues", -1)
        if lim >= 0 and len(self.vhost.queues) >= lim:
            raise precondition_failed(f"cannot declare queue '{name}': queue limit in vhost "
                                      f"'{self.vhost.name}' ({lim}) is reached", 50, 10)
        dlx = args.get("x-dead-letter-exchange")
        if dlx is not None and getattr(dlx, "tag", "S") == "S":
            self.check_access("queue", name, "read")
            self.check_access("exchange", table_plain(dlx), "write")
        qt = args.get("x-queue-type")
        if qt is not None and getattr(qt, "tag", "S") != "S":
            raise precondition_failed(f"invalid arg 'x-queue-type' for {what}: "
                                      f"{{unacceptable_type,{TYPE_NAMES.get(qt.tag, qt.tag)}}}", 50, 10)
        qtype = table_plain(qt) if qt is not None else "classic"
        if qtype not in QUEUE_TYPES:
            raise precondition_failed(f"invalid arg 'x-queue-type' for {what}: \"unsupported queue type "
                                      f"'{_fmt_value(qtype)}'\"", 50, 10)
        cls = QUEUE_TYPES[qtype]
        check_queue_args(args, what, cls.RULES)
        cls.check_declare(what, m.durable, m.exclusive, m.auto_delete, server_named)
        if qtype == "classic" and self.broker.settings.refuse_transient_queues and not m.durable \
                and not m.exclusive:
            # RabbitMQ 4.3+: deprecated feature denied by default -> 541 connection error
            raise ConnectionError_(541, "INTERNAL_ERROR - " + TRANSIENT_NONEXCL_DENIED, 50, 10)
        q = cls(name, self.vhost, durable=m.durable and not m.exclusive,
                exclusive_owner=self.conn if m.exclusive else None,
                auto_delete=m.auto_delete, arguments=args, store=self.broker.store)
        self.vhost.add_queue(q)
        self.broker.stats.churn["queues_created"] += 1
        if m.exclusive:
            self.conn.exclusive_queues.append(q)
        return q

    def m_queue_bind(self, m):
        # RabbitMQ's shortcut: no queue name and no key means "the last queue, by its name"
        rk = m.routing_key if (m.queue or m.routing_key) else self.queue_name("")
        s, q = self._binding_ends(m.exchange, "queue", m.queue, rk, 50, 20)
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
        self.check_access("queue", name, "configure")
        q = self.vhost.queues.get(name)
        n = 0
        if q is not None:
            self.check_exclusive(q)
            q.check_delete(m.if_unused, m.if_empty)
            n = self.vhost.delete_queue(q)
        if not m.nowait:
            self.conn.send_method(self.number, spec.QueueDeleteOk(message_count=n))


TRANSIENT_NONEXCL_DENIED = (
    "Feature `transient_nonexcl_queues` is deprecated.\n"
    "By default, this feature is not permitted anymore.\n"
    "The feature will be removed from a future major RabbitMQ version, regardless of the "
    "configuration; actual version to be determined.\n"
    "To continue using this feature when it is not permitted by default, set the following "
    "parameter in your configuration:\n"
    "    \"deprecated_features.permit.transient_nonexcl_queues = true\"")

def _without_classic(args: dict) -> dict:
    """``x-queue-type: classic`` is equivalent to no type at all."""
    if table_plain(args.get("x-queue-type")) == "classic":
        args = dict(args)
        del args["x-queue-type"]
    return args


def _fmt_value(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
