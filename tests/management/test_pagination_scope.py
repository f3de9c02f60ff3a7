"""Which listings take ``page``/``page_size``: RabbitMQ 3.10.8 pages (``reply_list_or_paginate``)
only vhosts, exchanges, queues, connections and channels; every other listing (``reply_list``)
ignores the pagination parameters and answers the whole list. (A bad page number there makes
RabbitMQ answer 500, a crash Leveret does not copy: it answers the list.)
Runs against Leveret and, with ``LEVERET_TEST_MGMT_URL`` and ``LEVERET_TEST_URL``, RabbitMQ."""
from __future__ import annotations

import pytest

from .conftest import call

PAGED = ["/api/vhosts", "/api/exchanges", "/api/exchanges/%2F", "/api/queues", "/api/queues/%2F",
         "/api/connections", "/api/channels"]
LISTS = ["/api/bindings", "/api/bindings/%2F", "/api/exchanges/%2F/amq.direct/bindings/source",
         "/api/exchanges/%2F/amq.direct/bindings/destination", "/api/consumers", "/api/consumers/%2F",
         "/api/vhosts/%2F/connections", "/api/vhosts/%2F/channels", "/api/users", "/api/users/guest/permissions",
         "/api/users/without-permissions", "/api/permissions", "/api/vhosts/%2F/permissions",
         "/api/topic-permissions", "/api/policies", "/api/policies/%2F", "/api/operator-policies",
         "/api/parameters", "/api/global-parameters", "/api/vhost-limits", "/api/user-limits",
         "/api/federation-links", "/api/shovels"]


@pytest.mark.parametrize("path", PAGED)
def test_paged_listings_answer_a_page(api, path):
    status, _, body = call(api, "GET", f"{path}?page=1&page_size=2")
    assert status == 200
    assert isinstance(body, dict) and {"items", "page", "page_size", "page_count", "item_count",
                                       "filtered_count", "total_count"} <= set(body)
    assert (body["page"], body["page_size"]) == (1, 2) and len(body["items"]) <= 2
    status, _, body = call(api, "GET", f"{path}?page=0")
    assert status == 400 and body["error"] == "invalid_pagination_parameters"


@pytest.mark.parametrize("path", LISTS)
def test_other_listings_ignore_pagination(api, path):
    status, _, whole = call(api, "GET", path)
    assert status == 200 and isinstance(whole, list)
    for query in ("?page=1&page_size=1", "?page=2&page_size=1", "?page=1&page_size=1&name=zz-no-such-name"):
        status, _, body = call(api, "GET", path + query)
        assert status == 200 and isinstance(body, list), query
        assert len(body) == len(whole), query
