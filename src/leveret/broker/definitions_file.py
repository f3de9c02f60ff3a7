"""Loading a RabbitMQ definitions file (``rabbitmqctl export_definitions`` JSON) at start.

Like RabbitMQ's ``load_definitions``: vhosts, users (``password`` in clear, or
RabbitMQ's ``password_hash`` with its ``hashing_algorithm`` -- sha256, sha512 or md5,
see ``leveret.auth.passwords``; an empty hash is a user without a password), ``limits``,
permissions, topic permissions, policies, exchanges, queues and bindings are created if missing;
existing entities are left as they are. A bad entry stops the start with a
clear message (:class:`DefinitionsError`).
"""
from __future__ import annotations

import json

from ..amqp.codec import decode_table_typed, encode_table
from ..amqp.errors import AMQPError
from .queue import queue_class
from .queue.arguments import check_queue_args
from .admin import AdminError


class DefinitionsError(ValueError):
    pass


def _typed(args: dict | None) -> dict:
    """Plain JSON arguments as the typed table a client's declare would carry."""
    return decode_table_typed(encode_table(args or {}), 0)[0] if args else {}


def load_definitions(broker, path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DefinitionsError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise DefinitionsError(f"{path}: the top level must be a JSON object")
    try:
        for v in data.get("vhosts", []):
            broker.add_vhost(v["name"])
        for u in data.get("users", []):
            tags = u.get("tags") or []
            if "password" in u:
                broker.add_user(u["name"], u["password"], tags)
            else:
                broker.add_user_with_hash(u["name"], u.get("password_hash") or "", u.get("hashing_algorithm"),
                                          tags, u.get("limits"))
        for p in data.get("permissions", []):
            broker.set_permissions(p["user"], p["vhost"], p["configure"], p["write"], p["read"])
        for p in data.get("topic_permissions", []):
            broker.set_topic_permissions(p["user"], p["vhost"], p["exchange"], p["write"], p["read"])
        for p in data.get("parameters", []):
            if p.get("component") == "vhost-limits":
                broker.set_vhost_limits(p["vhost"], p["value"])
        for p in data.get("policies", []):
            try:
                broker.set_policy(p["name"], p["pattern"], p["definition"], vhost=p.get("vhost", "/"),
                                  priority=p.get("priority", 0), apply_to=p.get("apply-to", "all"))
            except ValueError as e:
                raise DefinitionsError(f"{path}: policy '{p.get('name')}': {e}") from None
        for x in data.get("exchanges", []):
            v = broker.vhosts[x.get("vhost", "/")]
            v.declare_exchange(x["name"], x.get("type", "direct"), x.get("durable", True), x.get("auto_delete", False),
                               x.get("internal", False), _typed(x.get("arguments")))
        for q in data.get("queues", []):
            v = broker.vhosts[q.get("vhost", "/")]
            if q["name"] in v.queues:
                continue
            plain = dict(q.get("arguments") or {})
            if q.get("type") and q["type"] != "classic" and "x-queue-type" not in plain:
                plain["x-queue-type"] = q["type"]       # exports since 3.9 carry the type apart
            args = _typed(plain)
            cls = queue_class(args)
            check_queue_args(args, v.describe("queue", q["name"]), cls.RULES)
            v.add_queue(cls(q["name"], v, durable=q.get("durable", True), auto_delete=q.get("auto_delete", False),
                            arguments=args, store=broker.store))
        for b in data.get("bindings", []):
            v = broker.vhosts[b.get("vhost", "/")]
            src = v.exchange(b["source"])
            dest = v.queue(b["destination"]) if b.get("destination_type", "queue") == "queue" \
                else v.exchange(b["destination"])
            v.bind(src, dest, b.get("routing_key", ""), _typed(b.get("arguments")))
    except AMQPError as e:
        raise DefinitionsError(f"{path}: {e.reply_text}") from None
    except AdminError as e:
        raise DefinitionsError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise DefinitionsError(f"{path}: invalid entry ({type(e).__name__}: {e})") from None
