"""A bad federation upstream, upstream set or policy is refused with RabbitMQ's text: the same
PUT goes to the live RabbitMQ's management API (in a vhost of its own) and to Leveret's, and
the answers must match."""
from __future__ import annotations

import pytest

from .conftest import api, unique

UPSTREAMS = [
    {},
    {"uri": 5},
    {"uri": "foo://x"},
    {"uri": ["amqp://", "amqp://h:99999"]},
    {"uri": "amqp://x", "queue-type": "quorum", "max-hops": "a", "ack-mode": "x"},
    {"exchange": 1, "prefetch-count": "1", "trust-user-id": "yes", "resource-cleanup-mode": "sometimes"},
    [1],
]
SETS = [
    [{"upstream": "u1", "max-hops": "x"}, {"exchange": 3}],
    [{"upstream": "u1", "queue-type": "q"}],
    [{"upstream": 7, "channel-use-mode": "many", "bind-nowait": 1}],
]
POLICIES = [
    {"federation-upstream": 1},
    {"federation-upstream-set": 1},
    {"federation-upstream-pattern": "("},
    {"federation-upstream-pattern": 2},
    {"federation-upstream": "a", "federation-upstream-set": "b"},
    {"federation-upstream": "a", "federation-upstream-pattern": "b"},
]


def _both(node, rabbit, path_tail: str, body):
    name = unique("zz-fed-bad")
    ours = api(node.api, "PUT", path_tail.format(vhost="%2F", name=name), body)
    theirs = api(rabbit[1], "PUT", path_tail.format(vhost=rabbit[2], name=name), body)
    return ours, theirs


@pytest.mark.parametrize("value", UPSTREAMS, ids=range(len(UPSTREAMS)))
def test_upstream_refused_as_rabbitmq_refuses(node, rabbit_vhost, value):
    ours, theirs = _both(node, rabbit_vhost, "/api/parameters/federation-upstream/{vhost}/{name}", {"value": value})
    assert ours[0] == 400 and ours == theirs


@pytest.mark.parametrize("value", SETS, ids=range(len(SETS)))
def test_upstream_set_refused_as_rabbitmq_refuses(node, rabbit_vhost, value):
    ours, theirs = _both(node, rabbit_vhost, "/api/parameters/federation-upstream-set/{vhost}/{name}",
                         {"value": value})
    assert ours[0] == 400 and ours == theirs


@pytest.mark.parametrize("definition", POLICIES, ids=range(len(POLICIES)))
def test_policy_refused_as_rabbitmq_refuses(node, rabbit_vhost, definition):
    ours, theirs = _both(node, rabbit_vhost, "/api/policies/{vhost}/{name}",
                         {"pattern": "^x", "definition": definition})
    assert ours[0] == 400 and ours == theirs


def test_non_list_set_is_a_clear_error(node):
    """RabbitMQ answers 500 (a crash) for a set that is not a list; Leveret says why."""
    status, body = api(node.api, "PUT", "/api/parameters/federation-upstream-set/%2F/s", {"value": "x"})
    assert status == 400 and body["reason"] == 'Validation failed\n\ns not a list &lt;&lt;"x"&gt;&gt;\n'


def test_good_values_accepted(node, rabbit_vhost):
    up = {"uri": ["amqp://a", "amqps://b:5671/v"], "max-hops": 2, "expires": 60000, "ack-mode": "on-publish"}
    for host, vhost in ((node.api, "%2F"), (rabbit_vhost[1], rabbit_vhost[2])):
        assert api(host, "PUT", f"/api/parameters/federation-upstream/{vhost}/u1", {"value": up})[0] in (201, 204)
        assert api(host, "PUT", f"/api/parameters/federation-upstream-set/{vhost}/s1",
                   {"value": [{"upstream": "u1", "exchange": "other"}]})[0] in (201, 204)
        assert api(host, "PUT", f"/api/policies/{vhost}/p1",
                   {"pattern": "^zz-none$", "definition": {"federation-upstream-set": "s1"}})[0] in (201, 204)
        got = api(host, "GET", f"/api/parameters/federation-upstream/{vhost}/u1")[1]
        assert got["value"] == up and got["component"] == "federation-upstream"
    api(node.api, "DELETE", "/api/policies/%2F/p1")
