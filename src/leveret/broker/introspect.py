"""Plain-data views of the broker's objects, with the field names RabbitMQ's management API uses.

The one place that reads queues, exchanges, bindings, connections, channels and consumers
for reporting: the management API, and later Prometheus and ``leveret ctl list_*``, call these
functions and get dicts of JSON values, never the objects. Rates come from the
:class:`~leveret.broker.stats.Sampler`.

What is left out, because Leveret does not compute it (rather than a made-up constant):
Erlang's process fields (``memory``, ``reductions``, ``garbage_collection``), a queue's
``consumer_capacity``/``consumer_utilisation``, ``idle_since``, ``head_message_timestamp``,
``messages_persistent`` and the byte counts of unacknowledged messages, a channel's
``idle_since`` and ``pending_raft_commands``, the ``user_who_performed_action`` of an object,
and the TLS details of a connection (``ssl_protocol`` & co. are reported only without TLS,
where RabbitMQ's are null too).
"""
from __future__ import annotations

import base64
import operator
import os
import resource
import shutil
import time
from decimal import Decimal
from urllib.parse import quote_plus

from ..amqp.codec import Typed, decode_table_typed, encode_table, table_plain
from ..amqp.phash2 import table_hash
from .exchanges import TYPES, Binding
from .stats import (CHANNEL_GAUGES, CHANNEL_STATS, EXCHANGE_STATS, QUEUE_GAUGES, QUEUE_STATS, SOCKET_STATS, channel_counts, channel_gauges, connection_row, exchange_counts,
                    is_client, message_stats, pending_publishes, queue_counts, queue_levels, socket_stats,
                    with_rates)

RABBITMQ_VERSION = "3.10.8"     # the RabbitMQ whose API Leveret implements

EXCHANGE_TYPE_DESCRIPTIONS = {
    "direct": "AMQP direct exchange, as per the AMQP specification",
    "fanout": "AMQP fanout exchange, as per the AMQP specification",
    "headers": "AMQP headers exchange, as per the AMQP specification",
    "topic": "AMQP topic exchange, as per the AMQP specification",
    "x-delayed-message": "Delayed Message Exchange.",
    "x-message-deduplication": "Messages deduplication exchange.",
}


# ---------------------------------------------------------------- values

def json_value(v):
    """A field-table value as the management API shows it (longstr as text)."""
    v = table_plain(v) if isinstance(v, Typed) else v
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_value(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, Decimal):
        return float(v)
    return v


def json_table(t: dict | None) -> dict:
    return {k: json_value(v) for k, v in (t or {}).items()}


def properties_key(routing_key: str, arguments: dict | None, args_hash: int | None = None) -> str:
    """A binding's id in URLs, as ``rabbit_mgmt_format:pack_binding_props``: ``~`` for an
    empty key without arguments, else the quoted key, and with arguments ``~`` and
    ``args_hash``: ``rabbit_misc:base64url(<<(erlang:phash2(Args, 1 bsl 32)):32>>)`` of the
    arguments as RabbitMQ holds them (:func:`~leveret.amqp.phash2.table_hash`), so the same
    binding has the same key on both brokers (``args_hash``: that hash, if known)."""
    if not arguments:
        return "~" if routing_key == "" else _quote(routing_key)
    h = (table_hash(arguments) if args_hash is None else args_hash).to_bytes(4, "big")
    return _quote(routing_key) + "~" + _quote(base64.urlsafe_b64encode(h).decode().rstrip("="))


def _quote(s: str) -> str:
    return quote_plus(s, safe="~_.-").replace("~", "%7E")


# ---------------------------------------------------------------- exchanges and bindings

def exchange_info(x, rates=None, pending: dict | None = None) -> dict:
    d = {"name": x.name, "vhost": x.vhost, "type": x.type_name, "durable": bool(x.durable),
         "auto_delete": bool(x.auto_delete), "internal": bool(x.internal), "arguments": json_table(x.arguments)}
    if x.policy is not None:
        d["policy"] = x.policy.name
    counts = exchange_counts(x, pending if pending is not None else {})
    if counts[0]:
        d["message_stats"] = message_stats(EXCHANGE_STATS, counts, rates)
    return d


def binding_info(b) -> dict:
    return {"source": b.source.name, "vhost": b.source.vhost, "destination": b.destination.name,
            "destination_type": b.destination.kind, "routing_key": b.routing_key,
            "arguments": json_table(b.arguments), "properties_key": binding_key(b)}


def binding_key(b) -> str:
    """The ``properties_key`` of a binding object."""
    return properties_key(b.routing_key, b.arguments, b.args_hash if b.arguments else None)


def binding_order(o) -> tuple:
    """Where a binding (or a queue, standing for its default binding) comes in RabbitMQ's
    listings: ``rabbit_mgmt_wm_bindings`` sorts by ``vhost, source, type, destination,
    routing_key, properties_key``, and as a binding row has no ``type`` field, destinations of
    both kinds interleave by name (checked against RabbitMQ 3.10.8)."""
    if type(o) is Binding:
        return (o.source.vhost, o.source.name, o.destination.name, o.routing_key, binding_key(o))
    return (o.vhost.name, "", o.name, o.name, properties_key(o.name, None))


def default_bindings_of(q) -> list[dict]:
    """The default exchange's implicit binding of ``q`` (RabbitMQ lists it)."""
    return [{"source": "", "vhost": q.vhost.name, "destination": q.name, "destination_type": "queue",
             "routing_key": q.name, "arguments": {}, "properties_key": properties_key(q.name, None)}]


# ---------------------------------------------------------------- queues

MISSING = object()       # a field an item leaves out (``message_stats`` before any traffic, ...)


class View:
    """A listing before it is built: its ``objects``, how to ``build`` one item (a dict, or
    None for an object gone meanwhile), and ``fields``: path -> a cheap function of an object
    giving the value the built item has at that path (or :data:`MISSING`), so a listing can be
    sorted, filtered and paged before any item is built; ``gone(obj)``: the object was deleted
    since the listing began (it is left out). ``complete``: the top-level
    entries of ``fields``, in their order, make exactly the item ``build`` makes, so an item
    restricted to some columns can be built from them alone."""

    __slots__ = ("objects", "build", "fields", "complete", "gone")

    def __init__(self, objects: list, build, fields: dict | None = None, complete: bool = False, gone=None):
        self.objects, self.build, self.fields, self.complete = objects, build, fields or {}, complete
        self.gone = gone


def _gauge(i: int):
    n = len(QUEUE_STATS) + i
    return (lambda q, c, r: c[n]), (lambda q, c, r: {"rate": r[n] if r is not None else 0.0})


def _queue_message_stats(q, c, r):
    return message_stats(QUEUE_STATS, c, r) if any(c[:len(QUEUE_STATS)]) else MISSING


def _owner_pid_details(q, c, r):
    owner = q.exclusive_owner
    if owner is not None and getattr(owner, "peer", None):
        return {"name": owner.display_name, "peer_host": owner.peer[0], "peer_port": owner.peer[1]}
    return MISSING


def _sac_tag(q, c, r):
    return q.consumers[0].tag if q.sac and q.consumers else None


(_messages, _messages_details), (_ready, _ready_details), (_unacked, _unacked_details) = (
    _gauge(i) for i in range(len(QUEUE_GAUGES)))

# A queue's item field by field, in the item's (sorted) key order: f(queue, queue_counts(q), rates).
QUEUE_FIELDS = {
    "arguments": lambda q, c, r: json_table(q.arguments),
    "auto_delete": lambda q, c, r: bool(q.auto_delete),
    "consumers": lambda q, c, r: len(q.consumers),
    "durable": lambda q, c, r: bool(q.durable),
    "effective_policy_definition": lambda q, c, r: dict(q.policy.definition) if q.policy is not None else {},
    "exclusive": lambda q, c, r: q.exclusive_owner is not None,
    "exclusive_consumer_tag": lambda q, c, r: q.exclusive_consumer.tag if q.exclusive_consumer is not None else None,
    "message_bytes_paged_out": lambda q, c, r: q.tail_bytes,
    "message_bytes_ram": lambda q, c, r: q.ready_bytes,
    "message_bytes_ready": lambda q, c, r: q.ready_bytes + q.tail_bytes,
    "message_stats": _queue_message_stats,
    "messages": _messages,
    "messages_details": _messages_details,
    "messages_paged_out": lambda q, c, r: q.tail,
    "messages_ram": lambda q, c, r: len(q.ready) + q.unacked_count,
    "messages_ready": _ready,
    "messages_ready_details": _ready_details,
    "messages_ready_ram": lambda q, c, r: len(q.ready),
    "messages_unacknowledged": _unacked,
    "messages_unacknowledged_details": _unacked_details,
    "messages_unacknowledged_ram": lambda q, c, r: q.unacked_count,
    "name": lambda q, c, r: q.name,
    "node": lambda q, c, r: q.vhost.broker.node_name,
    "operator_policy": lambda q, c, r: None,
    "owner_pid_details": _owner_pid_details,
    "policy": lambda q, c, r: q.policy.name if q.policy is not None else None,
    "single_active_consumer_tag": _sac_tag,
    "state": lambda q, c, r: "running",
    "type": lambda q, c, r: q.queue_type,
    "vhost": lambda q, c, r: q.vhost.name,
}
_QUEUE_ITEMS = tuple(QUEUE_FIELDS.items())


def _stat_field(i: int, rate: bool):
    n = len(QUEUE_STATS)
    if rate:
        return lambda q, c, r: (r[i] if r is not None else 0.0) if any(c[:n]) else MISSING
    return lambda q, c, r: c[i] if any(c[:n]) else MISSING


# Sort keys below message_stats without building it (the common sorts of a UI).
QUEUE_STAT_FIELDS = {f"message_stats.{name}{'_details.rate' if rate else ''}": _stat_field(i, rate)
                     for i, name in enumerate(QUEUE_STATS) for rate in (False, True)}
# the fields that are an attribute (the default sort: no Python call per queue)
_QUEUE_ATTRS = {"name": operator.attrgetter("name"), "vhost": operator.attrgetter("vhost.name")}
# the fields that read the counts or rates; the others read the queue alone
_COUNTED_FIELDS = frozenset(("message_stats", "messages", "messages_details", "messages_ready",
                             "messages_ready_details", "messages_unacknowledged", "messages_unacknowledged_details",
                             *QUEUE_STAT_FIELDS))


def queue_info(q, rates=None, details: bool = False) -> dict:
    c = queue_counts(q)
    d = {}
    for k, f in _QUEUE_ITEMS:
        v = f(q, c, rates)
        if v is not MISSING:
            d[k] = v
    if details:
        d["consumer_details"] = [consumer_info(c) for c in q.consumers]
        d["deliveries"] = []        # (per-channel detail: RabbitMQ's "detailed" rates mode only)
        d["incoming"] = []
        d = dict(sorted(d.items()))
    return d


def queues(broker, vhosts, sampler) -> list[dict]:
    rates = sampler.rates_of
    return [queue_info(q, rates(q)) for v in vhosts for q in broker.vhosts[v].queues.values()]


def queues_view(broker, vhosts, sampler) -> View:
    """``/api/queues`` unbuilt: any field of a queue's item costs one field's work."""
    rates = sampler.rates_of

    def field(k, f):
        if k in _QUEUE_ATTRS:
            return _QUEUE_ATTRS[k]
        if k not in _COUNTED_FIELDS:        # (a sort by vhost and name reads 10,000 names, not counts)
            return lambda q: f(q, None, None)
        return lambda q: f(q, queue_counts(q), rates(q))

    def build(q):
        return queue_info(q, rates(q))
    fields = {k: field(k, f) for k, f in QUEUE_FIELDS.items()}
    fields.update((k, field(k, f)) for k, f in QUEUE_STAT_FIELDS.items())
    return View([q for v in vhosts for q in broker.vhosts[v].queues.values()], build, fields, complete=True,
                gone=lambda q: q.deleted)


# ---------------------------------------------------------------- exchanges, bindings, connections unbuilt

def exchanges_view(broker, vhosts, sampler) -> View:
    """``/api/exchanges`` unbuilt: the fields of :func:`exchange_info`, one at a time."""
    pending = pending_publishes(broker)
    rates = sampler.rates_of

    def stats(x):
        counts = exchange_counts(x, pending)
        return message_stats(EXCHANGE_STATS, counts, rates(x)) if counts[0] else MISSING

    fields = {"name": operator.attrgetter("name"), "vhost": operator.attrgetter("vhost"),
              "type": operator.attrgetter("type_name"), "durable": lambda x: bool(x.durable),
              "auto_delete": lambda x: bool(x.auto_delete), "internal": lambda x: bool(x.internal),
              "arguments": lambda x: json_table(x.arguments),
              "policy": lambda x: x.policy.name if x.policy is not None else MISSING,
              "message_stats": stats}
    objs = [x for v in vhosts for x in broker.vhosts[v].exchanges.values()]

    def gone(x):
        v = broker.vhosts.get(x.vhost)
        return v is None or v.exchanges.get(x.name) is not x
    return View(objs, lambda x: exchange_info(x, rates(x), pending), fields, complete=True, gone=gone)


def _binding_item(o) -> dict:
    return binding_info(o) if type(o) is Binding else default_bindings_of(o)[0]


def _bfield(of_binding, of_queue):
    return lambda o: of_binding(o) if type(o) is Binding else of_queue(o)


BINDING_FIELDS = {
    "source": _bfield(lambda b: b.source.name, lambda q: ""),
    "vhost": _bfield(lambda b: b.source.vhost, lambda q: q.vhost.name),
    "destination": _bfield(lambda b: b.destination.name, operator.attrgetter("name")),
    "destination_type": _bfield(lambda b: b.destination.kind, lambda q: "queue"),
    "routing_key": _bfield(operator.attrgetter("routing_key"), operator.attrgetter("name")),
    "arguments": _bfield(lambda b: json_table(b.arguments), lambda q: {}),
    "properties_key": _bfield(binding_key, lambda q: properties_key(q.name, None)),
}


def bindings_view(vhosts) -> View:
    """The bindings of ``vhosts`` in :func:`binding_order`, unbuilt: their objects are bindings
    and queues (a queue stands for its default binding). A ``sort`` parameter sorts them again,
    stably, so ties keep this order, as RabbitMQ's."""
    objs: list = []
    for v in vhosts:
        objs.extend(v.queues.values())
        for x in v.exchanges.values():
            objs.extend(x.bindings.values())
    objs.sort(key=binding_order)
    return View(objs, _binding_item, BINDING_FIELDS, complete=True,
                gone=lambda o: type(o) is not Binding and o.deleted)


CONNECTION_FIELDS = {
    "name": operator.attrgetter("display_name"),
    "vhost": lambda c: c.vhost.name if c.vhost else None,
    "user": lambda c: c.user.name if c.user else None,
    "peer_host": lambda c: (c.peer or ("", 0))[0], "peer_port": lambda c: (c.peer or ("", 0))[1],
    "host": lambda c: (c.local or ("", 0))[0], "port": lambda c: (c.local or ("", 0))[1],
    "channels": lambda c: len(c.sessions), "connected_at": operator.attrgetter("connected_at"),
    "state": lambda c: "blocked" if c.blocked else ("flow" if c.flow_held else "running"),
    "ssl": lambda c: bool(c.tls), "timeout": operator.attrgetter("heartbeat"),
    "frame_max": operator.attrgetter("frame_max"), "channel_max": operator.attrgetter("channel_max"),
    "user_provided_name": lambda c: (json_value(c.client_properties["connection_name"])
                                     if "connection_name" in c.client_properties else MISSING),
}


def connections_view(broker, conns: list, sampler) -> View:
    """``/api/connections`` unbuilt (``conns``: the visible ones, in connection order)."""
    return View(conns, lambda c: connection_info(c, sampler), CONNECTION_FIELDS,
                gone=lambda c: c not in broker.connections)


# ---------------------------------------------------------------- connections, channels, consumers

def connection_info(conn, sampler=None) -> dict:
    b = conn.broker
    peer = conn.peer or ("", 0)
    local = conn.local or ("", 0)
    d = {"name": conn.display_name, "node": b.node_name, "type": "network", "protocol": "AMQP 0-9-1",
         "host": local[0], "port": local[1], "peer_host": peer[0], "peer_port": peer[1],
         "user": conn.user.name if conn.user else None, "vhost": conn.vhost.name if conn.vhost else None,
         "auth_mechanism": getattr(conn, "auth_mechanism", None), "channels": len(conn.sessions),
         "channel_max": conn.channel_max, "frame_max": conn.frame_max, "timeout": conn.heartbeat,
         "client_properties": json_table(conn.client_properties), "connected_at": conn.connected_at,
         "state": "blocked" if conn.blocked else ("flow" if conn.flow_held else "running"),
         "ssl": bool(conn.tls)}
    name = conn.client_properties.get("connection_name")
    if name is not None:
        d["user_provided_name"] = json_value(name)
    if not conn.tls:
        for k in ("ssl_protocol", "ssl_key_exchange", "ssl_cipher", "ssl_hash", "peer_cert_subject",
                  "peer_cert_issuer", "peer_cert_validity"):
            d[k] = None
    s = socket_stats(conn)
    if s is not None:
        d.update(s)
        rates = sampler.rates_of(conn) if sampler is not None else None
        d.update(with_rates(SOCKET_STATS, tuple(s[k] for k in SOCKET_STATS), rates))
    return dict(sorted(d.items()))


def channel_name(ch) -> str:
    return f"{ch.conn.display_name} ({ch.number})"


def channel_info(ch, sampler=None, details: bool = False) -> dict:
    conn = ch.conn
    peer = conn.peer or ("", 0)
    counts = channel_counts(ch)
    gauges = dict(zip(CHANNEL_GAUGES, channel_gauges(ch)))
    d = {"name": channel_name(ch), "node": conn.broker.node_name, "number": ch.number,
         "user": conn.user.name if conn.user else None, "vhost": ch.vhost.name if ch.vhost else None,
         "connection_details": {"name": conn.display_name, "peer_host": peer[0], "peer_port": peer[1]},
         **gauges, "confirm": bool(ch.confirm), "transactional": bool(ch.tx),
         "state": "flow" if conn.flow_held else "running"}
    if any(counts):
        d["message_stats"] = message_stats(CHANNEL_STATS, counts, sampler.rates_of(ch) if sampler else None)
    if details:
        d["consumer_details"] = [consumer_info(c) for c in ch.consumers.values() if c.queue is not None]
        d["deliveries"] = []
        d["publishes"] = []
    return dict(sorted(d.items()))


def consumer_info(c) -> dict:
    ch = c.channel
    conn = ch.conn
    peer = conn.peer or ("", 0)
    q = c.queue
    active = not q.sac or (bool(q.consumers) and q.consumers[0] is c)
    status = ("single_active" if active else "waiting") if q.sac else "up"
    return {"arguments": json_table(c.arguments), "ack_required": not c.no_ack, "active": active,
            "activity_status": status,
            "channel_details": {"connection_name": conn.display_name, "name": channel_name(ch),
                                "node": conn.broker.node_name, "number": ch.number, "peer_host": peer[0],
                                "peer_port": peer[1], "user": conn.user.name if conn.user else None},
            "consumer_tag": c.tag, "exclusive": bool(c.exclusive), "prefetch_count": c.prefetch,
            "queue": {"name": q.name, "vhost": q.vhost.name}}


def network_connections(broker) -> list:
    """The connections a client opened (open, past connection.open), in connection order."""
    return sorted((c for c in broker.connections if is_client(c)),
                  key=lambda c: c.connected_at)


def consumers(broker, vhosts) -> list[dict]:
    return [consumer_info(c) for v in vhosts for q in broker.vhosts[v].queues.values() for c in q.consumers]


# ---------------------------------------------------------------- the node

def object_totals(broker) -> dict:
    conns = network_connections(broker)
    qs = [q for v in broker.vhosts.values() for q in v.queues.values()]
    return {"channels": sum(len(c.sessions) for c in conns), "connections": len(conns),
            "consumers": sum(len(q.consumers) for q in qs),
            "exchanges": sum(len(v.exchanges) for v in broker.vhosts.values()), "queues": len(qs)}


def overview_stats(broker) -> dict:
    """``message_stats`` and ``queue_totals`` of the whole node."""
    sampler = broker.stats
    counts = sampler.overview_counts()
    rates = sampler.rates_of("overview")
    n = len(CHANNEL_STATS)
    return {"message_stats": message_stats(CHANNEL_STATS, counts, rates),
            "queue_totals": with_rates(QUEUE_GAUGES, counts[n:], rates[n:] if rates is not None else None)}


def user_overview(broker, vhosts: set, user: str) -> dict:
    """``/api/overview``'s statistics for a user who is not a monitor: ``vhosts``' queue totals
    and the message statistics of the open channels in them (without rates), and the user's own
    connections and channels (``rabbit_mgmt_db:overview(User, ...)``)."""
    qs = [q for v in vhosts for q in broker.vhosts[v].queues.values()]
    ready = sum(q.message_count for q in qs)
    unacked = sum(q.unacked_count for q in qs)
    conns = network_connections(broker)
    counts = [0] * len(CHANNEL_STATS)
    for c in conns:
        if c.vhost.name in vhosts:
            for ch in c.sessions.values():
                for i, n in enumerate(channel_counts(ch)):
                    counts[i] += n
    own = [c for c in conns if c.user is not None and c.user.name == user]
    return {"message_stats": message_stats(CHANNEL_STATS, tuple(counts), None) if any(counts) else {},
            "queue_totals": with_rates(QUEUE_GAUGES, (ready + unacked, ready, unacked), None),
            "object_totals": {"queues": len(qs), "exchanges": sum(len(broker.vhosts[v].exchanges) for v in vhosts),
                              "connections": len(own), "channels": sum(len(c.sessions) for c in own)}}


def exchange_types() -> list[dict]:
    return [{"name": t, "description": EXCHANGE_TYPE_DESCRIPTIONS.get(t, ""), "enabled": True}
            for t in sorted(TYPES)]


def listeners(broker) -> list[dict]:
    s = broker.settings
    out = []
    if broker.port is not None and s.tcp_listener:
        out.append({"node": broker.node_name, "protocol": "amqp", "ip_address": s.host or "::",
                    "port": broker.port, "socket_opts": {"backlog": 1024, "nodelay": True}})
    ssl_port = getattr(broker, "ssl_port", None)
    if ssl_port is not None:
        out.append({"node": broker.node_name, "protocol": "amqp/ssl",
                    "ip_address": (s.ssl_host if s.ssl_host is not None else s.host) or "::",
                    "port": ssl_port, "socket_opts": {"backlog": 1024, "nodelay": True}})
    return out


def _fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def node_info(broker) -> dict:
    """``/api/nodes/{name}``: what this process can tell of itself (from /proc, resource)."""
    m = broker.monitor
    s = broker.settings
    d = {"name": broker.node_name, "type": "disc", "running": True, "os_pid": str(os.getpid()),
         "uptime": int((time.time() - broker.started_at) * 1000), "processors": os.cpu_count() or 1,
         "mem_used": m.rss, "mem_limit": m.memory_limit, "mem_alarm": "memory" in (m.alarms or ()),
         "mem_calculation_strategy": "rss", "disk_free_limit": m.disk_free_limit,
         "disk_free_alarm": "disk" in (m.alarms or ()), "partitions": [], "cluster_links": [],
         "rates_mode": "basic", "being_drained": False, "exchange_types": exchange_types(),
         "auth_mechanisms": [{"name": n, "description": "", "enabled": n in s.auth_mechanisms}
                             for n in ("PLAIN", "AMQPLAIN", "EXTERNAL")],
         "sockets_used": len(network_connections(broker)) + len(listeners(broker))}
    if s.data_dir:
        d["db_dir"] = s.data_dir
        if m.disk_free is None:
            try:
                d["disk_free"] = shutil.disk_usage(s.data_dir).free
            except OSError:
                pass
    if m.disk_free is not None:
        d["disk_free"] = m.disk_free
    fds = _fds()
    if fds is not None:
        d["fd_used"] = fds
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        d["fd_total"] = soft
    return dict(sorted(d.items()))


def typed_table(plain: dict | None) -> dict:
    """JSON arguments as the typed field table a client's method would carry."""
    return decode_table_typed(encode_table(plain), 0)[0] if plain else {}


# ---------------------------------------------------------------- rows for Prometheus

# a queue's values as rabbitmq_prometheus reads them (queue_coarse_metrics and queue_metrics)
def queue_objects(broker, vhosts=None) -> list:
    """The queues of ``vhosts`` (every vhost: None; unknown names are skipped), as opaque
    handles for :func:`queue_row`."""
    names = list(broker.vhosts) if vhosts is None else [v for v in vhosts if v in broker.vhosts]
    return [q for v in names for q in list(broker.vhosts[v].queues.values())]


def queue_row(q) -> tuple:
    """``(vhost, name, values in QUEUE_ROW order)``."""
    return q.vhost.name, q.name, queue_levels(q)


def channel_rows(broker) -> list:
    """``[(channel name, CHANNEL_GAUGES + CHANNEL_STATS values)]`` of the open channels."""
    out = []
    for c in network_connections(broker):
        for ch in list(c.sessions.values()):
            out.append((channel_name(ch), channel_gauges(ch) + channel_counts(ch)))
    return out


def connection_rows(broker) -> list:
    """``[(connection name, CONNECTION_ROW values)]``."""
    out = []
    for c in network_connections(broker):
        out.append((c.display_name, connection_row(c, socket_stats(c))))
    return out


def exchange_rows(broker) -> list:
    """``[(vhost, name, type, bindings)]`` of the exchanges but the default and internal ones
    (``rabbitmq_cluster_exchange_*``)."""
    return [(v.name, x.name, x.type_name, len(x.bindings)) for v in list(broker.vhosts.values())
            for x in list(v.exchanges.values()) if x.name != "" and not x.internal]


def vhost_names(broker) -> list[str]:
    return list(broker.vhosts)
