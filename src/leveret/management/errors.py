"""HTTP errors with the management plugin's JSON body: ``{"error": ..., "reason": ...}``.

The shapes, as RabbitMQ 3.10's ``rabbit_mgmt_util`` sends them (checked against a running
RabbitMQ): a failed login is 401 ``{"error":"not_authorized","reason":"Login failed"}`` with
``WWW-Authenticate: Basic realm="RabbitMQ Management"`` (no credentials at all: the same
header and an empty body); an unknown object or path is 404 ``{"error":"Object Not Found",
"reason":"Not Found"}``; a body that is not JSON is 400 ``{"error":"bad_request",
"reason":"not_json"}``; a method a resource does not have is 405 with an ``allow`` header
and no body.

One difference: a request carrying ``X-Requested-With: XMLHttpRequest`` (a script's call, as
Leveret's web UI makes them) gets its 401 without ``WWW-Authenticate``, so the browser shows the
page's own "Login failed" instead of its basic-auth dialog (RabbitMQ always challenges).
"""
from __future__ import annotations

import json

from aiohttp import web

REALM = 'Basic realm="RabbitMQ Management"'


def json_error(status: int, error: str, reason: str, headers: dict | None = None) -> web.HTTPException:
    cls = web.HTTPException
    for c in (web.HTTPBadRequest, web.HTTPUnauthorized, web.HTTPForbidden, web.HTTPNotFound,
              web.HTTPMethodNotAllowed, web.HTTPConflict, web.HTTPInternalServerError,
              web.HTTPServiceUnavailable):
        if c.status_code == status:
            cls = c
            break
    body = json.dumps({"error": error, "reason": reason}, separators=(",", ":"))
    if cls is web.HTTPMethodNotAllowed:
        raise TypeError("use method_not_allowed()")
    return cls(text=body, content_type="application/json", headers=headers)


def not_found() -> web.HTTPException:
    return json_error(404, "Object Not Found", "Not Found")


def bad_request(reason: str, error: str = "bad_request") -> web.HTTPException:
    return json_error(400, error, reason)


def not_authorised(reason: str) -> web.HTTPException:
    """401 for a user that logged in but may not do this (RabbitMQ spells this one
    ``not_authorised``; a failed login is ``not_authorized``)."""
    return json_error(401, "not_authorised", reason)


def login_failed(reason: str = "Login failed", challenge: bool = True) -> web.HTTPException:
    return json_error(401, "not_authorized", reason, headers={"WWW-Authenticate": REALM} if challenge else None)


def no_credentials(challenge: bool = True) -> web.HTTPException:
    e = web.HTTPUnauthorized(headers={"WWW-Authenticate": REALM} if challenge else None)
    e.body = b""           # (RabbitMQ sends no body)
    return e
