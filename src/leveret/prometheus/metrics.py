"""The metric families, as RabbitMQ 3.10.8's ``rabbitmq_prometheus`` plugin names and describes them.

Names, types, HELP texts and labels are those of ``prometheus_rabbitmq_core_metrics_collector``
(its ``METRICS_RAW`` table, grouped by the ETS table a family is read from: those group names are
what ``/metrics/detailed?family=`` takes), ``prometheus_rabbitmq_global_metrics_collector``
(``rabbitmq_global_*``, from ``rabbit_global_counters``) and ``prometheus_rabbitmq_alarm_metrics_collector``.
RabbitMQ's ``rabbitmq_*`` families that Leveret has no value for (Erlang VM internals, reductions,
the message store, Raft) are absent rather than faked; docs/operations.md lists both sets.

Three ways to read one table, as RabbitMQ's ``get_data``:

* aggregated (``/metrics``): one unlabelled sample, the sum over every object -- read from the
  statistics sampler's last sample (:class:`~leveret.broker.stats.Aggregates`, every
  ``collect_statistics_interval``, 5 s), as RabbitMQ sums the ETS tables the objects' statistics
  emission fills rather than asking the queues, so a value lags by up to that interval there
  too. The ``rabbitmq_global_*`` families and ``rabbitmq_consumers`` come from the same sample
  on every endpoint; the churn counters, object counts and node figures are read at the scrape;
* per object (``/metrics/per-object``, ``/metrics/detailed``): one sample per queue (labels
  ``vhost``, ``queue``), channel (``channel``) or connection (``channel``: RabbitMQ labels a
  connection with its process id under that name too). RabbitMQ's labels hold an Erlang pid;
  Leveret's hold the management API's name of the channel (``peer -> local (number)``) or
  connection. RabbitMQ breaks channel counters down per exchange (``vhost``, ``exchange``)
  and per queue (``vhost``, ``queue``); Leveret's channels count per channel only, so those
  families carry the ``channel`` label alone.
* ``/metrics/detailed`` also takes ``vhost=`` (repeatable; unknown names are ignored) which
  filters the queue tables, and names metrics ``rabbitmq_detailed_*`` (``rabbitmq_cluster_*``
  for ``vhost_status``, ``exchange_bindings``, ``exchange_names``).

A family is built as a :class:`Family` (columns, cheap to fill); :meth:`Family.client` turns it
into a ``prometheus_client`` metric family, which :class:`LeveretCollector` yields to a
``prometheus_client`` registry. The per-object families of 10,000 queues hold 100,000+
samples: :mod:`.exposition` writes those with a specialised encoder pinned to
``prometheus_client.generate_latest`` by ``tests/prometheus/test_exposition.py``.
"""
from __future__ import annotations

import functools
import importlib.metadata

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily

from ..broker import introspect
from ..broker.stats import CHANNEL_GAUGES, CHANNEL_STATS, CONNECTION_ROW, QUEUE_ROW, QUEUE_STATS, is_client

RABBITMQ_VERSION = introspect.RABBITMQ_VERSION
PROTOCOL = "amqp091"
QUEUE_TYPES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue"}   # rabbit_*_queue modules
PAUSE = object()        # yielded between chunks of work: the server lets the event loop run


class Family:
    """One metric family: name (with RabbitMQ's ``_total`` on counters), type, HELP, label
    names and samples (label values, value)."""

    __slots__ = ("name", "type", "help", "labels", "samples")

    def __init__(self, name: str, type_: str, help_: str, labels: tuple = (), samples: list | None = None):
        assert type_ in ("gauge", "counter", "untyped")
        assert type_ != "counter" or name.endswith("_total"), name
        self.name, self.type, self.help, self.labels = name, type_, help_, tuple(labels)
        self.samples = samples if samples is not None else []

    def client(self):
        """The ``prometheus_client`` metric family."""
        cls = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily, "untyped": UnknownMetricFamily}[self.type]
        fam = cls(self.name, self.help, labels=list(self.labels))
        for values, v in self.samples:
            fam.add_metric(list(values), v)
        return fam


# ---------------------------------------------------------------- RabbitMQ's tables
# (table, [(name, type, help, value index)]). The index points into the row Leveret reads
# for each object of that kind (below); None marks RabbitMQ families Leveret does not produce.

_Q = {k: i for i, k in enumerate(QUEUE_ROW)}
_C = {k: i for i, k in enumerate(CHANNEL_STATS)}
_N = {k: i for i, k in enumerate(CONNECTION_ROW)}

QUEUE_TABLES = {
    "queue_coarse_metrics": [
        ("queue_messages_ready", "gauge", "Messages ready to be delivered to consumers", _Q["messages_ready"]),
        ("queue_messages_unacked", "gauge", "Messages delivered to consumers but not yet acknowledged",
         _Q["messages_unacknowledged"]),
        ("queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth", _Q["messages"]),
    ],
    "queue_consumer_count": [
        ("queue_consumers", "gauge", "Consumers on a queue", _Q["consumers"]),
    ],
    "queue_metrics": [
        ("queue_consumers", "gauge", "Consumers on a queue", _Q["consumers"]),
        ("queue_messages_ram", "gauge", "Ready and unacknowledged messages stored in memory", _Q["messages_ram"]),
        ("queue_messages_ram_bytes", "gauge", "Size of ready and unacknowledged messages stored in memory",
         _Q["message_bytes_ram"]),
        ("queue_messages_ready_ram", "gauge", "Ready messages stored in memory", _Q["messages_ready_ram"]),
        ("queue_messages_unacked_ram", "gauge", "Unacknowledged messages stored in memory",
         _Q["messages_unacknowledged_ram"]),
        ("queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages", _Q["message_bytes_ready"]),
        ("queue_messages_paged_out", "gauge", "Messages paged out to disk", _Q["messages_paged_out"]),
        ("queue_messages_paged_out_bytes", "gauge", "Size in bytes of messages paged out to disk",
         _Q["message_bytes_paged_out"]),
    ],
}

CHANNEL_TABLES = {
    "channel_metrics": [     # indexes into CHANNEL_GAUGES
        ("channel_consumers", "gauge", "Consumers on a channel", 0),
        ("channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages", 1),
        ("channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages", 2),
        ("channel_messages_uncommitted", "gauge", "Messages received in a transaction but not yet committed", 3),
        ("channel_acks_uncommitted", "gauge", "Message acknowledgements in a transaction not yet committed", 4),
        ("consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer", 5),
        ("channel_prefetch", "gauge", "Total limit of unacknowledged messages for all consumers on a channel", 6),
    ],
    "channel_exchange_metrics": [     # indexes into CHANNEL_STATS (which follow the gauges)
        ("channel_messages_published_total", "counter",
         "Total number of messages published into an exchange on a channel", _C["publish"]),
        ("channel_messages_confirmed_total", "counter",
         "Total number of messages published into an exchange and confirmed on the channel", _C["confirm"]),
        ("channel_messages_unroutable_returned_total", "counter",
         "Total number of messages published as mandatory into an exchange and returned to the publisher as "
         "unroutable", _C["return_unroutable"]),
        ("channel_messages_unroutable_dropped_total", "counter",
         "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
         _C["drop_unroutable"]),
    ],
    "channel_queue_metrics": [
        ("channel_get_ack_total", "counter",
         "Total number of messages fetched with basic.get in manual acknowledgement mode", _C["get"]),
        ("channel_get_total", "counter",
         "Total number of messages fetched with basic.get in automatic acknowledgement mode", _C["get_no_ack"]),
        ("channel_messages_delivered_ack_total", "counter",
         "Total number of messages delivered to consumers in manual acknowledgement mode", _C["deliver"]),
        ("channel_messages_delivered_total", "counter",
         "Total number of messages delivered to consumers in automatic acknowledgement mode", _C["deliver_no_ack"]),
        ("channel_messages_redelivered_total", "counter", "Total number of messages redelivered to consumers",
         _C["redeliver"]),
        ("channel_messages_acked_total", "counter", "Total number of messages acknowledged by consumers", _C["ack"]),
        ("channel_get_empty_total", "counter", "Total number of times basic.get operations fetched no message",
         _C["get_empty"]),
    ],
}

CONNECTION_TABLES = {
    "connection_coarse_metrics": [
        ("connection_incoming_bytes_total", "counter", "Total number of bytes received on a connection",
         _N["recv_oct"]),
        ("connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection", _N["send_oct"]),
    ],
    "connection_metrics": [
        ("connection_incoming_packets_total", "counter", "Total number of packets received on a connection",
         _N["recv_cnt"]),
        ("connection_outgoing_packets_total", "counter", "Total number of packets sent on a connection",
         _N["send_cnt"]),
        ("connection_pending_packets", "gauge", "Number of packets waiting to be sent on a connection",
         _N["send_pend"]),
        ("connection_channels", "gauge", "Channels on a connection", _N["channels"]),
    ],
}

CHURN_TABLE = [     # connection_churn_metrics: Sampler.churn keys
    ("connections_opened_total", "Total number of connections opened", "connections_opened"),
    ("connections_closed_total", "Total number of connections closed or terminated", "connections_closed"),
    ("channels_opened_total", "Total number of channels opened", "channels_opened"),
    ("channels_closed_total", "Total number of channels closed", "channels_closed"),
    ("queues_declared_total", "Total number of queues declared", "queues_declared"),
    ("queues_created_total", "Total number of queues created", "queues_created"),
    ("queues_deleted_total", "Total number of queues deleted", "queues_deleted"),
]

NODE_COARSE = [     # node_coarse_metrics: /api/nodes fields
    ("process_open_fds", "Open file descriptors", "fd_used"),
    ("process_open_tcp_sockets", "Open TCP sockets", "sockets_used"),
    ("process_resident_memory_bytes", "Memory used in bytes", "mem_used"),
    ("disk_space_available_bytes", "Disk space available in bytes", "disk_free"),
]
NODE = [            # node_metrics
    ("process_max_fds", "Open file descriptors limit", "fd_total"),
    ("process_max_tcp_sockets", "Open TCP sockets limit", "fd_total"),     # (no separate socket budget)
    ("resident_memory_limit_bytes", "Memory high watermark in bytes", "mem_limit"),
    ("disk_space_available_limit_bytes", "Free disk space low watermark in bytes", "disk_free_limit"),
    ("erlang_uptime_seconds", "Node uptime", "uptime"),
]

TOTALS = [
    ("connections", "Connections currently open"),
    ("channels", "Channels currently open"),
    ("consumers", "Consumers currently connected"),
    ("queues", "Queues available"),
]

# rabbit_global_counters: (name, help, Leveret's source)
GLOBAL_PROTOCOL = [
    ("messages_confirmed_total", "Total number of messages confirmed to publishers", "confirm"),
    ("messages_received_confirm_total",
     "Total number of messages received from publishers expecting confirmations", "received_confirm"),
    ("messages_received_total", "Total number of messages received from publishers", "publish"),
    ("messages_routed_total", "Total number of messages routed to queues or streams", "routed"),
    ("messages_unroutable_dropped_total",
     "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
     "drop_unroutable"),
    ("messages_unroutable_returned_total",
     "Total number of messages published as mandatory into an exchange and returned to the publisher as "
     "unroutable", "return_unroutable"),
]
_QS = {k: i for i, k in enumerate(QUEUE_STATS)}
GLOBAL_QUEUE_TYPE = [     # indexes into QUEUE_STATS, or a tuple of them (summed)
    ("messages_acknowledged_total", "Total number of messages acknowledged by consumers", (_QS["ack"],)),
    ("messages_delivered_consume_auto_ack_total",
     "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
     (_QS["deliver_no_ack"],)),
    ("messages_delivered_consume_manual_ack_total",
     "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
     (_QS["deliver"],)),
    ("messages_delivered_get_auto_ack_total",
     "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
     (_QS["get_no_ack"],)),
    ("messages_delivered_get_manual_ack_total",
     "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
     (_QS["get"],)),
    ("messages_delivered_total", "Total number of messages delivered to consumers",
     (_QS["deliver"], _QS["deliver_no_ack"], _QS["get"], _QS["get_no_ack"])),
    ("messages_get_empty_total", "Total number of times basic.get operations fetched no message",
     (_QS["get_empty"],)),
    ("messages_redelivered_total", "Total number of messages redelivered to consumers", (_QS["redeliver"],)),
]

ALARMS = [
    ("alarms_file_descriptor_limit", "is 1 if file descriptor limit alarm is in effect", None),
    ("alarms_free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect", "disk"),
    ("alarms_memory_used_watermark", "is 1 if VM memory watermark alarm is in effect", "memory"),
]

# the families /metrics/detailed?family= accepts, in RabbitMQ's order
DETAILED_TABLES = ("connection_churn_metrics", "node_coarse_metrics", "node_metrics", "queue_coarse_metrics",
                   "queue_consumer_count", "queue_metrics", "channel_metrics", "channel_exchange_metrics",
                   "channel_queue_metrics", "connection_coarse_metrics", "connection_metrics")
CLUSTER_TABLES = ("vhost_status", "exchange_bindings", "exchange_names")


# ---------------------------------------------------------------- reading the broker

def queue_rows(broker, vhosts=None, chunk: int = 1000):
    """Yields PAUSE every ``chunk`` queues, then returns [((vhost, queue), values)]."""
    rows = []
    for i, q in enumerate(introspect.queue_objects(broker, vhosts), 1):
        vhost, name, values = introspect.queue_row(q)
        rows.append(((vhost, name), values))
        if i % chunk == 0:
            yield PAUSE
    return rows


def _fams(prefix: str, table: list, rows: list, labels: tuple, offset: int = 0):
    """One per-object family per entry of ``table``, over ``rows`` [(label values, values)]
    (a None value: no sample); PAUSE after each."""
    for name, type_, help_, idx in table:
        i = idx + offset
        f = Family(prefix + name, type_, help_, labels)
        f.samples = [(lab, vals[i]) for lab, vals in rows]
        if any(v is None for _, v in f.samples):
            f.samples = [(lab, v) for lab, v in f.samples if v is not None]
        yield f
        yield PAUSE


def _sums(prefix: str, table: list, sums: list, offset: int = 0):
    """One unlabelled family per entry of ``table``: the node-wide sum (``sums``, from the
    statistics sample: :class:`~leveret.broker.stats.Aggregates`)."""
    for name, type_, help_, idx in table:
        yield Family(prefix + name, type_, help_, (), [((), sums[idx + offset])])


def core_families(broker, prefix: str, per_object: bool, tables, vhosts=None, agg=None):
    """RabbitMQ's core collector over ``tables`` (names of its METRICS_RAW groups): per object
    from the objects now, aggregated from the statistics sample ``agg`` (default: the last)."""
    tables = [t for t in tables if not (t == "queue_consumer_count" and "queue_metrics" in tables)]
    stats = broker.stats
    node = introspect.node_info(broker) if {"node_coarse_metrics", "node_metrics"} & set(tables) else {}
    agg = None if per_object else (agg or stats.current())
    qrows = None
    channels = connections = None
    for t in tables:
        if t == "connection_churn_metrics":
            for name, help_, key in CHURN_TABLE:
                yield Family(prefix + name, "counter", help_, (), [((), stats.churn[key])])
        elif t in ("node_coarse_metrics", "node_metrics"):
            for name, help_, key in (NODE_COARSE if t == "node_coarse_metrics" else NODE):
                v = node.get(key)
                if key == "uptime" and v is not None:
                    v = v / 1000
                f = Family(prefix + name, "gauge", help_)
                if v is not None:
                    f.samples.append(((), v))
                yield f
        elif t in QUEUE_TABLES:
            if agg is not None:
                yield from _sums(prefix, QUEUE_TABLES[t], agg.queues)
                continue
            if qrows is None:
                qrows = yield from queue_rows(broker, vhosts)
            yield from _fams(prefix, QUEUE_TABLES[t], qrows, ("vhost", "queue"))
        elif t in CHANNEL_TABLES:
            offset = len(CHANNEL_GAUGES) if t != "channel_metrics" else 0
            if agg is not None:
                yield from _sums(prefix, CHANNEL_TABLES[t], agg.channels, offset)
                continue
            if channels is None:
                channels = [((name,), values) for name, values in introspect.channel_rows(broker)]
            yield from _fams(prefix, CHANNEL_TABLES[t], channels, ("channel",), offset)
        elif t in CONNECTION_TABLES:
            if agg is not None:
                yield from _sums(prefix, CONNECTION_TABLES[t], agg.connections)
                continue
            if connections is None:
                connections = [((name,), values) for name, values in introspect.connection_rows(broker)]
            yield from _fams(prefix, CONNECTION_TABLES[t], connections, ("channel",))


def cluster_families(broker, tables):
    """``rabbitmq_cluster_*`` (``/metrics/detailed`` only)."""
    for t in tables:
        if t == "vhost_status":
            yield Family("rabbitmq_cluster_vhost_status", "gauge", "Whether a given vhost is running", ("vhost",),
                         [((v,), 1) for v in introspect.vhost_names(broker)])
        elif t in ("exchange_bindings", "exchange_names"):
            f = (Family("rabbitmq_cluster_exchange_bindings", "gauge",
                        "Number of bindings for an exchange. This value is cluster-wide.",
                        ("vhost", "exchange", "type"))
                 if t == "exchange_bindings" else
                 Family("rabbitmq_cluster_exchange_name", "gauge",
                        "Enumerates exchanges without any additional info. This value is cluster-wide. "
                        "A cheaper alternative to `exchange_bindings`", ("vhost", "exchange", "type")))
            f.samples = [((v, x, typ), n if t == "exchange_bindings" else 1)
                         for v, x, typ, n in introspect.exchange_rows(broker)]
            yield f


def totals(broker, agg):
    """``rabbitmq_connections`` & co.: the object counts now, the consumers from the sample ``agg``."""
    conns = [c for c in list(broker.connections) if is_client(c)]
    t = {"connections": len(conns), "channels": sum(len(c.sessions) for c in conns),
         "consumers": agg.node["consumers"],
         "queues": sum(len(v.queues) for v in list(broker.vhosts.values()))}
    for name, help_ in TOTALS:
        yield Family("rabbitmq_" + name, "gauge", help_, (), [((), t[name])])


def identity(broker):
    labels = ("product_name", "product_version", "rabbitmq_version", "prometheus_plugin_version",
              "prometheus_client_version")
    yield Family("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info", labels,
                 [((broker.settings.product_name, broker.settings.product_version, RABBITMQ_VERSION, RABBITMQ_VERSION, _client_version()), 1)])
    yield Family("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info",
                 ("rabbitmq_node", "rabbitmq_cluster"), [((broker.node_name, broker.cluster_name), 1)])


@functools.cache
def _client_version() -> str:
    try:
        return importlib.metadata.version("prometheus_client")
    except importlib.metadata.PackageNotFoundError:
        return ""


def global_families(broker, agg):
    """``rabbitmq_global_*``: node totals that only grow (closed channels, deleted queues
    included), as ``rabbit_global_counters``; from the statistics sample ``agg``."""
    by = agg.node
    yield Family("rabbitmq_global_consumers", "gauge", "Current number of consumers", ("protocol",),
                 [((PROTOCOL,), by["consumers"])])
    per_type = agg.by_type
    for name, help_, idx in GLOBAL_QUEUE_TYPE:
        f = Family("rabbitmq_global_" + name, "counter", help_, ("protocol", "queue_type"))
        for qt in sorted(set(QUEUE_TYPES) | set(per_type)):
            counts = per_type.get(qt)
            f.samples.append(((PROTOCOL, QUEUE_TYPES.get(qt, qt)), sum(counts[i] for i in idx) if counts else 0))
        yield f
    for name, help_, key in GLOBAL_PROTOCOL:
        yield Family("rabbitmq_global_" + name, "counter", help_, ("protocol",), [((PROTOCOL,), by[key])])
    yield Family("rabbitmq_global_publishers", "gauge", "Current number of publishers", ("protocol",),
                 [((PROTOCOL,), by["publishers"])])


def node_families(broker):
    """``process_start_time_seconds`` and the alarms (``/metrics`` only, as in RabbitMQ)."""
    yield Family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                 (), [((), int(broker.started_at))])
    node = introspect.node_info(broker)
    on = {"memory": node["mem_alarm"], "disk": node["disk_free_alarm"], None: False}   # (no fd alarm)
    for name, help_, key in ALARMS:
        yield Family("rabbitmq_" + name, "untyped", help_, (), [((), 1 if on[key] else 0)])


# ---------------------------------------------------------------- the three endpoints

ALL_TABLES = DETAILED_TABLES


def aggregated(broker, agg=None):
    """``/metrics`` (``agg``: the statistics sample to read, by default the last)."""
    agg = agg or broker.stats.current()
    yield from node_families(broker)
    yield from core_families(broker, "rabbitmq_", False, ALL_TABLES, agg=agg)
    yield from totals(broker, agg)
    yield from identity(broker)
    yield from global_families(broker, agg)


def per_object(broker, agg=None):
    """``/metrics/per-object``."""
    agg = agg or broker.stats.current()
    yield from core_families(broker, "rabbitmq_", True, ALL_TABLES)
    yield from totals(broker, agg)
    yield from identity(broker)
    yield from global_families(broker, agg)


def detailed(broker, families: list[str] | None, vhosts: list[str] | None):
    """``/metrics/detailed``: only the ``families`` asked for; ``vhosts`` filters the queue tables."""
    asked = set(families or ())
    yield from core_families(broker, "rabbitmq_detailed_", True, [t for t in DETAILED_TABLES if t in asked],
                             vhosts)
    yield from cluster_families(broker, [t for t in CLUSTER_TABLES if t in asked])
    yield from identity(broker)


class LeveretCollector:
    """A ``prometheus_client`` collector over one of the generators above:
    ``REGISTRY.register(LeveretCollector(broker, aggregated))`` exports Leveret's metrics
    from a registry; ``generate_latest(LeveretCollector(...))`` encodes them."""

    def __init__(self, broker, families=aggregated, *args):
        self.broker, self.families, self.args = broker, families, args

    def collect(self):
        for f in self.families(self.broker, *self.args):
            if f is not PAUSE:
                yield f.client()

