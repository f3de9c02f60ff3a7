"""Lists as the management API returns them: ``sort``, ``sort_reverse``, ``columns`` and
pagination (``page``, ``page_size``, ``name``, ``use_regex``), after ``rabbit_mgmt_util``.

* **sort** (comma-separated dotted keys, after the resource's default sort keys) orders by
  Erlang term order -- numbers before atoms (``false`` < ``null`` < ``true``), objects, lists,
  then strings (bytewise); a missing key sorts as 0. ``sort=`` (empty) keeps the natural order.
* **columns** keeps only the named (dotted) fields of each item.
* **page** (from 1) with **page_size** (default 100, at most 500) returns the envelope
  ``{filtered_count, item_count, items, page, page_count, page_size, total_count}``;
  ``name`` filters first (a case-insensitive substring of the item's name, or with
  ``use_regex=true`` a case-insensitive regular expression). Bad values are 400
  ``invalid_pagination_parameters``; a page past the end is 400 ``page_out_of_range``.

RabbitMQ builds every item before it pages. :func:`respond_objects` gives the same answer
building only the page's items when it can: a paged request sorted only by keys the objects
give cheaply (a queue's ``vhost``, ``name``, message counts and consumers: the default sort
and the web UI's usual ones)
filters and sorts the objects themselves, so a page of 10,000 queues costs a page, not
10,000 item dicts. Any other request builds every item and goes through :func:`respond`.
"""
from __future__ import annotations

import json
import re
from typing import Callable

from aiohttp import web

from .errors import bad_request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def _term_key(v):
    """Erlang's term order for JSON values."""
    if isinstance(v, bool):
        return (1, "true" if v else "false")
    if isinstance(v, (int, float)):
        return (0, v)
    if v is None:
        return (1, "undefined")
    if isinstance(v, dict):
        return (7, tuple(sorted((k, _term_key(x)) for k, x in v.items())))
    if isinstance(v, (list, tuple)):
        return (9, tuple(_term_key(x) for x in v))
    if isinstance(v, str):
        return (10, v.encode("utf-8", "surrogateescape"))
    return (10, str(v).encode())


def dotted(item: dict, key: str):
    parts = key.split(".")
    v = item
    for i, k in enumerate(parts):
        if isinstance(v, dict):
            v = v.get(k, 0 if i == len(parts) - 1 else [])
        else:
            return 0 if i == len(parts) - 1 else []
    return v


def sort_keys(default_sort: list[str], sort: str | None) -> list[str] | None:
    """The keys a listing is sorted by: ``sort``'s, then the resource's default ones; None for
    ``sort=`` (the natural order, not reversed either)."""
    if sort == "":
        return None
    keys = list(default_sort)
    if sort:
        keys = [k for k in sort.split(",") if k] + [k for k in keys if k not in sort.split(",")]
    return keys


def sort_items(items: list, default_sort: list[str], sort: str | None, reverse: bool) -> list:
    keys = sort_keys(default_sort, sort)
    if keys is None:
        return items
    if keys:
        items = sorted(items, key=lambda it: tuple(_term_key(dotted(it, k)) for k in keys))
    return list(reversed(items)) if reverse else items


def _columns(item, cols: list[list[str]]):
    if isinstance(item, list):
        return [_columns(x, cols) for x in item]
    if not isinstance(item, dict):
        return item
    out = {}
    for k, v in item.items():
        sub = [c[1:] for c in cols if c[0] == k]
        if not sub:
            continue
        out[k] = v if any(not s for s in sub) else _columns(v, [s for s in sub if s])
    return out


def _int_param(request: web.Request, name: str):
    v = request.query.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return v


def _pagination(request: web.Request) -> tuple[int | None, int | None]:
    page, size = _int_param(request, "page"), _int_param(request, "page_size")
    if page is not None:
        ok = isinstance(page, int) and page > 0 and (size is None or (isinstance(size, int) and 0 < size <= MAX_PAGE_SIZE))
        if not ok:
            raise bad_request(f"Invalid pagination parameters: page number {_erl(page)}, page size {_erl(size)}",
                              "invalid_pagination_parameters")
        size = size or DEFAULT_PAGE_SIZE
    return page, size


def _name_matches(request: web.Request):
    """The ``name``/``use_regex`` filter as a test of a name, or None when there is none."""
    q = request.query
    name = q.get("name")
    if not name:
        return None
    if q.get("use_regex") == "true":
        try:
            rx = re.compile(name, re.IGNORECASE)
        except re.error:
            raise bad_request(f"invalid regular expression '{name}'") from None
        return lambda n: rx.search(n) is not None
    name = name.lower()
    return lambda n: name in n.lower()


def _col_paths(request: web.Request):
    cols = request.query.get("columns")
    return [c.split(".") for c in cols.split(",") if c] if cols else None


def _page(request, page: int, size: int, filtered: int, total: int, chunk_of) -> web.Response:
    offset = (page - 1) * size
    if offset > filtered:
        raise bad_request(f"Page out of range, page: {page} page size: {size}, len: {filtered}",
                          "page_out_of_range")
    chunk = chunk_of(offset, offset + size)
    col_paths = _col_paths(request)
    if col_paths:
        chunk = _columns(chunk, col_paths)
    return json_response({"filtered_count": filtered, "item_count": len(chunk), "items": chunk,
                          "page": page, "page_count": (filtered + size - 1) // size, "page_size": size,
                          "total_count": total})


def respond(request: web.Request, items: list, default_sort: list[str] = ("name",)) -> web.Response:
    """The listing ``items`` (plain dicts) as RabbitMQ would return it for this request."""
    q = request.query
    page, size = _pagination(request)
    items = sort_items(items, list(default_sort), q.get("sort"), q.get("sort_reverse") == "true")
    if page is None:
        col_paths = _col_paths(request)
        return json_response(_columns(items, col_paths) if col_paths else items)
    total = len(items)
    matches = _name_matches(request)
    if matches is not None:
        items = [it for it in items if matches(str(it.get("name", "")))]
    return _page(request, page, size, len(items), total, lambda a, b: items[a:b])


def _cheap_key(v):
    """:func:`_term_key` for a string or an int, faster: strings order bytewise after every
    number (Erlang's term order), ints by value."""
    if type(v) is str:
        return (1, v.encode("utf-8", "surrogateescape"))
    return (0, v)


def respond_objects(request: web.Request, objects: list, build: Callable, cheap: dict[str, Callable],
                    default_sort: list[str] = ("name",)) -> web.Response:
    """:func:`respond` for the items ``build(o)`` of ``objects``, building only the requested
    page's when the request is paged and sorted only by keys in ``cheap`` (key -> the
    object's value, a string or an int equal to the item's; ``cheap["name"]`` is the item's
    name)."""
    q = request.query
    page, size = _pagination(request)
    keys = sort_keys(list(default_sort), q.get("sort"))
    if page is None or "name" not in cheap or any(k not in cheap for k in keys or ()):
        return respond(request, [build(o) for o in objects], default_sort)
    total = len(objects)
    matches = _name_matches(request)
    if matches is not None:
        name_of = cheap["name"]
        objects = [o for o in objects if matches(str(name_of(o)))]
    if keys is not None:
        getters = [cheap[k] for k in keys]
        if getters:
            objects = sorted(objects, key=lambda o: tuple(_cheap_key(g(o)) for g in getters))
        if q.get("sort_reverse") == "true":
            objects = objects[::-1]
    return _page(request, page, size, len(objects), total, lambda a, b: [build(o) for o in objects[a:b]])


def _erl(v) -> str:
    return "undefined" if v is None else str(v)


def json_response(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
