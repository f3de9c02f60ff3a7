"""Definitions: the whole broker's (or one vhost's) configuration as RabbitMQ's JSON, out and in.

**Export** (:func:`export_definitions`) is ``GET /api/definitions`` of RabbitMQ 3.10's
management plugin (``rabbit_mgmt_wm_definitions``), key for key: ``rabbit_version``,
``rabbitmq_version``, ``product_name``, ``product_version``, then ``users`` (name,
password_hash, hashing_algorithm, tags, limits), ``vhosts`` (name only), ``permissions``,
``topic_permissions``, ``parameters`` (not policies), ``global_parameters``, ``policies``
(operator policies are not exported), ``queues`` (every queue but exclusive ones, durable or
not), ``exchanges`` (not the default one, nor any ``amq.*``), ``bindings`` (not those of the
default exchange, nor to a queue that is not exported). One vhost's export
(``/api/definitions/{vhost}``) is ``rabbit_version``, parameters, policies, queues, exchanges
and bindings without their ``vhost`` fields. ``rabbit_version`` is the RabbitMQ version whose
format this is (3.10.8); ``product_name``/``product_version`` are the settings' (RabbitMQ 3.10.8 unless product.name /
product.version say otherwise).

**Import** (:func:`import_definitions`) is ``rabbit_definitions:apply_defs``, shared by the
management API's ``POST /api/definitions[/{vhost}]`` and ``load_definitions`` at start
(:mod:`.definitions_file`): users (``put_user``: an existing one is updated), vhosts (with their
metadata), permissions, topic permissions, exchanges, global parameters, policies,
parameters, queues, bindings -- in that order. Queues and exchanges that exist are left as
they are; names starting ``amq.`` are skipped. One vhost's import takes exchanges,
parameters, policies, queues and bindings into that vhost, whatever their ``vhost`` fields
say. The first failure stops the import (what came before it stays, as in RabbitMQ) with a
:class:`DefinitionsError`; exports since 3.9 (``rabbitmqctl export_definitions``) carry a
queue's type apart in ``type``, which is honoured.
"""
from __future__ import annotations

import base64
import datetime
import decimal

from ..amqp.codec import Typed, decode_table_typed, encode_table, json_table_typed
from ..amqp.errors import AMQPError
from ..auth.passwords import encode_hash
from .admin import AdminError
from .parameters import list_parameters, set_parameter
from .queue import queue_class
from .queue.arguments import check_queue_args

RABBIT_VERSION = "3.10.8"       # the RabbitMQ whose definitions format this is


class DefinitionsError(ValueError):
    """An import that failed; ``reason`` is what RabbitMQ's API reports (a string or a
    JSON-able term such as ``["no_such_vhost", "undefined"]``)."""

    def __init__(self, message: str, reason=None):
        super().__init__(message)
        self.reason = reason if reason is not None else message


# ------------------------------------------------------------ values

def json_value(v):
    """An AMQP table value (typed or plain) as plain JSON, as RabbitMQ's management shows
    arguments."""
    if isinstance(v, Typed):
        v = v.value
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(v).decode()
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, datetime.datetime):
        return int(v.timestamp())
    return v


def _typed(args) -> dict:
    """Plain JSON arguments as the typed table a client's declare would carry."""
    if not args:
        return {}
    if not isinstance(args, dict):
        raise DefinitionsError(f"arguments must be a JSON object, not {args!r}")
    return decode_table_typed(encode_table(args), 0)[0]


def _binding_args(args) -> dict:
    """A binding's JSON arguments typed as RabbitMQ's import types them
    (``rabbit_misc:to_amqp_table``: integers are ``long``), which its ``properties_key`` hashes."""
    if not args:
        return {}
    if not isinstance(args, dict):
        raise DefinitionsError(f"arguments must be a JSON object, not {args!r}")
    try:
        return json_table_typed(args)
    except ValueError as e:
        raise DefinitionsError(f"binding arguments: {e}") from None


# ------------------------------------------------------------ export

def _user(u) -> dict:
    return {"name": u.name, "password_hash": encode_hash(u.password_hash), "hashing_algorithm": u.algorithm,
            "tags": list(u.tags), "limits": dict(u.limits)}


def _queues(broker, vhosts) -> list[dict]:
    return [{"name": q.name, "vhost": v.name, "durable": q.durable, "auto_delete": q.auto_delete,
             "arguments": json_value(q.arguments)}
            for v in vhosts for q in sorted(v.queues.values(), key=lambda q: q.name)
            if q.exclusive_owner is None and not q.deleted]


def _exchanges(vhosts) -> list[dict]:
    return [{"name": x.name, "vhost": v.name, "type": x.type_name, "durable": x.durable,
             "auto_delete": x.auto_delete, "internal": x.internal, "arguments": json_value(x.arguments)}
            for v in vhosts for x in sorted(v.exchanges.values(), key=lambda x: x.name)
            if x.name and not x.name.startswith("amq.")]


def _bindings(vhosts, queues: list[dict]) -> list[dict]:
    exported = {(q["vhost"], q["name"]) for q in queues}
    out = []
    for v in vhosts:
        for x in sorted(v.exchanges.values(), key=lambda x: x.name):
            if not x.name:
                continue
            for b in x.bindings.values():
                d = b.destination
                if (d.kind == "queue" and (v.name, d.name) in exported) or (d.kind == "exchange" and d.name):
                    out.append({"source": x.name, "vhost": v.name, "destination": d.name,
                                "destination_type": d.kind, "routing_key": b.routing_key,
                                "arguments": json_value(b.arguments)})
    return out


def export_definitions(broker, vhost: str | None = None) -> dict:
    """The broker's definitions (or one vhost's: AdminError ``no_such_vhost`` if it is not
    there), as RabbitMQ 3.10's management API exports them."""
    if vhost is not None:
        vhosts = [broker._vhost(vhost)]
        queues = _queues(broker, vhosts)
        out = {"rabbit_version": RABBIT_VERSION,
               "parameters": list_parameters(broker, vhost=vhost),
               "policies": broker.list_policies(vhost),
               "queues": queues, "exchanges": _exchanges(vhosts), "bindings": _bindings(vhosts, queues)}
        for key in ("queues", "exchanges", "bindings"):
            for item in out[key]:
                del item["vhost"]
        return out
    vhosts = list(broker.vhosts.values())
    queues = _queues(broker, vhosts)
    return {
        "rabbit_version": RABBIT_VERSION, "rabbitmq_version": RABBIT_VERSION,
        "product_name": broker.settings.product_name, "product_version": broker.settings.product_version,
        "users": [_user(u) for u in broker.access.users.values()],
        "vhosts": [{"name": v.name} for v in vhosts],
        "permissions": broker.list_permissions(),
        "topic_permissions": broker.list_topic_permissions(),
        "parameters": list_parameters(broker),
        "global_parameters": [{"name": k, "value": v} for k, v in broker.global_parameters.items()],
        "policies": broker.list_policies(),
        "queues": queues, "exchanges": _exchanges(vhosts), "bindings": _bindings(vhosts, queues),
    }


# ------------------------------------------------------------ import

def _items(data: dict, key: str) -> list:
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DefinitionsError(f"'{key}' must be a list of JSON objects")
    return items


def _vhost_of(broker, item: dict, vhost: str | None):
    name = vhost if vhost is not None else item.get("vhost")
    v = broker.vhosts.get(name) if isinstance(name, str) else None
    if v is None:
        shown = name if isinstance(name, str) else "undefined"
        raise DefinitionsError(f"virtual host '{shown}' does not exist", ["no_such_vhost", shown])
    return v


def _import_vhost(broker, d: dict) -> None:
    meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
    name = d["name"]
    description = d.get("description", meta.get("description", ""))
    tags = d.get("tags", meta.get("tags", []))
    tags = [t for t in (tags.split(",") if isinstance(tags, str) else tags)]
    if name in broker.vhosts:
        broker.update_vhost_metadata(name, description or "", tags)
    else:
        broker.add_vhost(name, description=description or "", tags=tags,
                         default_queue_type=meta.get("default_queue_type"))
    if isinstance(d.get("limits"), dict) and d["limits"]:
        broker.set_vhost_limits(name, d["limits"])      # (rabbitmqctl's export carries them here)


def _import_exchange(broker, x: dict, vhost: str | None) -> None:
    v = _vhost_of(broker, x, vhost)
    name = x["name"]
    if not name or name.startswith("amq.") or name in v.exchanges:
        return
    v.declare_exchange(name, x.get("type", "direct"), x.get("durable", True), x.get("auto_delete", False),
                       x.get("internal", False) or False, _typed(x.get("arguments")))


def _import_queue(broker, q: dict, vhost: str | None) -> None:
    v = _vhost_of(broker, q, vhost)
    name = q["name"]
    if name.startswith("amq.") or name in v.queues:
        return
    plain = dict(q.get("arguments") or {})
    if q.get("type") and q["type"] != "classic" and "x-queue-type" not in plain:
        plain["x-queue-type"] = q["type"]       # exports since 3.9 carry the type apart
    args = _typed(plain)
    cls = queue_class(args)
    check_queue_args(args, v.describe("queue", name), cls.RULES)
    v.add_queue(cls(name, v, durable=q.get("durable", True), auto_delete=q.get("auto_delete", False),
                    arguments=args, store=broker.store))


def _import_binding(broker, b: dict, vhost: str | None) -> None:
    v = _vhost_of(broker, b, vhost)
    src = v.exchange(b["source"])
    dest = v.queue(b["destination"]) if b.get("destination_type", "queue") == "queue" \
        else v.exchange(b["destination"])
    v.bind(src, dest, b.get("routing_key", ""), _binding_args(b.get("arguments")))


def _import_policy(broker, p: dict, vhost: str | None, operator: bool = False) -> None:
    v = _vhost_of(broker, p, vhost)
    name = p.get("name")
    if not name:
        raise DefinitionsError(f"policy in virtual host '{v.name}' has undefined name")
    try:
        broker.put_policy(v.name, name, p.get("pattern"), p.get("definition"), p.get("priority", 0),
                          p.get("apply-to", "all"), operator=operator)
    except AdminError as e:
        raise DefinitionsError(f"Validation failed\n\n{e}\n ({v.name}/{name})") from None


def _import_parameter(broker, p: dict, vhost: str | None) -> None:
    v = _vhost_of(broker, p, vhost)
    try:
        set_parameter(broker, p.get("component"), v.name, p.get("name"), p.get("value"))
    except AdminError as e:
        if e.kind == "no_such_vhost":
            raise
        raise DefinitionsError(f"{str(e).rstrip()} ({v.name}/{p.get('component')}/{p.get('name')})") from None


def import_definitions(broker, data: dict, vhost: str | None = None) -> None:
    """Apply RabbitMQ definitions (the whole broker's, or into ``vhost``); raises
    :class:`DefinitionsError` at the first entry that fails."""
    if not isinstance(data, dict):
        raise DefinitionsError("definitions must be a JSON object")
    try:
        if vhost is not None:
            broker._vhost(vhost)
            for x in _items(data, "exchanges"):
                _import_exchange(broker, x, vhost)
            for p in _items(data, "parameters"):
                _import_parameter(broker, p, vhost)
            for p in _items(data, "policies"):
                _import_policy(broker, p, vhost)
            for q in _items(data, "queues"):
                _import_queue(broker, q, vhost)
            for b in _items(data, "bindings"):
                _import_binding(broker, b, vhost)
            return
        version = data.get("rabbitmq_version", data.get("rabbit_version"))
        for u in _items(data, "users"):
            broker.put_user_definition(u, version)
        for v in _items(data, "vhosts"):
            _import_vhost(broker, v)
        for p in _items(data, "permissions"):
            broker.set_permissions(p["user"], p["vhost"], p["configure"], p["write"], p["read"])
        for p in _items(data, "topic_permissions"):
            broker.set_topic_permissions(p["user"], p["vhost"], p["exchange"], p["write"], p["read"])
        for x in _items(data, "exchanges"):
            _import_exchange(broker, x, None)
        for g in _items(data, "global_parameters"):
            broker.set_global_parameter(g["name"], g.get("value"))
        for p in _items(data, "policies"):
            _import_policy(broker, p, None)
        for p in _items(data, "operator_policies"):     # (not exported by 3.10; accepted)
            _import_policy(broker, p, None, operator=True)
        for p in _items(data, "parameters"):
            _import_parameter(broker, p, None)
        for q in _items(data, "queues"):
            _import_queue(broker, q, None)
        for b in _items(data, "bindings"):
            _import_binding(broker, b, None)
    except AMQPError as e:
        raise DefinitionsError(e.reply_text) from None
    except AdminError as e:
        if e.kind == "no_such_vhost":
            name = str(e).split("'")[1] if "'" in str(e) else "undefined"
            raise DefinitionsError(str(e), ["no_such_vhost", name]) from None
        raise DefinitionsError(str(e), e.kind if str(e) == e.kind else str(e)) from None
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, DefinitionsError):
            raise
        raise DefinitionsError(f"invalid entry ({type(e).__name__}: {e})") from None
