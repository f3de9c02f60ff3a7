"""``trust-user-id`` on an upstream, as RabbitMQ's federation plugin has it: false (the
default) clears a message's ``user_id`` before the link publishes it downstream
(``maybe_clear_user_id``); true keeps it, and the link's local user may publish it
(RabbitMQ makes its local user an impersonator, ``maybe_impersonator``; Leveret's link
publishes as the internal user, which may publish any ``user_id``). Each case runs with a
Leveret downstream and with a RabbitMQ downstream (the shared RabbitMQ, a vhost of its own):
RabbitMQ -> Leveret, Leveret -> RabbitMQ and Leveret -> Leveret."""
from __future__ import annotations

from urllib.parse import quote

import pika
import pytest

from tests.shovel.conftest import drain

from .conftest import Node
from .test_exchanges import _bound, _federate, _running


@pytest.mark.parametrize("trust", [False, True], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("direction", ["rabbitmq-to-leveret", "leveret-to-rabbitmq", "leveret-to-leveret"])
def test_trust_user_id(direction, trust, node, request):
    if direction == "leveret-to-leveret":
        other = Node()
        request.addfinalizer(other.stop)
        (up_url, up_api, up_vq), (down_url, down_api, down_vq) = \
            (node.url, node.api, "%2F"), (other.url, other.api, "%2F")
    else:
        url, rapi, v = request.getfixturevalue("rabbit_vhost")
        rabbit, lev = (url, rapi, quote(v, safe="")), (node.url, node.api, "%2F")
        (up_url, up_api, up_vq), (down_url, down_api, down_vq) = \
            (rabbit, lev) if direction == "rabbitmq-to-leveret" else (lev, rabbit)
    uc = pika.BlockingConnection(pika.URLParameters(up_url))
    dc = pika.BlockingConnection(pika.URLParameters(down_url))
    try:
        uch, dch = uc.channel(), dc.channel()
        uch.exchange_declare("ux", "direct")
        dch.exchange_declare("ux", "direct")
        q = dch.queue_declare("", exclusive=True).method.queue
        dch.queue_bind(q, "ux", "k")
        _federate(down_api, down_vq, up_url, "^ux$", {"trust-user-id": trust})
        _running(down_api, down_vq)
        _bound(up_api, up_vq, "k")
        uch.basic_publish("ux", "k", b"with", pika.BasicProperties(user_id="guest"))
        uch.basic_publish("ux", "k", b"without")
        got = drain(dch, q, 2)
        assert [(m[2], m[1].user_id) for m in got] == [(b"with", "guest" if trust else None), (b"without", None)]
        assert all(r["status"] == "running" for r in _running(down_api, down_vq))
    finally:
        uc.close()
        dc.close()
