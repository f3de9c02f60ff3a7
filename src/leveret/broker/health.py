"""Health checks the management API answers from the broker's state.

* :func:`aliveness_test` -- ``/api/aliveness-test/{vhost}`` (``rabbit_mgmt_wm_aliveness_test``):
  declare the non-durable, non-auto-delete queue ``aliveness-test`` in the vhost (it stays,
  as in RabbitMQ), publish ``test_message`` to it through the default exchange, get it back
  (no-ack) and compare the body.
* :func:`listeners` -- ``(protocol, port)`` of the node's listeners (``amqp``, ``amqp/ssl``,
  ``http`` for the management API), as ``rabbit_networking:active_listeners`` lists them.
* :func:`alarms` -- the resource alarms in force as ``rabbit_alarm:format_as_maps`` lists
  them: ``{"resource": "memory"|"disk", "node": node}``.
"""
from __future__ import annotations

import struct

from .message import Message
from .queue import ClassicQueue

ALIVENESS_QUEUE = "aliveness-test"
ALIVENESS_BODY = b"test_message"


def _shortstr(s: str) -> bytes:
    b = s.encode("utf-8")
    return bytes([len(b)]) + b


def aliveness_test(broker, vhost: str) -> str | None:
    """None when a message went through the vhost's queue and back, else why not."""
    v = broker._vhost(vhost)
    q = v.queues.get(ALIVENESS_QUEUE)
    if q is None:
        q = ClassicQueue(ALIVENESS_QUEUE, v, durable=False, auto_delete=False, arguments={}, store=broker.store)
        v.add_queue(q)
    # a content header: class basic, weight 0, body size, no properties
    header = struct.pack(">HHQH", 60, 0, len(ALIVENESS_BODY), 0)
    ex_rk = _shortstr("") + _shortstr(ALIVENESS_QUEUE)
    q.enqueue(Message(broker.new_message_id(), "", ALIVENESS_QUEUE, ex_rk, header, ALIVENESS_BODY))
    got = q.get()
    if got is None:
        return "no message"
    msg, _red = got
    q.settled(msg)
    return None if msg.body == ALIVENESS_BODY else "wrong message"


def alarms(broker) -> list[dict]:
    return [{"resource": "disk" if a == "disk" else "memory", "node": broker.node_name}
            for a in sorted(broker.monitor.alarms)]


def listeners(broker) -> list[tuple[str, int]]:
    """``(protocol, port)`` of each listener of this node, in RabbitMQ's order."""
    out = []
    for proto, attr in (("amqp", "port"), ("amqp/ssl", "ssl_port"), ("http", "management_port")):
        port = getattr(broker, attr, None)
        if port is not None and not (attr == "port" and not broker.settings.tcp_listener):
            out.append((proto, port))
    return out
