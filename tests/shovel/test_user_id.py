"""A message published with ``user_id`` goes through a shovel with it: the shovel's own-broker
end (``amqp://``) publishes as RabbitMQ's dummy-backend user, which ``rabbit_channel`` lets
publish any ``user_id`` (``check_user_id_header``). Leveret refused it once (406 for the
internal user), and the shovel restarted and failed again for ever. The local case runs on a
Leveret node and on the shared RabbitMQ alike; RabbitMQ -> Leveret by a Leveret shovel with
``user_id`` is test_shovels.py's test_rabbitmq_to_leveret_by_leveret_shovel."""
from __future__ import annotations

import pika
import pytest

from .conftest import Node, api, drain, unique, wait_for


def _shovel(host: str, name: str, value: dict) -> None:
    status, body = api(host, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": value})
    assert status == 201, body


def _gone(host: str, name: str) -> None:
    api(host, "DELETE", f"/api/parameters/shovel/%2F/{name}")
    wait_for(lambda: not [s for s in api(host, "GET", "/api/shovels")[1] if s["name"] == name], f"{name} gone")


@pytest.mark.parametrize("broker", ["leveret", "rabbitmq"])
def test_local_shovel_keeps_user_id(broker, request):
    """amqp:// -> amqp:// on one broker: the message arrives with the publisher's user_id."""
    if broker == "leveret":
        n = Node()
        request.addfinalizer(n.stop)
        url, host = n.url, n.api
    else:
        url, host = request.getfixturevalue("rabbit")
    src, dst, name = unique("zz-uid-src"), unique("zz-uid-dst"), unique("zz-uid")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    try:
        ch.queue_declare(src)
        ch.queue_declare(dst)
        ch.basic_publish("", src, b"first", pika.BasicProperties(user_id="guest"))
        ch.basic_publish("", src, b"second")
        _shovel(host, name, {"src-uri": "amqp://", "src-queue": src, "dest-uri": "amqp://", "dest-queue": dst,
                             "reconnect-delay": 1})
        got = drain(ch, dst, 2)
        assert [(m[2], m[1].user_id) for m in got] == [(b"first", "guest"), (b"second", None)]
        st = [s for s in api(host, "GET", "/api/shovels")[1] if s["name"] == name]
        assert st and st[0]["state"] == "running", st
    finally:
        _gone(host, name)
        ch.queue_delete(src)
        ch.queue_delete(dst)
        conn.close()

