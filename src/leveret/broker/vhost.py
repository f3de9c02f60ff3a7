"""A virtual host: its exchanges, queues and bindings, and routing.

:meth:`VHost.route` is the publish hot path's routing step: ask the exchange
type for destinations, follow exchange-to-exchange bindings (each exchange
visited once, so cycles terminate), use an exchange's alternate exchange when
the exchange itself matched nothing, and return each queue once. A message
with several routing keys (sender-selected ``CC``/``BCC``, also when it is
dead-lettered) is matched with *all* of them at every exchange it reaches
(:meth:`VHost.route_keys`, RabbitMQ's ``rabbit_exchange:route``).

Entity rules that RabbitMQ enforces and clients can observe (reply texts
byte-for-byte as RabbitMQ's ``rabbit_channel``/``rabbit_amqqueue`` send them)
live here too: argument equivalence, auto-delete cascades, exclusive owners.
"""
from __future__ import annotations

import base64
import os
import re

from ..amqp.codec import TYPE_NAMES, Typed, table_plain
from ..amqp.errors import not_found, precondition_failed
from ..store.definitions import encode_args
from .delayed import x_delay
from .exchanges import TYPES, Binding, DefaultExchange, Exchange
from .policy import best
from .queue import Queue

PREDECLARED = (
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"), ("amq.rabbitmq.trace", "topic"),
)


def gen_name(prefix: str) -> str:
    """``amq.gen-…``/``amq.ctag-…``: prefix + 22 url-safe base64 chars, as RabbitMQ."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def erl_atom(name: str) -> str:
    """An atom as Erlang's ``~p`` prints it: quoted unless it is a plain lower-case word."""
    return name if re.fullmatch(r"[a-z][A-Za-z0-9_@]*", name) else f"'{name}'"


def fmt_bool(v: bool) -> str:
    return "true" if v else "false"


class VHost:
    def __init__(self, name: str, broker):
        self.name = name
        self.broker = broker
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.policies: dict = {}            # name -> Policy
        self.operator_policies: dict = {}   # name -> Policy (the operator_policy component)
        self.limits: dict = {}              # max-connections, max-queues (broker/admin.py)
        # RabbitMQ's vhost metadata: description, tags, and the default queue type (set at
        # creation only, applied to declares without x-queue-type: broker/channel/entities.py)
        self.description = ""
        self.tags: list | str = []           # (a string: see AdminMixin.add_vhost)
        self.default_queue_type: str | None = None
        self.default_exchange = DefaultExchange(name, self.queues)
        self.exchanges[""] = self.default_exchange
        for n, t in PREDECLARED:
            self.exchanges[n] = TYPES[t](n, name, durable=True, internal=(n == "amq.rabbitmq.trace"))

    # ------------------------------------------------------------ lookup

    def describe(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.name}'"

    def exchange(self, name: str) -> Exchange:
        x = self.exchanges.get(name)
        if x is None:
            raise not_found(f"no exchange '{name}' in vhost '{self.name}'")
        return x

    def queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise not_found(f"no queue '{name}' in vhost '{self.name}'")
        return q

    def tell(self, event: str, entity) -> None:
        """Tell the broker's observers (``Broker.observers``) that ``entity`` was created,
        deleted, got another policy, or (an exchange) had its bindings changed."""
        for o in self.broker.observers:
            o.changed(self, event, entity)

    # ------------------------------------------------------------ policies

    def set_policy(self, p, kind: str = "policy") -> None:
        """Add or replace a policy (``kind`` "operator_policy": an operator policy)."""
        (self.operator_policies if kind == "operator_policy" else self.policies)[p.name] = p
        self.broker.store.definitions.put(kind, (self.name, p.name), pattern=p.pattern, apply_to=p.apply_to,
                                          priority=p.priority, definition=encode_args(p.definition))
        self._reapply_policies()

    def clear_policy(self, name: str, kind: str = "policy") -> None:
        if (self.operator_policies if kind == "operator_policy" else self.policies).pop(name, None) is not None:
            self.broker.store.definitions.delete(kind, (self.name, name))
            self._reapply_policies()

    def _reapply_policies(self) -> None:
        for q in list(self.queues.values()):
            self.apply_policy(q)
        for x in list(self.exchanges.values()):
            if x.name:
                self.apply_policy(x)

    def apply_policy(self, entity) -> None:
        """Give ``entity`` the policy and operator policy that now match it (if either changed,
        reconfigure it)."""
        p = best(self.policies.values(), entity) if self.policies else None
        op = best(self.operator_policies.values(), entity) if self.operator_policies else None
        if p is not entity.policy or op is not entity.operator_policy:
            entity.policy = p
            entity.operator_policy = op
            entity.configure()
            if self.broker.observers:
                self.tell("policy", entity)

    # ------------------------------------------------------------ routing

    def route(self, x: Exchange, routing_key: str, msg, out: list, hold: bool = True) -> None:
        """Append every queue ``msg`` routes to via ``x`` to ``out``, each once. With ``hold``
        (a publish, a dead-letter), a delayed exchange met on the way holds the message if it has
        an x-delay: it routes nowhere from there now (see :mod:`.delayed`). The publish hot path
        calls this for exchanges that are not ``special``; others go through :meth:`route_special`."""
        dests: list = []
        x.route(routing_key, msg, dests)
        if not dests and x.alternate is None:
            return
        if len(dests) == 1 and dests[0].kind == "queue":
            out.append(dests[0])
            return
        self._route_from(x, dests, (routing_key,), msg, out, hold)

    def route_special(self, x: Exchange, routing_key: str, msg, out: list, hold: bool = True) -> None:
        """:meth:`route` for a delayed exchange (and any other): a held message goes no further."""
        if hold and x.delayed:
            delay = x_delay(msg)
            if delay:
                self.broker.delays.hold(x, msg, delay)
                if x.alternate is not None:
                    self._route_from(x, [], (routing_key,), msg, out, hold)
                return
        self.route(x, routing_key, msg, out, hold)

    def route_keys(self, x: Exchange, keys: list, msg, out: list, hold: bool = True) -> None:
        """:meth:`route_special` for a message with several routing keys (its routing key and
        its ``CC``/``BCC`` keys): every exchange on the way matches all of them, and uses its
        alternate exchange only when none matched there."""
        if len(keys) == 1:
            self.route_special(x, keys[0], msg, out, hold)
            return
        if hold and x.delayed:
            delay = x_delay(msg)
            if delay:
                self.broker.delays.hold(x, msg, delay)
                if x.alternate is not None:
                    self._route_from(x, [], keys, msg, out, hold)
                return
        dests: list = []
        for k in keys:
            x.route(k, msg, dests)
        if dests or x.alternate is not None:
            self._route_from(x, dests, keys, msg, out, hold)

    def _route_from(self, x, dests: list, keys, msg, out: list, hold: bool) -> None:
        seen_q: set = set()
        seen_x = {x}
        work = [(x, dests)]
        while work:
            src, ds = work.pop()
            if not ds and src.alternate is not None:
                ae = self.exchanges.get(src.alternate)
                if ae is not None:
                    ds = [ae]
            for d in ds:
                if d.kind == "queue":
                    if d not in seen_q:
                        seen_q.add(d)
                        out.append(d)
                elif d not in seen_x:
                    seen_x.add(d)
                    nxt: list = []
                    if hold and d.delayed:
                        delay = x_delay(msg)
                        if delay:
                            self.broker.delays.hold(d, msg, delay)
                            work.append((d, nxt))
                            continue
                    for k in keys:
                        d.route(k, msg, nxt)
                    work.append((d, nxt))

    # ------------------------------------------------------------ exchanges

    def declare_exchange(self, name, type_name, durable, auto_delete, internal, arguments) -> Exchange:
        x = self.exchanges.get(name)
        if x is not None:
            self._assert_exchange_equivalent(x, type_name, durable, auto_delete, internal, arguments)
            return x
        cls = TYPES[type_name]
        x = cls(name, self.name, durable=durable, auto_delete=auto_delete, internal=internal,
                arguments=arguments)
        self.exchanges[name] = x
        if self.policies or self.operator_policies:
            self.apply_policy(x)
        if x.dedup is not None and durable:
            x.dedup.attach(self.broker.store, "exchange", self.name, name)
        if durable:
            self.broker.store.definitions.put("exchange", (self.name, name), type=type_name,
                                              auto_delete=bool(auto_delete), internal=bool(internal),
                                              args=encode_args(arguments))
        if self.broker.observers:
            self.tell("created", x)
        return x

    def _assert_exchange_equivalent(self, x, type_name, durable, auto_delete, internal, arguments):
        what = self.describe("exchange", x.name)
        if x.type_name != type_name:
            raise precondition_failed(f"inequivalent arg 'type' for {what}: "
                                      f"received '{type_name}' but current is '{erl_atom(x.type_name)}'")
        for arg, new, cur in (("durable", durable, x.durable), ("auto_delete", auto_delete, x.auto_delete),
                              ("internal", internal, x.internal)):
            if bool(new) != bool(cur):
                raise precondition_failed(f"inequivalent arg '{arg}' for {what}: "
                                          f"received '{fmt_bool(new)}' but current is '{fmt_bool(cur)}'")
        assert_args_equivalent(x.arguments, arguments or {}, what, ("alternate-exchange",))

    def delete_exchange(self, x: Exchange, if_unused: bool) -> None:
        if if_unused and x.bindings:
            raise precondition_failed(f"exchange '{x.name}' in vhost '{self.name}' in use")
        self._remove_exchange(x)

    def _remove_exchange(self, x: Exchange) -> None:
        if self.exchanges.get(x.name) is not x:
            return
        del self.exchanges[x.name]
        if x.delayed:
            self.broker.delays.exchange_deleted(x)
        if x.dedup is not None:
            x.dedup.destroy()
        if x.durable:
            self.broker.store.definitions.delete("exchange", (self.name, x.name))
        for b in list(x.bindings.values()):
            x.remove_binding(b.identity)
            if b.destination.kind == "queue":
                _discard(b.destination.bindings, b)
        if self.broker.observers:
            self.tell("deleted", x)
        # bindings where x is the destination
        for src in list(self.exchanges.values()):
            if src.remove_bindings_to(x):
                if self.broker.observers:
                    self.tell("bindings", src)
                self._maybe_auto_delete_exchange(src)

    def _maybe_auto_delete_exchange(self, x: Exchange) -> None:
        if x.auto_delete and not x.bindings:
            self._remove_exchange(x)

    # ------------------------------------------------------------ bindings

    def bind(self, source: Exchange, dest, routing_key: str, arguments: dict) -> None:
        source.validate_binding(routing_key, arguments)
        b = Binding(source, dest, routing_key, arguments)
        if source.add_binding(b):
            if dest.kind == "queue":
                dest.bindings.append(b)
            if source.durable and dest.durable:
                self.broker.store.definitions.put("binding", self._binding_key(source, dest, routing_key, arguments))
            if self.broker.observers:
                self.tell("bindings", source)

    def _binding_key(self, source, dest, routing_key: str, arguments: dict) -> tuple:
        return (self.name, source.name, dest.kind, dest.name, routing_key, encode_args(arguments))

    def unbind(self, source: Exchange, dest, routing_key: str, arguments: dict, check=None) -> None:
        """Remove a binding if it exists; ``check(dest)`` runs first, only then (RabbitMQ checks
        exclusive access to the queue only when there is a binding to remove)."""
        ident = (dest.kind, dest.name, routing_key, Binding(source, dest, routing_key, arguments).akey)
        if check is not None and ident in source.bindings:
            check(dest)
        b = source.remove_binding(ident)
        if b is None:
            return
        if dest.kind == "queue":
            _discard(dest.bindings, b)
        if source.durable and dest.durable:
            # the key the binding was stored under: its arguments as they were bound
            self.broker.store.definitions.delete("binding", self._binding_key(source, dest, routing_key, b.arguments))
        if self.broker.observers:
            self.tell("bindings", source)
        self._maybe_auto_delete_exchange(source)

    # ------------------------------------------------------------ queues

    def add_queue(self, q: Queue) -> None:
        self.queues[q.name] = q
        if self.policies or self.operator_policies:
            self.apply_policy(q)

        if q.durable:
            self.broker.store.definitions.put("queue", (self.name, q.name), auto_delete=bool(q.auto_delete),
                                              args=encode_args(q.arguments))
        if self.broker.observers:
            self.tell("created", q)

    def delete_queue(self, q: Queue) -> int:
        """Remove a queue, its bindings and consumers; returns the ready count it had."""
        if q.deleted or self.queues.get(q.name) is not q:
            return 0
        q.deleted = True
        del self.queues[q.name]
        self.broker.stats.retire_queue(q)
        if self.broker.observers:
            self.tell("deleted", q)
        for b in list(q.bindings):
            b.source.remove_binding(b.identity)
            if self.broker.observers:
                self.tell("bindings", b.source)
            self._maybe_auto_delete_exchange(b.source)
        q.bindings.clear()
        n = q.message_count
        # each channel learns it in bytewise consumer-tag order (RabbitMQ's channel walks a
        # gb_set of the queue's consumer tags)
        for c in sorted(q.consumers, key=lambda c: c.tag.encode("utf-8", "surrogateescape")):
            c.channel.consumer_gone(c, notify=True)
        q.consumers.clear()
        q.destroy()
        q.purge()
        if q.durable:
            self.broker.store.definitions.delete("queue", (self.name, q.name))
        return n


def _discard(lst: list, item) -> None:
    try:
        lst.remove(item)
    except ValueError:
        pass


_INT_TAGS = frozenset("bBsuIilL")


def _val(v: Typed) -> str:
    return f"the value '{_fmt(v.value)}' of type '{TYPE_NAMES.get(v.tag, v.tag)}'"


def _fmt(v) -> str:
    if isinstance(v, bool):
        return fmt_bool(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(table_plain(v))


def assert_args_equivalent(current: dict, new: dict, what: str, keys) -> None:
    """RabbitMQ's ``rabbit_misc:assert_args_equivalence`` over the keys it checks.

    ``current``/``new`` are typed tables (values are :class:`Typed`). Integer
    types are compatible with each other; anything else must match in type.
    """
    for k in keys:
        a, b = current.get(k), new.get(k)
        if a is None and b is None:
            continue
        if a is not None and b is not None:
            compatible = a.tag == b.tag or (a.tag in _INT_TAGS and b.tag in _INT_TAGS)
            if compatible and table_plain(a) == table_plain(b):
                continue
            raise precondition_failed(f"inequivalent arg '{k}' for {what}: "
                                      f"received '{_fmt(b.value)}' but current is '{_fmt(a.value)}'")
        received = "none" if b is None else _val(b)
        cur = "none" if a is None else _val(a)
        raise precondition_failed(f"inequivalent arg '{k}' for {what}: received {received} but current is {cur}")
