"""Exchange types: direct, fanout, topic (trie), headers — small routing strategies.

Each exchange keeps its bindings as ``(destination, routing_key, args)``
identities (a destination is a queue or another exchange) and answers one
question, :meth:`Exchange.route`: which destinations does a message with this
routing key and these headers go to? The caller (``vhost.route``) follows
exchange-to-exchange bindings and the alternate exchange, and deduplicates;
like RabbitMQ's ``rabbit_exchange_type_*`` modules, a type may return a
destination twice.

* direct: a dict from routing key to destinations — one lookup per publish.
* fanout: every destination.
* topic: a trie of binding-key words with ``*`` and ``#`` children. A routing
  key is split on ``.``; the empty key is zero words (so ``#`` matches it and
  ``*`` does not), and ``a..b`` has an empty middle word, as in RabbitMQ.
* headers: each binding's ``x-match`` (all, any, all-with-x, any-with-x) is
  evaluated against the message headers; ``x-`` keys are ignored by all/any; a
  void binding value only asks that the header be present.
"""
from __future__ import annotations

from decimal import Decimal

from ..amqp.codec import TYPE_NAMES, Typed, table_plain
from ..amqp.errors import precondition_failed
from ..amqp.phash2 import table_hash
from .dedup import DedupCache, validate_exchange_args
from .delayed import make_delayed_type


def args_key(args: dict | None):
    """A hashable identity for a binding's arguments."""
    if not args:
        return ()
    return tuple(sorted((k, repr(table_plain(v))) for k, v in args.items()))


class Binding:
    __slots__ = ("source", "destination", "routing_key", "arguments", "akey", "_args_hash")

    def __init__(self, source, destination, routing_key: str, arguments: dict | None):
        self.source = source
        self.destination = destination
        self.routing_key = routing_key
        self.arguments = arguments or {}
        self.akey = args_key(arguments)
        self._args_hash = None

    @property
    def args_hash(self) -> int:
        """``erlang:phash2`` of the arguments as RabbitMQ holds them (its management API's
        ``properties_key`` ends with it), computed once."""
        if self._args_hash is None:
            self._args_hash = table_hash(self.arguments)
        return self._args_hash

    @property
    def identity(self):
        return (self.destination.kind, self.destination.name, self.routing_key, self.akey)


class Exchange:
    """Base: bindings registry shared by every type."""

    kind = "exchange"
    type_name = ""
    __slots__ = ("name", "vhost", "durable", "auto_delete", "internal", "arguments",
                 "bindings", "alternate", "policy", "operator_policy", "special", "dedup", "stat_in",
                 "stat_unroutable", "stat_out_extra")
    delayed = False

    def __init__(self, name: str, vhost: str, durable=False, auto_delete=False, internal=False, arguments=None):
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = arguments or {}
        self.bindings: dict = {}      # identity -> Binding
        self.policy = None
        self.operator_policy = None
        self.dedup = None
        # statistics: publishes (credited by the channels, see Channel.pub_x_flush), those that
        # routed nowhere, and the extra copies of those that routed to several queues
        self.stat_in = self.stat_unroutable = self.stat_out_extra = 0
        self.configure()

    def configure(self) -> None:
        """(Re)compute settings from the arguments and the policy in force: an
        ``alternate-exchange`` argument wins over the policy's, as in RabbitMQ."""
        ae = table_plain(self.arguments.get("alternate-exchange"))
        if not (isinstance(ae, str) and ae) and self.policy is not None:
            ae = self.policy.definition.get("alternate-exchange")     # (not an operator policy key)
        self.alternate = ae if isinstance(ae, str) and ae else None
        if table_plain(self.arguments.get("x-message-deduplication")) is True or \
                self.type_name == "x-message-deduplication":
            if self.dedup is None:
                validate_exchange_args(self.arguments, self.type_name == "x-message-deduplication")
                self.dedup = DedupCache.for_entity(self, self.arguments)
        self.special = self.dedup is not None or self.delayed

    def add_binding(self, b: Binding) -> bool:
        ident = b.identity
        if ident in self.bindings:
            return False
        self.bindings[ident] = b
        self._add(b)
        return True

    def remove_binding(self, ident) -> Binding | None:
        b = self.bindings.pop(ident, None)
        if b is not None:
            self._remove(b)
        return b

    def remove_bindings_to(self, dest) -> list:
        gone = [b for b in self.bindings.values() if b.destination is dest]
        for b in gone:
            self.remove_binding(b.identity)
        return gone

    def validate_binding(self, routing_key: str, args: dict) -> None:
        pass

    # strategies override these
    def _add(self, b: Binding) -> None:
        raise NotImplementedError

    def _remove(self, b: Binding) -> None:
        raise NotImplementedError

    def route(self, routing_key: str, msg, out: list) -> None:
        raise NotImplementedError


def _inc(d: dict, k) -> None:
    d[k] = d.get(k, 0) + 1


def _dec(d: dict, k) -> None:
    n = d.get(k, 0) - 1
    if n <= 0:
        d.pop(k, None)
    else:
        d[k] = n


class DirectExchange(Exchange):
    type_name = "direct"
    __slots__ = ("_by_key",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._by_key: dict[str, dict] = {}

    def _add(self, b):
        _inc(self._by_key.setdefault(b.routing_key, {}), b.destination)

    def _remove(self, b):
        d = self._by_key.get(b.routing_key)
        if d is not None:
            _dec(d, b.destination)
            if not d:
                del self._by_key[b.routing_key]

    def route(self, routing_key, msg, out):
        d = self._by_key.get(routing_key)
        if d:
            out.extend(d)


class DefaultExchange(Exchange):
    """The nameless exchange: routes to the queue named by the routing key.

    Implemented as a lookup in the vhost's queue table rather than as one
    binding per queue; it has no bindings a client can see or change.
    """

    type_name = "direct"
    __slots__ = ("queues",)

    def __init__(self, vhost: str, queues: dict):
        super().__init__("", vhost, durable=True)
        self.queues = queues

    def route(self, routing_key, msg, out):
        q = self.queues.get(routing_key)
        if q is not None:
            out.append(q)


class FanoutExchange(Exchange):
    type_name = "fanout"
    __slots__ = ("_dests",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._dests: dict = {}

    def _add(self, b):
        _inc(self._dests, b.destination)

    def _remove(self, b):
        _dec(self._dests, b.destination)

    def route(self, routing_key, msg, out):
        out.extend(self._dests)


class _TrieNode:
    __slots__ = ("words", "star", "hash", "dests")

    def __init__(self):
        self.words: dict[str, _TrieNode] = {}
        self.star: _TrieNode | None = None
        self.hash: _TrieNode | None = None
        self.dests: dict = {}

    def empty(self) -> bool:
        return not (self.words or self.star or self.hash or self.dests)


def split_topic(key: str) -> list[str]:
    return key.split(".") if key else []


class TopicExchange(Exchange):
    type_name = "topic"
    __slots__ = ("_root", "_cache")

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._root = _TrieNode()
        self._cache: dict[str, tuple] = {}

    def _add(self, b):
        node = self._root
        for w in split_topic(b.routing_key):
            if w == "#":
                if node.hash is None:
                    node.hash = _TrieNode()
                node = node.hash
            elif w == "*":
                if node.star is None:
                    node.star = _TrieNode()
                node = node.star
            else:
                nxt = node.words.get(w)
                if nxt is None:
                    nxt = node.words[w] = _TrieNode()
                node = nxt
        _inc(node.dests, b.destination)
        self._cache.clear()

    def _remove(self, b):
        path = [self._root]
        words = split_topic(b.routing_key)
        node = self._root
        for w in words:
            node = node.hash if w == "#" else node.star if w == "*" else node.words.get(w)
            if node is None:
                return
            path.append(node)
        _dec(node.dests, b.destination)
        # prune empty nodes bottom-up
        for i in range(len(words), 0, -1):
            child, parent, w = path[i], path[i - 1], words[i - 1]
            if not child.empty():
                break
            if w == "#":
                parent.hash = None
            elif w == "*":
                parent.star = None
            else:
                del parent.words[w]
        self._cache.clear()

    def route(self, routing_key, msg, out):
        hit = self._cache.get(routing_key)
        if hit is None:
            found: dict = {}
            _match(self._root, split_topic(routing_key), 0, found)
            hit = tuple(found)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[routing_key] = hit
        out.extend(hit)


def _match(node: _TrieNode, words: list, i: int, found: dict) -> None:
    n = len(words)
    h = node.hash
    if h is not None:
        for j in range(i, n + 1):
            _match(h, words, j, found)
    if i == n:
        for d in node.dests:
            found[d] = True
        return
    child = node.words.get(words[i])
    if child is not None:
        _match(child, words, i + 1, found)
    if node.star is not None:
        _match(node.star, words, i + 1, found)


_XMATCH = ("all", "any", "all-with-x", "any-with-x")


class HeadersExchange(Exchange):
    type_name = "headers"
    __slots__ = ("_list",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._list: list = []     # (binding, mode, [(key, value-or-_VOID)])

    def validate_binding(self, routing_key, args):
        raw = (args or {}).get("x-match")
        if raw is None:
            return
        tag = raw.tag if isinstance(raw, Typed) else "S"
        xm = table_plain(raw)
        v = xm.decode("utf-8", "replace") if isinstance(xm, bytes) else xm
        if tag != "S" or not isinstance(v, str):
            raise precondition_failed(f"Invalid x-match field type {TYPE_NAMES.get(tag, tag)} (value {_erl(xm)}); "
                                      f"expected longstr")
        if v not in _XMATCH:
            raise precondition_failed(f"Invalid x-match field value <<\"{v}\">>; "
                                      f"expected all, any, all-with-x, or any-with-x")

    def _add(self, b):
        args = b.arguments
        mode = table_plain(args.get("x-match", "all"))
        if isinstance(mode, bytes):
            mode = mode.decode("utf-8", "replace")
        with_x = mode.endswith("-with-x")
        conds = [(k, table_plain(v)) for k, v in args.items()
                 if k != "x-match" and (with_x or not k.startswith("x-"))]
        self._list.append((b, mode.startswith("any"), conds))

    def _remove(self, b):
        self._list = [e for e in self._list if e[0] is not b]

    def route(self, routing_key, msg, out):
        if not self._list:
            return
        headers = table_plain(msg.headers) if msg.header is not None else {}
        for b, any_mode, conds in self._list:
            if _headers_match(any_mode, conds, headers):
                out.append(b.destination)


def _same(a, b) -> bool:
    """Erlang ``==`` on decoded field values: 1 == 1.0, but not true, "1" or a decimal."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return type(a) is type(b) and a == b
    sa, sb = isinstance(a, (str, bytes)), isinstance(b, (str, bytes))
    if sa or sb:
        # a longstr and a byte array with the same bytes are equal (both binaries in Erlang)
        return sa and sb and _as_bytes(a) == _as_bytes(b)
    return a == b


def _as_bytes(v) -> bytes:
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v


def _headers_match(any_mode: bool, conds: list, headers: dict) -> bool:
    if any_mode:
        for k, v in conds:
            if k in headers and (v is None or _same(v, headers[k])):
                return True
        return False
    for k, v in conds:
        if k not in headers:
            return False
        if v is not None and not _same(v, headers[k]):
            return False
    return True


def _erl(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


TYPES = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}
TYPES["x-delayed-message"] = make_delayed_type(dict(TYPES))


class DeduplicationExchange(FanoutExchange):
    """The rabbitmq-message-deduplication plugin's exchange type: fanout routing, and a message
    whose key was seen recently routes nowhere (see :mod:`.dedup`)."""

    __slots__ = ()
    type_name = "x-message-deduplication"


TYPES["x-message-deduplication"] = DeduplicationExchange


class FederationUpstreamExchange(FanoutExchange):
    """``x-federation-upstream`` (RabbitMQ's ``rabbit_federation_upstream_exchange``, which the
    federation plugin registers): the internal exchange a downstream's federation link declares
    on its upstream. Fanout routing, but a message that already went through ``x-max-hops``
    brokers, or through the downstream itself (``x-downstream-name`` / ``x-downstream-vhost``
    found in its ``x-received-from`` header), routes nowhere. ``x-max-hops`` must be a
    ``long`` (``l``) argument: ``Argument x-max-hops missing`` / ``... must be of type long``."""

    __slots__ = ("max_hops", "down_name", "down_vhost")
    type_name = "x-federation-upstream"

    def __init__(self, name, vhost, durable=False, auto_delete=False, internal=False, arguments=None):
        hops = (arguments or {}).get("x-max-hops")
        if hops is None:
            raise precondition_failed("Argument x-max-hops missing", 40, 10)
        if getattr(hops, "tag", None) != "l":
            raise precondition_failed("Argument x-max-hops must be of type long", 40, 10)
        self.max_hops = hops.value
        dn, dv = (arguments or {}).get("x-downstream-name"), (arguments or {}).get("x-downstream-vhost")
        self.down_name = table_plain(dn) if getattr(dn, "tag", "S") == "S" and dn is not None else None
        self.down_vhost = table_plain(dv) if getattr(dv, "tag", "S") == "S" and dv is not None else None
        super().__init__(name, vhost, durable=durable, auto_delete=auto_delete, internal=internal,
                         arguments=arguments)

    def route(self, routing_key, msg, out):
        if self._dests and should_forward(msg.headers if msg.header is not None else {}, self.max_hops,
                                          self.down_name, self.down_vhost):
            out.extend(self._dests)


def _text(v):
    v = table_plain(v)
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def should_forward(headers: dict, max_hops: int, name, vhost) -> bool:
    """``rabbit_federation_util:should_forward``: fewer than ``max_hops`` entries in the
    ``x-received-from`` array and none from (``name``, ``vhost``)."""
    been = headers.get("x-received-from")
    if been is None or getattr(been, "tag", "A") != "A":
        return True
    been = table_plain(been)
    if not isinstance(been, list):
        return True
    if len(been) >= max_hops:
        return False
    for t in been:
        if isinstance(t, dict) and _text(t.get("cluster-name")) == name and _text(t.get("vhost")) == vhost:
            return False
    return True


TYPES["x-federation-upstream"] = FederationUpstreamExchange
