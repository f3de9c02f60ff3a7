"""Reading request bodies as the management plugin does."""
from __future__ import annotations

import json

from aiohttp import web

from .errors import bad_request


async def read_json(request: web.Request) -> dict:
    """The request's JSON object body (400 ``not_json`` otherwise; empty body: {})."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("not_json") from None
    if not isinstance(body, dict):
        raise bad_request("not_json")
    return body
