"""A paged, sorted, filtered listing is exactly the same slice of the full listing.

Leveret sorts and pages queues before building their items (as RabbitMQ's
``augment_resources`` does for basic columns), so the page must still be the slice of the
full listing that RabbitMQ would return, for every sort key -- plain, dotted into
``message_stats`` and ``arguments``, missing (sorted as 0), and unknown. Runs against Leveret
and, with ``LEVERET_TEST_MGMT_URL`` and ``LEVERET_TEST_URL``, against RabbitMQ 3.10.8 (whose
statistics lag by up to 5 s; a comparison counts only when the full listing was the same
before and after the page was asked for)."""
from __future__ import annotations

import time
import urllib.parse
import uuid

import pika
import pytest

from leveret.management.listing import _column_keys, _term_key

from .conftest import call
from .test_admin_effects import _channel

# name suffix -> (messages published, durable, x-max-length or None); names are not in count order
QUEUES = {"delta": (3, True, None), "alpha": (0, False, 10), "echo": (5, False, None), "bravo": (1, True, 7),
          "golf": (0, True, None), "charlie": (2, False, 10), "foxtrot": (4, False, 6)}

SORTS = [None, "name", "messages", "messages_ready", "durable", "arguments.x-max-length", "message_stats.publish",
         "message_stats.publish_details.rate", "message_stats.deliver_get", "messages_details.rate",
         "consumers,messages", "no_such_field", "message_stats.no.such.path"]


@pytest.fixture(scope="module")
def queues(api, broker_url):
    """(vhost, tag): the queues of ``QUEUES`` in a vhost of their own, after known traffic."""
    tag = f"mgmt-list-{uuid.uuid4().hex[:8]}"
    vhost = urllib.parse.quote(tag, safe="")
    status, _, _ = call(api, "PUT", f"/api/vhosts/{vhost}", body={})
    assert status == 201
    try:
        conn, ch = _channel(broker_url, tag)
        names = {}
        for suffix, (n, durable, max_len) in QUEUES.items():
            name = names[suffix] = f"{tag}-{suffix}"
            ch.queue_declare(name, durable=durable, arguments={"x-max-length": max_len} if max_len else None)
            for i in range(n):
                ch.basic_publish("", name, f"m{i}".encode())
        ch.basic_get(names["echo"], auto_ack=True)      # message_stats.get_no_ack, deliver_get
        ch.basic_consume(names["golf"], lambda *a: None)
        expected = {names[s]: n - (s == "echo") for s, (n, _, _) in QUEUES.items()}
        deadline = time.monotonic() + 30
        while True:         # until the statistics show the traffic (RabbitMQ emits them every 5 s)
            got = {it["name"]: it for it in full(api, (vhost, tag), None, False, None)}
            if all(got.get(q, {}).get("messages") == m for q, m in expected.items()) and \
                    "message_stats" in got[names["echo"]] and got[names["golf"]].get("consumers") == 1:
                break
            assert time.monotonic() < deadline, f"statistics never showed the traffic: {got}"
            time.sleep(0.5)
        yield vhost, tag
        conn.close()
    finally:
        call(api, "DELETE", f"/api/vhosts/{vhost}")


def dotted(item, key: str):
    """``rabbit_mgmt_util:get_dotted_value``: missing anywhere on the path is 0."""
    for k in key.split("."):
        item = item.get(k, []) if isinstance(item, dict) else []
    return 0 if item == [] else item


def term(v):
    """Erlang term order for the values sorted on here: numbers < atoms < binaries."""
    if isinstance(v, bool) or v is None:
        return (1, "undefined" if v is None else str(v).lower())
    if isinstance(v, (int, float)):
        return (0, v)
    return (2, v)


def query(**params) -> str:
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def full(api, queues, sort, reverse, columns) -> list:
    vhost, tag = queues
    status, _, body = call(api, "GET", f"/api/queues/{vhost}?" + query(sort=sort, sort_reverse=str(reverse).lower(),
                                                                    columns=columns))
    assert status == 200
    return [it for it in body if tag in it["name"]]


@pytest.mark.parametrize("columns", [None, "name,messages,message_stats.publish_details.rate,arguments"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("sort", SORTS)
def test_page_is_the_slice_of_the_full_listing(api, queues, sort, reverse, columns):
    vhost, tag = queues
    for _attempt in range(5):
        before = full(api, queues, sort, reverse, columns)
        status, _, page = call(api, "GET", f"/api/queues/{vhost}?" + query(
            sort=sort, sort_reverse=str(reverse).lower(), columns=columns, page=2, page_size=3, name=tag))
        after = full(api, queues, sort, reverse, columns)
        if before == after:
            break
    else:
        pytest.fail("the listing never stayed the same over three requests")
    assert status == 200
    assert len(before) == len(QUEUES)
    assert page["items"] == before[3:6]
    assert (page["filtered_count"], page["item_count"], page["page_count"]) == (len(QUEUES), 3, 3)
    if columns is None:     # and the full listing is in the order asked for (Erlang term order)
        keys = ([k for k in sort.split(",")] if sort else []) + ["vhost", "name"]
        order = sorted(before, key=lambda it: [term(dotted(it, k)) for k in keys], reverse=reverse)
        assert [it["name"] for it in before] == [it["name"] for it in order]
    if columns:
        assert all(set(it) <= {"name", "messages", "message_stats", "arguments"} for it in page["items"])


@pytest.mark.parametrize("sort", ["messages", "message_stats.publish_details.rate"])
def test_regex_filter_then_page(api, queues, sort):
    vhost, tag = queues
    every = full(api, queues, sort, False, None)
    mine = [it for it in every if it["name"].rsplit("-", 1)[1][0] in "abcd"]
    status, _, page = call(api, "GET", f"/api/queues/{vhost}?" + query(sort=sort, page=1, page_size=3, use_regex="true",
                                                                    name=f"^{tag.upper()}-[a-d]"))
    assert status == 200
    assert page["items"] == mine[:3] and page["filtered_count"] == 4


def test_missing_dotted_value_sorts_as_zero(api, queues):
    """``rabbit_mgmt_util:get_dotted_value``: a queue without ``message_stats`` sorts as 0,
    with the queues whose publish rate is 0.0, in name order -- not after them."""
    deadline = time.monotonic() + 30
    while True:         # until the publish rates are back to 0.0
        items = full(api, queues, "message_stats.publish_details.rate", False, "name,message_stats")
        if not any(it.get("message_stats", {}).get("publish_details", {}).get("rate", 0) for it in items):
            break
        assert time.monotonic() < deadline, f"publish rates never went back to 0: {items}"
        time.sleep(1)
    assert [it["name"] for it in items] == sorted(it["name"] for it in items)
    assert any("message_stats" not in it for it in items) and any("message_stats" in it for it in items)


@pytest.mark.leveret_only
@pytest.mark.parametrize("values", [
    ["b", "a", "Z", "é", "e", "\U0001F600", "ｚ", "", "a b"],          # strings: UTF-8 byte order
    ["q-\udc80", "q-\u00ff", "q-a", "q-\udcff"],                      # lone surrogates (surrogateescape)
    ["b", 3, None, True, "a", 1.5, {"k": 1}, [1], False],             # mixed: Erlang term order
])
def test_column_sort_keys_order_as_term_keys(values):
    """The fast sort keys of a column of names (the strings, or their UTF-8 bytes) order as
    :func:`_term_key` does."""
    keys = _column_keys(values)
    term_keys = [_term_key(v) for v in values]
    assert sorted(range(len(values)), key=keys.__getitem__) == sorted(range(len(values)), key=term_keys.__getitem__)
    ascii_only = [v for v in values if isinstance(v, str) and v.isascii()]
    keys = _column_keys(ascii_only)
    term_keys = [_term_key(v) for v in ascii_only]
    assert sorted(range(len(ascii_only)), key=keys.__getitem__) == \
        sorted(range(len(ascii_only)), key=term_keys.__getitem__)
