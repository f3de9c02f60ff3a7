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

RabbitMQ builds every item before it pages. :func:`respond` gives the same answer building
only the page's items when it can (see its docstring): a :class:`View` whose cheap fields
cover every sort key is sorted, filtered and paged first, so a page of 10,000 queues costs a
page, not 10,000 item dicts.
"""
from __future__ import annotations

import json
import re
import time

from aiohttp import web

from ..broker.introspect import MISSING, View
from ..broker.stats import SLICE, rest
from .errors import bad_request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
CHUNK = 100           # items built and encoded between two hand-backs


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
    """``rabbit_mgmt_util:get_dotted_value``: a missing key is ``[]`` on the way down and
    0 at the end, so a path missing anywhere is 0."""
    parts = key.split(".")
    last = len(parts) - 1
    v = item
    for i, k in enumerate(parts):
        default = 0 if i == last else []
        v = v.get(k, default) if isinstance(v, dict) else default
    return v


def _getter(view: View, key: str, raw: bool = False):
    """A function of an object giving ``dotted(build(obj), key)`` from the view's cheap
    fields, or None when the view has none for ``key`` (``raw``: a top-level field's own
    function, which may give MISSING for 0)."""
    if view.build is _same:
        return lambda o: dotted(o, key)
    f = view.fields.get(key)
    if f is not None:
        return f if raw else lambda o: _present(f(o))
    parts = key.split(".")
    f = view.fields.get(parts[0])
    if f is None:
        return None
    rest = ".".join(parts[1:])
    return lambda o: _sub(f(o), rest)


def _present(v):
    return 0 if v is MISSING else v


def _sub(v, rest: str):
    return dotted(v, rest) if isinstance(v, dict) else 0


def _sort_keys(default_sort, sort: str | None) -> list[str]:
    keys = list(default_sort)
    if sort:
        asked = sort.split(",")
        keys = [k for k in asked if k] + [k for k in keys if k not in asked]
    return keys


def sort_items(items: list, default_sort: list[str], sort: str | None, reverse: bool) -> list:
    """``items`` (dicts) sorted as the request asks (synchronously; small lists)."""
    if sort == "":
        return items
    keys = _sort_keys(default_sort, sort)
    if keys:
        items = sorted(items, key=lambda it: tuple(_term_key(dotted(it, k)) for k in keys))
    return list(reversed(items)) if reverse else items


async def _each(seq: list, fn) -> list:
    """``[fn(x) for x in seq]``, handing the event loop back (:func:`rest`) after every
    ``SLICE`` seconds of work so that messages keep moving while a long listing is made
    (64 items at a time through ``map``: a C-level ``fn`` such as an attrgetter then costs no
    Python call per item)."""
    out: list = []
    extend = out.extend
    start = time.perf_counter()
    for i in range(0, len(seq), 64):
        extend(map(fn, seq[i:i + 64]))
        if time.perf_counter() - start > SLICE:
            await rest(time.perf_counter() - start)
            start = time.perf_counter()
    return out


def _column_keys(col: list) -> list:
    """The sort keys of one column of values (MISSING: 0): :func:`_term_key` each, or, when every
    value is a string (names: the usual sort), the strings themselves -- code point order is
    UTF-8 byte order, but for lone surrogates, when those are encoded -- with no per-value tuple
    (a UI page of 10,000 queues sorts 10,000 names every refresh)."""
    if not col or set(map(type, col)) == {str}:
        if "".join(col).isascii():
            return col
        return [v.encode("utf-8", "surrogateescape") for v in col]
    return [_term_key(_present(v)) for v in col]


async def _sorted(objs: list, getters: list, reverse: bool) -> list:
    cols = [await _each(objs, g) for g in getters]
    # a column of one same name (the vhost, with one vhost) orders nothing
    cols = [_column_keys(c) for c in cols if not (c and type(c[0]) is str and c.count(c[0]) == len(c))]
    if not cols:
        return objs[::-1] if reverse else list(objs)
    keys = cols[0] if len(cols) == 1 else list(zip(*cols))
    order = sorted(range(len(objs)), key=keys.__getitem__)
    if reverse:
        order.reverse()
    return [objs[i] for i in order]


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


def _builder(view: View, col_paths: list[list[str]] | None):
    """Build one item, with only the requested columns (from the cheap fields when the
    view's fields make its items); None for an object gone since the listing began."""
    build, gone = view.build, view.gone
    if not col_paths:
        return build if gone is None else (lambda o: None if gone(o) else build(o))
    tops = {c[0] for c in col_paths}
    if view.complete and tops <= view.fields.keys():
        fields = [(k, f) for k, f in view.fields.items() if k in tops]

        def build_columns(o):
            if gone is not None and gone(o):
                return None
            d = {}
            for k, f in fields:
                v = f(o)
                if v is not MISSING:
                    d[k] = v
            return _columns(d, col_paths)
        return build_columns
    return lambda o: None if (gone is not None and gone(o)) else _columns(build(o), col_paths)


def _int_param(request: web.Request, name: str):
    v = request.query.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return v


def _pagination(request: web.Request):
    page, size = _int_param(request, "page"), _int_param(request, "page_size")
    if page is not None:
        ok = isinstance(page, int) and page > 0 and (size is None or (isinstance(size, int) and 0 < size <= MAX_PAGE_SIZE))
        if not ok:
            raise bad_request(f"Invalid pagination parameters: page number {_erl(page)}, page size {_erl(size)}",
                              "invalid_pagination_parameters")
        size = size or DEFAULT_PAGE_SIZE
    return page, size


def _name_filter(request: web.Request, view: View, objs: list) -> list:
    name = request.query.get("name")
    if not name:
        return objs
    getter = _getter(view, "name") or (lambda o: dotted(view.build(o), "name"))
    if request.query.get("use_regex") == "true":
        try:
            rx = re.compile(name, re.IGNORECASE)
        except re.error:
            raise bad_request(f"invalid regular expression '{name}'") from None
        return [o for o in objs if rx.search(str(getter(o)))]
    name = name.lower()
    return [o for o in objs if name in str(getter(o)).lower()]


async def respond(request: web.Request, items, default_sort: list[str] = ("name",), *,
                  paginate: bool = False) -> web.Response:
    """The listing ``items`` (a :class:`View`, or a list of plain dicts) as RabbitMQ would
    return it for this request.

    ``paginate``: RabbitMQ 3.10.8 pages (``reply_list_or_paginate``) only the vhosts, exchanges,
    queues, connections and channels listings (the node-wide and per-vhost ones it has); every
    other listing (bindings, consumers, users, permissions, policies, parameters, limits, a
    vhost's connections and channels, ...) is ``reply_list``: sorted, columns applied, and the
    ``page``/``page_size``/``name`` parameters ignored.

    After ``rabbit_mgmt_util:augment_resources``: when the view has cheap fields for every
    sort key, the objects are sorted, filtered and paged first and only the page's items are
    built (with only the requested columns); otherwise every item is built, then sorted.
    Long loops (building, sort keys, JSON) hand the event loop back (:func:`rest`) as they go."""
    view = items if isinstance(items, View) else View(items, _same)
    q = request.query
    page, size = _pagination(request) if paginate else (None, None)
    sort = q.get("sort")
    keys = [] if sort == "" else _sort_keys(default_sort, sort)
    reverse = sort != "" and q.get("sort_reverse") == "true"
    cols = q.get("columns")
    col_paths = [c.split(".") for c in cols.split(",") if c] if cols else None
    getters = [_getter(view, k, raw=True) for k in keys]
    objs = view.objects
    if None in getters:             # a sort key only a built item has: build them all
        view = View([x for x in await _each(objs, _builder(view, None)) if x is not None], _same)
        objs = view.objects
        getters = [_getter(view, k, raw=True) for k in keys]
    if keys:
        objs = await _sorted(objs, getters, reverse)
    elif reverse:
        objs = objs[::-1]
    build = _builder(view, col_paths)
    if page is None:
        return await _json_list(objs, build)
    total = len(objs)
    objs = _name_filter(request, view, objs)
    offset = (page - 1) * size
    if offset > len(objs):
        raise bad_request(f"Page out of range, page: {page} page size: {size}, len: {len(objs)}",
                          "page_out_of_range")
    chunk = [x for x in map(build, objs[offset:offset + size]) if x is not None]
    return json_response({"filtered_count": len(objs), "item_count": len(chunk), "items": chunk,
                          "page": page, "page_count": (len(objs) + size - 1) // size, "page_size": size,
                          "total_count": total})


def _same(item):
    return item


async def _json_list(objs: list, build) -> web.Response:
    """``json_response([build(o) for o in objs])``, built and encoded a slice at a time."""
    parts = []
    for i in range(0, len(objs), CHUNK):
        start = time.perf_counter()
        items = [x for x in map(build, objs[i:i + CHUNK]) if x is not None]
        if items:
            parts.append(_dumps(items)[1:-1])
        if i + CHUNK < len(objs):
            await rest(time.perf_counter() - start)
    return web.Response(text="[" + ",".join(parts) + "]", content_type="application/json")


def _erl(v) -> str:
    return "undefined" if v is None else str(v)


def json_response(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
