"""Fixtures of the federation tests: in-process Leveret nodes and the shared RabbitMQ (the
shovel tests' helpers), and a unique RabbitMQ vhost made and deleted through its API."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.shovel.conftest import RABBIT_API, Node, _rabbit_up, api, unique

__all__ = ["Node", "api", "unique"]


@pytest.fixture
def node():
    n = Node()
    yield n
    n.stop()


@pytest.fixture
def node2():
    n = Node()
    yield n
    n.stop()


@pytest.fixture
def rabbit_vhost():
    """A fresh vhost on the shared RabbitMQ: (amqp url, api host, vhost); deleted afterwards
    (with everything the test made in it)."""
    if not _rabbit_up():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672/15672")
    v = unique("leveret-fed")
    assert api(RABBIT_API, "PUT", f"/api/vhosts/{v}")[0] in (201, 204)
    assert api(RABBIT_API, "PUT", f"/api/permissions/{v}/guest",
               {"configure": ".*", "write": ".*", "read": ".*"})[0] in (201, 204)
    yield f"amqp://guest:guest@127.0.0.1:5672/{quote(v, safe='')}", RABBIT_API, v
    api(RABBIT_API, "DELETE", f"/api/vhosts/{v}")
