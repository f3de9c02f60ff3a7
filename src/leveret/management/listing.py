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
"""
from __future__ import annotations

import json
import re

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


def sort_items(items: list, default_sort: list[str], sort: str | None, reverse: bool) -> list:
    if sort == "":
        return items
    keys = list(default_sort)
    if sort:
        keys = [k for k in sort.split(",") if k] + [k for k in keys if k not in sort.split(",")]
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


def respond(request: web.Request, items: list, default_sort: list[str] = ("name",)) -> web.Response:
    """The listing ``items`` (plain dicts) as RabbitMQ would return it for this request."""
    q = request.query
    page, size = _int_param(request, "page"), _int_param(request, "page_size")
    if page is not None:
        ok = isinstance(page, int) and page > 0 and (size is None or (isinstance(size, int) and 0 < size <= MAX_PAGE_SIZE))
        if not ok:
            raise bad_request(f"Invalid pagination parameters: page number {_erl(page)}, page size {_erl(size)}",
                              "invalid_pagination_parameters")
        size = size or DEFAULT_PAGE_SIZE
    items = sort_items(items, list(default_sort), q.get("sort"), q.get("sort_reverse") == "true")
    cols = q.get("columns")
    col_paths = [c.split(".") for c in cols.split(",") if c] if cols else None
    if page is None:
        return json_response(_columns(items, col_paths) if col_paths else items)
    total = len(items)
    name = q.get("name")
    if name:
        if q.get("use_regex") == "true":
            try:
                rx = re.compile(name, re.IGNORECASE)
            except re.error:
                raise bad_request(f"invalid regular expression '{name}'") from None
            items = [it for it in items if rx.search(str(it.get("name", "")))]
        else:
            items = [it for it in items if name.lower() in str(it.get("name", "")).lower()]
    offset = (page - 1) * size
    if offset > len(items):
        raise bad_request(f"Page out of range, page: {page} page size: {size}, len: {len(items)}",
                          "page_out_of_range")
    chunk = items[offset:offset + size]
    if col_paths:
        chunk = _columns(chunk, col_paths)
    return json_response({"filtered_count": len(items), "item_count": len(chunk), "items": chunk,
                          "page": page, "page_count": (len(items) + size - 1) // size, "page_size": size,
                          "total_count": total})


def _erl(v) -> str:
    return "undefined" if v is None else str(v)


def json_response(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
