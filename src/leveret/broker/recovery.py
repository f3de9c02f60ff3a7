"""Recovery: the broker recreates what its store kept, before it serves anyone.

Run from :class:`~leveret.broker.broker.Broker`'s constructor. The store hands
back plain records -- the definitions log's state (vhosts, users,
permissions, policies, exchanges, queues, bindings) and, per durable queue,
the records of its log -- and this module turns them into broker objects, in
the order their references need: vhosts, users, permissions, policies and operator policies (so
entities get theirs as they are created), exchanges (a delayed exchange
reloads its pending messages), queues with their messages, bindings; and the global
parameters. Then
the store deletes whatever it keeps for entities that no longer exist.

As RabbitMQ: persistent messages of durable queues come back in queue order;
those delivered but not acked before a clean stop are marked redelivered, and
after a crash all of them are (the queue cannot know which were); transient
messages are dropped. Only the head of a long queue is read into memory; the
rest stays on disk as the queue's paged-out tail.
"""
from __future__ import annotations

import json
import logging
import time

from ..amqp.codec import table_plain
from ..store.definitions import decode_args
from .policy import Policy
from .queue import queue_class
from ..auth import User
from ..auth.passwords import decode_hash

log = logging.getLogger("leveret.store")


def recover(broker) -> dict:
    """Recreate ``broker``'s durable entities and messages from its store; returns statistics."""
    store = broker.store
    t0 = time.monotonic()
    stats = {"unclean_shutdown": store.unclean, "queues": 0, "messages": 0, "records": 0,
             "transient_dropped": 0, "truncated_bytes": 0}
    st = store.recorded_definitions()
    if st is None:
        stats["first_boot"] = True
        return stats
    try:
        for (name,), f in st["vhost"].items():
            broker.add_vhost(name, limits=f.get("limits") or None, description=f.get("description") or "",
                             tags=f.get("tags") if f.get("tags") is not None else (), default_queue_type=f.get("default_queue_type") or None)
        for (name,), f in st["user"].items():
            if "salt" in f:         # the record of Leveret before 0.x: salt and SHA-256 in hex
                u = User(name, bytes.fromhex(f["salt"]) + bytes.fromhex(f["hash"]), tags=f.get("tags") or ())
            else:
                u = User(name, decode_hash(f["password_hash"]), f["hashing_algorithm"], f.get("tags") or (),
                         f.get("limits") or {})
            broker.put_user(u)
        for (user, vhost), f in st["permission"].items():
            broker.set_permissions(user, vhost, f["configure"], f["write"], f["read"])
        for (user, vhost, exchange), f in st.get("topic_permission", {}).items():
            broker.set_topic_permissions(user, vhost, exchange, f["write"], f["read"])
        for kind in ("policy", "operator_policy"):
            for (vname, name), f in st.get(kind, {}).items():
                v = broker.vhosts.get(vname)
                if v is not None:
                    definition = {k: table_plain(x) for k, x in decode_args(f["definition"]).items()}
                    v.set_policy(Policy(vname, name, f["pattern"], definition, f["priority"], f["apply_to"]), kind)
        for (name,), f in st.get("global_parameter", {}).items():
            broker.set_global_parameter(name, json.loads(f["value"]))
        for (vname, component, name), f in st.get("parameter", {}).items():
            if vname in broker.vhosts:
                broker.runtime_parameters[(vname, component, name)] = json.loads(f["value"])
        for (vname, name), f in st["exchange"].items():
            v = broker.vhosts.get(vname)
            if v is not None:
                x = v.declare_exchange(name, f["type"], True, bool(f["auto_delete"]), bool(f["internal"]),
                                       decode_args(f["args"]))
                if x.delayed:
                    broker.delays.recover(x)
        for (vname, name), f in st["queue"].items():
            v = broker.vhosts.get(vname)
            if v is None:
                continue
            args = decode_args(f["args"])
            q = queue_class(args)(name, v, durable=True, auto_delete=bool(f["auto_delete"]), arguments=args,
                                  store=store)
            v.add_queue(q)
            s = q.recover_from_log(store.unclean)
            stats["queues"] += 1
            for k in ("messages", "records", "transient_dropped", "truncated_bytes"):
                stats[k] += s[k]
        for (vname, src, kind, dest, rk, args), _f in list(st["binding"].items()):
            v = broker.vhosts.get(vname)
            if v is None:
                continue
            s_x = v.exchanges.get(src)
            d = (v.queues if kind == "queue" else v.exchanges).get(dest)
            if s_x is not None and d is not None:
                v.bind(s_x, d, rk, decode_args(args))
    finally:
        store.recovered()
    stats["seconds"] = round(time.monotonic() - t0, 3)
    log.info("recovered %d durable queues with %d messages in %.3f s%s", stats["queues"],
             stats["messages"], stats["seconds"],
             f" ({stats['truncated_bytes']} torn bytes cut away)" if stats["truncated_bytes"] else "")
    return stats
