"""A bad shovel parameter is refused with RabbitMQ's text: the same PUT goes to the live
RabbitMQ's management API (when it answers) and to Leveret's, and the answers must match."""
from __future__ import annotations

import pytest

from .conftest import _rabbit_up, api, RABBIT_API, unique

BAD = [
    {},
    {"src-uri": 5, "dest-uri": "amqp://"},
    {"src-uri": "amqp://", "dest-uri": "amqp://"},
    {"src-uri": "amqp://", "src-queue": "a", "src-exchange": "x", "dest-uri": "amqp://", "dest-queue": "b",
     "dest-exchange": "y"},
    {"src-uri": "foo://", "src-queue": "a", "dest-uri": ["amqp://", 3]},
    {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "ack-mode": "bad", "reconnect-delay": "x",
     "src-delete-after": "sometimes", "foo": 1, "bar": [1, "x"]},
    {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "ack-mode": "no-ack", "src-delete-after": 5},
    {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://",
     "dest-publish-properties": {"delivery_mode": "x", "foo": 1}, "dest-add-forward-headers": "yes",
     "src-prefetch-count": "10"},
    {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "src-queue-args": {"x-foo": 1},
     "dest-queue": "q" * 300},
    {"src-uri": "amqp:///no-such-vhost-zz", "src-queue": "a", "dest-uri": "amqp://"},
    {"src-uri": "amqp://", "src-exchange": "x", "dest-uri": "amqp://", "dest-add-timestamp-header": 1,
     "src-delete-after": -1, "dest-queue-args": {"x-max-length": "x", "x-bad": 1}},
]

EXPECTED_1 = ("Validation failed\n\nMust specify 'src-exchange' or 'src-queue'\n"
              "src-uri should be list, actually was 5\n")


@pytest.mark.parametrize("value", BAD, ids=range(len(BAD)))
def test_refused_as_rabbitmq_refuses(node, value):
    name = unique("zz-shovel-bad")
    status, body = api(node.api, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": value})
    assert status == 400 and body["error"] == "bad_request", body
    assert api(node.api, "GET", f"/api/parameters/shovel/%2F/{name}")[0] == 404
    if value == BAD[1]:
        assert body["reason"] == EXPECTED_1
    if _rabbit_up():
        r_status, r_body = api(RABBIT_API, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": value})
        if r_status != 400:
            api(RABBIT_API, "DELETE", f"/api/parameters/shovel/%2F/{name}")
        assert (status, body) == (r_status, r_body)


def test_ctl_path_refuses_too(node):
    """set_parameter through the broker's parameter registry (what ctl and definitions use)."""
    from leveret.broker.admin import AdminError
    from leveret.broker.parameters import set_parameter

    def go():
        try:
            set_parameter(node.broker, "shovel", "/", "x", {"src-uri": "amqp://"})
        except AdminError as e:
            return str(e)
    text = node.tb.call(go)
    assert text == ("Validation failed\n\nMust specify 'src-exchange' or 'src-queue'\n"
                    'Key "dest-uri" not found in x\n')
