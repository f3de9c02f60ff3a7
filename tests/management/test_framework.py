"""The management API's framework: authentication and tags, RabbitMQ's error shapes, listings
(sort, columns, pagination). Runs against Leveret's API and, with ``LEVERET_TEST_MGMT_URL``
(and ``LEVERET_TEST_URL``), against RabbitMQ's."""
from __future__ import annotations

import time
import uuid

import pytest

from brokeradmin import HttpAdmin

from .conftest import call


def test_whoami(api):
    status, _, body = call(api, "GET", "/api/whoami")
    assert status == 200 and body == {"name": "guest", "tags": ["administrator"]}


def test_login_failures(api):
    status, headers, body = call(api, "GET", "/api/whoami", password="wrong")
    assert status == 401 and body == {"error": "not_authorized", "reason": "Login failed"}
    assert headers.get("www-authenticate", headers.get("WWW-Authenticate")) == 'Basic realm="RabbitMQ Management"'
    status, headers, body = call(api, "GET", "/api/whoami", auth=False)
    assert status == 401 and body is None


@pytest.mark.leveret_only
def test_script_calls_are_not_challenged(api):
    """(Leveret only) A call with ``X-Requested-With: XMLHttpRequest`` (the web UI's) gets its 401
    without ``WWW-Authenticate``, so a browser shows no login dialog of its own."""
    xhr = {"X-Requested-With": "XMLHttpRequest"}
    status, headers, body = call(api, "GET", "/api/whoami", password="wrong", headers=xhr)
    assert status == 401 and body == {"error": "not_authorized", "reason": "Login failed"}
    assert not {k.lower() for k in headers} & {"www-authenticate"}
    status, headers, body = call(api, "GET", "/api/whoami", auth=False, headers=xhr)
    assert status == 401 and not {k.lower() for k in headers} & {"www-authenticate"}
    assert call(api, "GET", "/api/whoami", headers=xhr)[0] == 200


def test_tags_gate_the_api(api):
    admin = HttpAdmin(f"http://guest:guest@{api}")
    tag = uuid.uuid4().hex[:8]
    plain, mgmt = f"mgmt-{tag}-none", f"mgmt-{tag}-mgmt"
    admin.add_user(plain, "pw")
    admin.add_user(mgmt, "pw", ("management",))
    try:
        status, _, body = call(api, "GET", "/api/whoami", plain, "pw")
        assert status == 401 and body == {"error": "not_authorised", "reason": "Not management user"}
        status, _, body = call(api, "GET", "/api/whoami", mgmt, "pw")
        assert status == 200 and body == {"name": mgmt, "tags": ["management"]}
        status, _, body = call(api, "GET", "/api/users", mgmt, "pw")
        assert status == 401 and body == {"error": "not_authorised", "reason": "Not administrator user"}
    finally:
        admin.delete_user(plain)
        admin.delete_user(mgmt)


def test_unknown_path_and_method(api):
    status, _, body = call(api, "GET", "/api/no-such-thing")
    assert status == 404 and body == {"error": "Object Not Found", "reason": "Not Found"}
    status, headers, body = call(api, "POST", "/api/whoami", body={})
    assert status == 405 and body is None and "GET" in (headers.get("allow") or headers.get("Allow"))


def test_body_must_be_json(api):
    status, _, body = call(api, "PUT", f"/api/vhosts/mgmt-{uuid.uuid4().hex[:8]}", body=b"{bad")
    assert status == 400 and body == {"error": "bad_request", "reason": "not_json"}


@pytest.mark.parametrize("query, reason", [
    ("page=0", "Invalid pagination parameters: page number 0, page size undefined"),
    ("page=1&page_size=501", "Invalid pagination parameters: page number 1, page size 501"),
    ("page=1&page_size=0", "Invalid pagination parameters: page number 1, page size 0"),
])
def test_bad_pagination(api, query, reason):
    status, _, body = call(api, "GET", f"/api/vhosts?{query}")
    assert status == 400 and body == {"error": "invalid_pagination_parameters", "reason": reason}


def test_pagination_sort_and_columns(api):
    admin = HttpAdmin(f"http://guest:guest@{api}")
    tag = uuid.uuid4().hex[:8]
    names = [f"mgmt-{tag}-{c}" for c in "cab"]
    for n in names:
        admin.add_vhost(n)
    try:
        status, _, body = call(api, "GET", f"/api/vhosts?page=1&page_size=2&name=mgmt-{tag}&columns=name"
                                           f"&sort=name&sort_reverse=true")
        assert status == 200
        assert body["items"] == [{"name": f"mgmt-{tag}-c"}, {"name": f"mgmt-{tag}-b"}]
        assert {k: body[k] for k in ("filtered_count", "item_count", "page", "page_count", "page_size")} == {
            "filtered_count": 3, "item_count": 2, "page": 1, "page_count": 2, "page_size": 2}
        assert body["total_count"] >= 3
        status, _, body = call(api, "GET", f"/api/vhosts?page=2&page_size=2&name=MGMT-{tag}-[ab]&use_regex=true"
                                           "&columns=name")
        assert status == 200 and body["items"] == [] and body["filtered_count"] == 2
        status, _, body = call(api, "GET", f"/api/vhosts?page=3&page_size=2&name=mgmt-{tag}")
        assert status == 400 and body == {"error": "page_out_of_range",
                                          "reason": "Page out of range, page: 3 page size: 2, len: 3"}
    finally:
        for n in names:
            admin.delete_vhost(n)


@pytest.mark.parametrize("resource", ["queues", "exchanges"])
@pytest.mark.parametrize("query", ["sort=name&sort_reverse=true", "", "sort=vhost", "sort=", "sort=type,name",
                                   "sort=messages&sort_reverse=true", "sort=consumers,messages_ready",
                                   "sort_reverse=true&use_regex=true&NAME-[bdf]$"])
def test_pages_are_slices_of_the_whole_listing(api, resource, query):
    """A page is the filtered slice of the unpaged listing in the same order (Leveret builds only
    the page's items when the sort allows: listing.respond_objects; RabbitMQ builds them all)."""
    import re
    tag = f"mgmt-{uuid.uuid4().hex[:8]}"
    names = [f"{tag}-{c}" for c in "gcaebfd"]
    for i, n in enumerate(names):
        body = {"durable": False} if resource == "queues" else {"type": ("direct", "fanout", "topic")[i % 3],
                                                                "durable": False}
        assert call(api, "PUT", f"/api/{resource}/%2F/{n}", body=body)[0] == 201
        if resource == "queues":
            for _ in range(i % 3):
                call(api, "POST", "/api/exchanges/%2F/amq.default/publish", body={
                    "routing_key": n, "payload": "", "payload_encoding": "string", "properties": {}})
    try:
        regex = "use_regex=true" in query
        name = (tag.upper() + "-[bdf]$") if regex else tag.upper()
        params = "&".join(p for p in query.split("&") if p and not p.startswith("NAME")) if query else ""
        depth = {n: i % 3 for i, n in enumerate(names)} if resource == "queues" else {}
        for _ in range(100):        # (RabbitMQ's listed counts lag up to its 5 s statistics interval)
            status, _, whole = call(api, "GET", f"/api/{resource}/%2F?columns=name,type,messages&{params}")
            assert status == 200
            if all(it.get("messages") == depth[it["name"]] for it in whole if it["name"] in depth):
                break
            time.sleep(0.1)
        ok = (lambda n: re.search(name, n, re.IGNORECASE)) if regex else (lambda n: name.lower() in n.lower())
        expected = [it for it in whole if ok(it["name"])]
        assert len(expected) == (3 if regex else 7)
        for page in (1, 2, 3):
            status, _, got = call(api, "GET", f"/api/{resource}/%2F?columns=name,type,messages&{params}&page={page}"
                                              f"&page_size=3&name={name}")
            if page > 1 and regex:
                assert status == 400 or got["items"] == []       # (page 2 of 3 items is empty, 3 is out of range)
                continue
            assert status == 200
            assert got["items"] == expected[(page - 1) * 3:page * 3]
            assert (got["filtered_count"], got["page_count"]) == (len(expected), (len(expected) + 2) // 3)
            assert got["total_count"] >= len(expected)
    finally:
        for n in names:
            call(api, "DELETE", f"/api/{resource}/%2F/{n}")
