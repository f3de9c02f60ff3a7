"""The control socket's operations commands: listings, queue and connection actions,
policies, parameters, definitions and the node's status, for ``leveret ctl`` and
``leveret diagnostics``.

Listings return one plain dict per object with ``rabbitmqctl``'s info-item names
(``rabbit_amqqueue:info_keys/0``, ``rabbit_reader:info_keys/0``, ``rabbit_channel:info_keys/0``,
``rabbit_binding:info_keys/0``); the client picks the columns and formats them. Values are
read through ``broker/introspect.py``. A value RabbitMQ prints and Leveret has no counterpart
for (``memory``, ``reductions``, ``disk_reads``, ...) is left out of the row, so the client
prints it empty, as ``rabbitmqctl`` prints an item a queue type does not have.

**Process ids.** RabbitMQ names a connection and a channel by an Erlang pid
(``<rabbit@host.1796597703.26688.244>``), which ``close_connection`` takes. Leveret gives each
connection a number when it is first listed and prints ``<leveret@host.N.0>`` for it and
``<leveret@host.N.CH>`` for its channel CH; ``close_connection`` takes that pid or the
connection's name (``127.0.0.1:50000 -> 127.0.0.1:5672``).
"""
from __future__ import annotations

import itertools
import os
import platform
import resource
import sys
import time
import weakref

from .. import __version__
from ..amqp.codec import TYPE_NAMES, Typed, table_plain
from ..broker import introspect, parameters
from ..broker.admin import AdminError, vhost_tags
from ..broker.definitions import DefinitionsError, export_definitions, import_definitions
from ..broker.health import alarms, listeners
from .control import command

_numbers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_counter = itertools.count(1)


def pid(broker, conn, channel: int = 0) -> str:
    n = _numbers.get(conn)
    if n is None:
        n = _numbers[conn] = next(_counter)
    return f"<{broker.node_name}.{n}.{channel}>"


def typed_arguments(table: dict | None) -> list:
    """Field-table arguments as ``rabbitmqctl`` lists them: ``[name, type, value]`` each."""
    out = []
    for k, v in (table or {}).items():
        if isinstance(v, Typed):
            out.append([k, TYPE_NAMES.get(v.tag, v.tag), introspect.json_value(table_plain(v))])
        else:
            kind = ("bool" if isinstance(v, bool) else "long" if isinstance(v, int) else
                    "double" if isinstance(v, float) else "table" if isinstance(v, dict) else
                    "array" if isinstance(v, list) else "longstr")
            out.append([k, kind, introspect.json_value(v)])
    return out


# ---------------------------------------------------------------- listings

_CLASSIC_ONLY = ("exclusive", "messages_ram", "messages_ready_ram", "messages_unacknowledged_ram",
                 "message_bytes_ram", "message_bytes_ready", "message_bytes_unacknowledged",
                 "exclusive_consumer_tag", "exclusive_consumer_pid")


@command("list_queues")
def _list_queues(b, vhost: str):
    if vhost not in b.vhosts:
        return []
    out = []
    for q in b.vhosts[vhost].queues.values():
        d = introspect.queue_info(q)
        owner = q.exclusive_owner
        row = {"name": q.name, "durable": d["durable"], "auto_delete": d["auto_delete"], "exclusive": d["exclusive"],
               "arguments": typed_arguments(q.arguments), "policy": d["policy"] or "",
               "type": q.queue_type, "state": d["state"], "messages": d["messages"],
               "messages_ready": d["messages_ready"], "messages_unacknowledged": d["messages_unacknowledged"],
               "messages_ram": d["messages_ram"], "messages_ready_ram": d["messages_ready_ram"],
               "messages_unacknowledged_ram": d["messages_unacknowledged_ram"],
               "message_bytes_ram": d["message_bytes_ram"], "message_bytes_ready": d["message_bytes_ready"],
               "consumers": d["consumers"], "exclusive_consumer_tag": d["exclusive_consumer_tag"] or "",
               "online": [b.node_name], "members": [b.node_name], "leader": b.node_name,
               "pid": f"<{b.node_name}.{q.vhost.name}.{q.name}>",
               "owner_pid": pid(b, owner) if owner is not None and getattr(owner, "peer", None) else ""}
        if q.queue_type != "classic":
            for k in _CLASSIC_ONLY:
                row.pop(k, None)
        else:
            for k in ("online", "members", "leader"):
                row.pop(k)
        out.append(row)
    return out


@command("list_exchanges")
def _list_exchanges(b, vhost: str):
    if vhost not in b.vhosts:
        return []
    return [{"name": x.name, "type": x.type_name, "durable": bool(x.durable), "auto_delete": bool(x.auto_delete),
             "internal": bool(x.internal), "arguments": typed_arguments(x.arguments),
             "policy": x.policy.name if x.policy is not None else ""}
            for x in b.vhosts[vhost].exchanges.values()]


@command("list_bindings")
def _list_bindings(b, vhost: str):
    if vhost not in b.vhosts:
        return []
    v = b.vhosts[vhost]
    out = [{"source_name": "", "source_kind": "exchange", "destination_name": q.name, "destination_kind": "queue",
            "routing_key": q.name, "arguments": []} for q in v.queues.values()]
    for x in v.exchanges.values():
        for bd in x.bindings.values():
            out.append({"source_name": x.name, "source_kind": "exchange", "destination_name": bd.destination.name,
                        "destination_kind": bd.destination.kind, "routing_key": bd.routing_key,
                        "arguments": typed_arguments(bd.arguments)})
    return out


@command("list_connections")
def _list_connections(b):
    out = []
    for c in introspect.network_connections(b):
        d = introspect.connection_info(c)
        d["pid"] = pid(b, c)
        d["protocol"] = [0, 9, 1]
        d["client_properties"] = typed_arguments(c.client_properties)
        d["send_pend"] = 0
        for k in list(d):
            if d[k] is None:
                d[k] = ""
        out.append(d)
    return out


@command("list_channels")
def _list_channels(b):
    out = []
    for c in introspect.network_connections(b):
        for number, ch in sorted(c.sessions.items()):
            d = introspect.channel_info(ch)
            d["pid"] = pid(b, c, number)
            d["connection"] = pid(b, c)
            out.append(d)
    return out


@command("list_consumers")
def _list_consumers(b, vhost: str):
    if vhost not in b.vhosts:
        return []
    out = []
    for q in b.vhosts[vhost].queues.values():
        for c in q.consumers:
            d = introspect.consumer_info(c)
            out.append({"queue_name": q.name, "channel_pid": pid(b, c.channel.conn, c.channel.number),
                        "consumer_tag": d["consumer_tag"], "ack_required": d["ack_required"],
                        "prefetch_count": d["prefetch_count"], "active": d["active"],
                        "activity_status": d["activity_status"], "arguments": typed_arguments(c.arguments)})
    return out


# ---------------------------------------------------------------- actions

@command("purge_queue")
def _purge_queue(b, vhost: str, name: str):
    return b.purge_queue(vhost, name)


@command("delete_queue")
def _delete_queue(b, vhost: str, name: str, if_empty: bool = False, if_unused: bool = False):
    return b.delete_queue(vhost, name, if_empty=if_empty, if_unused=if_unused)


@command("close_connection")
def _close_connection(b, connection: str, reason: str):
    """Close the connection with this pid or name (320 CONNECTION_FORCED - reason); a pid of
    no connection is no error (rabbitmqctl's neither)."""
    for c in introspect.network_connections(b):
        if connection in (pid(b, c), c.display_name):
            c.force_close(f"CONNECTION_FORCED - {reason}")
            return 1
    if connection.startswith("<") and connection.endswith(">"):
        return 0
    raise AdminError("invalid_pid_syntax", connection)


@command("close_all_connections")
def _close_all_connections(b, reason: str, vhost: str | None = None, limit: int | None = None):
    conns = [c for c in introspect.network_connections(b) if vhost is None or c.vhost.name == vhost]
    if limit is not None:
        conns = conns[:limit]
    for c in conns:
        c.force_close(f"CONNECTION_FORCED - {reason}")
    return len(conns)


# ---------------------------------------------------------------- policies and parameters

@command("set_policy")
def _set_policy(b, vhost: str, name: str, pattern: str, definition, priority: int, apply_to: str,
                operator: bool = False):
    b.put_policy(vhost, name, pattern, definition, priority, apply_to, operator=operator)


@command("clear_policy")
def _clear_policy(b, vhost: str, name: str, operator: bool = False):
    v = b.vhosts.get(vhost)
    if v is None or name not in (v.operator_policies if operator else v.policies):
        raise AdminError("no_such_parameter", "Parameter does not exist")
    v.clear_policy(name, "operator_policy" if operator else "policy")


@command("list_policies")
def _list_policies(b, vhost: str, operator: bool = False):
    b._vhost(vhost)
    return b.list_policies(vhost, operator=operator)


@command("set_parameter")
def _set_parameter(b, vhost: str, component: str, name: str, value):
    if component in ("policy", "operator_policy"):     # rabbit_policy:validate/5 refuses these
        raise AdminError("invalid_parameter", "policies may not be set using this method")
    parameters.set_parameter(b, component, vhost, name, value)


@command("clear_parameter")
def _clear_parameter(b, vhost: str, component: str, name: str):
    if component not in parameters.COMPONENTS:
        raise AdminError("no_such_parameter", "Parameter does not exist")
    parameters.clear_parameter(b, component, vhost, name)


@command("list_parameters")
def _list_parameters(b, vhost: str):
    """Every parameter of the vhost, operator policies included (as ``rabbitmqctl`` lists
    them; user policies are not)."""
    b._vhost(vhost)
    return [p for p in parameters.list_parameters(b, vhost=vhost)
            + parameters.list_parameters(b, "operator_policy", vhost)]


@command("set_global_parameter")
def _set_global_parameter(b, name: str, value):
    b.set_global_parameter(name, value)


@command("clear_global_parameter")
def _clear_global_parameter(b, name: str):
    b.clear_global_parameter(name)


@command("list_global_parameters")
def _list_global_parameters(b):
    return [{"name": k, "value": v} for k, v in b.global_parameters.items()]


# ---------------------------------------------------------------- definitions

@command("export_definitions")
def _export_definitions(b):
    """The management API's export as ``rabbitmqctl export_definitions`` writes it: each
    queue with its ``type``, exchanges without ``internal``, vhosts with their ``metadata``
    and ``limits`` (``[]``: a vhost's limits are exported as ``vhost-limits`` parameters)."""
    data = export_definitions(b)
    for x in data["exchanges"]:       # (not in rabbitmqctl's export)
        x.pop("internal", None)
    data["vhosts"] = [{"limits": [], "metadata": {"description": getattr(v, "description", "") or "",
                                                   "tags": vhost_tags(v)}, "name": v.name}
                      for v in b.vhosts.values()]
    for q in data["queues"]:
        queue = b.vhosts[q["vhost"]].queues.get(q["name"])
        if queue is not None:
            q["type"] = queue.queue_type
    return data


@command("import_definitions")
def _import_definitions(b, definitions):
    try:
        import_definitions(b, definitions)
    except DefinitionsError as e:
        raise AdminError("definitions_error", str(e)) from None


# ---------------------------------------------------------------- the node

def memory_breakdown(b) -> dict:
    """Where Leveret's memory goes, in bytes, from what it can measure: the bodies of the
    messages its queues hold in memory (``message_bodies``: ready and unacknowledged bytes
    counted by the queues) and the rest of the process's resident set (``other``). RabbitMQ's
    categories are Erlang's (processes, ETS tables, atoms, ...): Leveret has none of them."""
    rss = introspect_rss()
    bodies = sum(q.ready_bytes for v in b.vhosts.values() for q in v.queues.values())
    bodies = min(bodies, rss)
    return {"total": rss, "parts": {"message_bodies": bodies, "other": rss - bodies}}


def introspect_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@command("node_status")
def _node_status(b):
    info = introspect.node_info(b)
    totals = introspect.object_totals(b)
    s = b.settings
    return {"node": b.node_name, "pid": os.getpid(), "os": platform.system(),
            "uptime": int(time.time() - b.started_at), "product_name": s.product_name, "product_version": s.product_version,
            "leveret_version": __version__,
            "rabbitmq_version": introspect.RABBITMQ_VERSION,
            "python_version": sys.version.split()[0], "python_implementation": platform.python_implementation(),
            "data_directory": s.data_dir or "", "config_files": [p for p in [getattr(s, "config_file", None)] if p],
            "alarms": alarms(b), "memory": memory_breakdown(b),
            "vm_memory_calculation_strategy": "rss", "vm_memory_high_watermark_limit": b.monitor.memory_limit,
            "vm_memory_high_watermark_setting": s.memory_high_watermark,
            "disk_free": info.get("disk_free"), "disk_free_limit": b.monitor.disk_free_limit,
            "file_descriptors": {"total_used": info.get("fd_used"), "total_limit": info.get("fd_total"),
                                 "sockets_used": info.get("sockets_used")},
            "totals": {"virtual_host_count": len(b.vhosts), "connection_count": totals["connections"],
                       "queue_count": totals["queues"]},
            "listeners": [{"node": b.node_name, "protocol": proto, "port": port,
                           "interface": _interface(b, proto)} for proto, port in listeners(b)],
            "is_under_maintenance": False}


def _interface(b, proto: str) -> str:
    s = b.settings
    host = {"amqp": s.host, "amqp/ssl": s.ssl_host if s.ssl_host is not None else s.host,
            "http": getattr(s, "management_host", s.host)}.get(proto, s.host)
    return f"[{host}]" if host and ":" in host else (host or "[::]")


@command("environment")
def _environment(b):
    """The broker's settings (RabbitMQ prints its applications' environments)."""
    out = {}
    for k, v in sorted(vars(b.settings).items()):
        if "password" in k or "secret" in k:
            continue
        if isinstance(v, tuple):
            v = list(v)
        out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
    return out
