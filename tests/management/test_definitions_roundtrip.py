"""Definitions round trip between RabbitMQ and Leveret: RabbitMQ's export of a vhost full of
things (user, permissions, topic permissions, limits, policy, exchanges with arguments,
classic and quorum queues, queue and exchange bindings) is imported into Leveret through
``POST /api/definitions``; Leveret's ``GET /api/definitions`` must give the same entries back;
that export, its vhost and user renamed, is imported into RabbitMQ, whose export of it must
again be the same. Needs the live RabbitMQ's management API (``LEVERET_RABBITMQ_MGMT_URL``,
default http://guest:guest@127.0.0.1:15672); skips without it."""
from __future__ import annotations

import json
import os
import urllib.error
import uuid

import pytest

from .conftest import call

RABBIT = os.environ.get("LEVERET_RABBITMQ_MGMT_URL", "http://guest:guest@127.0.0.1:15672").split("@")[-1] \
    .replace("http://", "")
pytestmark = pytest.mark.leveret_only

KEYS = ("users", "vhosts", "permissions", "topic_permissions", "parameters", "policies", "queues", "exchanges",
        "bindings")


@pytest.fixture
def rabbit():
    try:
        status, _, _ = call(RABBIT, "GET", "/api/whoami")
    except (OSError, urllib.error.URLError):
        status = None
    if status != 200:
        pytest.skip(f"no RabbitMQ management API at {RABBIT}")
    return RABBIT


def _mine(defs: dict, vhost: str, user: str) -> dict:
    """The entries of ``vhost`` and ``user``, in a stable order."""
    out = {}
    for k in KEYS:
        items = [i for i in defs.get(k, []) if i.get("vhost", i.get("name")) in (vhost, user)
                 and (k != "vhosts" or i["name"] == vhost) and (k != "users" or i["name"] == user)]
        out[k] = sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
    return out


def _renamed(obj, old: dict):
    text = json.dumps(obj)
    for a, b in old.items():
        text = text.replace(json.dumps(a)[1:-1], json.dumps(b)[1:-1])
    return json.loads(text)


def _ok(api, method, path, body=None):
    status, _, got = call(api, method, path, body=body)
    assert status in (200, 201, 204), (api, method, path, status, got)
    return got


def _populate(api: str, v: str, u: str) -> None:
    q = f"/api/vhosts/{v}"
    _ok(api, "PUT", q, {})
    _ok(api, "PUT", f"/api/users/{u}", {"password": "s3cret", "tags": "monitoring,custom"})
    _ok(api, "PUT", f"/api/permissions/{v}/{u}", {"configure": "^rt\\.", "write": ".*", "read": ".*"})
    _ok(api, "PUT", f"/api/topic-permissions/{v}/{u}", {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"})
    _ok(api, "PUT", f"/api/vhost-limits/{v}/max-queues", {"value": 50})
    _ok(api, "PUT", f"/api/policies/{v}/cap", {"pattern": "^rt\\.capped", "definition": {"max-length": 2,
                                               "overflow": "reject-publish"}, "priority": 3, "apply-to": "queues"})
    _ok(api, "POST", f"/api/definitions/{v}", {
        "exchanges": [{"name": "rt.orders", "type": "topic", "durable": True, "auto_delete": False, "internal": False,
                       "arguments": {"alternate-exchange": "rt.unrouted"}},
                      {"name": "rt.unrouted", "type": "fanout", "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}}],
        "queues": [{"name": "rt.capped", "durable": True, "auto_delete": False,
                    "arguments": {"x-message-ttl": 60000, "x-dead-letter-exchange": "rt.unrouted"}},
                   {"name": "rt.quorum", "durable": True, "auto_delete": False,
                    "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 5}}],
        "bindings": [{"source": "rt.orders", "destination": "rt.capped", "destination_type": "queue",
                      "routing_key": "order.*", "arguments": {}},
                     {"source": "rt.orders", "destination": "rt.unrouted", "destination_type": "exchange",
                      "routing_key": "#", "arguments": {"x-match": "all"}}]})


def test_rabbitmq_leveret_rabbitmq(api, rabbit):
    tag = uuid.uuid4().hex[:8]
    v, u = f"mgmt-rt-{tag}", f"mgmt-rt-{tag}-user"
    v2, u2 = f"mgmt-rt2-{tag}", f"mgmt-rt2-{tag}-user"
    try:
        _populate(rabbit, v, u)
        original = _mine(_ok(rabbit, "GET", "/api/definitions"), v, u)
        assert len(original["queues"]) == 2 and len(original["bindings"]) == 2 and original["policies"]

        _ok(api, "POST", "/api/definitions", {"rabbit_version": "3.10.8", **original})
        leveret = _mine(_ok(api, "GET", "/api/definitions"), v, u)
        assert leveret == original

        # the user's RabbitMQ password works on Leveret (the hash came across)
        status, _, _ = call(api, "GET", "/api/whoami", u, "s3cret")
        assert status == 200
        _ok(rabbit, "PUT", f"/api/vhosts/{v2}", {})
        _ok(rabbit, "POST", "/api/definitions", {"rabbit_version": "3.10.8", **_renamed(leveret, {v: v2, u: u2})})
        back = _mine(_ok(rabbit, "GET", "/api/definitions"), v2, u2)
        assert _renamed(back, {v2: v, u2: u}) == original
    finally:
        for a in (rabbit, api):
            for path in (f"/api/vhosts/{v}", f"/api/vhosts/{v2}", f"/api/users/{u}", f"/api/users/{u2}"):
                call(a, "DELETE", path)
