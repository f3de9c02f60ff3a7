"""Running AMQP methods for a request, and RabbitMQ's HTTP answers to their errors.

Two paths, as in ``rabbit_mgmt_util``: :func:`direct_request` (declare, delete, bind, purge:
``rabbit_channel:handle_method`` there) answers a 404 error with ``not_found`` and the bare
explanation, an access refusal with 401 ``Access refused.``, anything else with 400 and the
explanation; :func:`with_channel` (``/get``, ``/publish``: a direct connection there) answers
404 and 403 with the whole reply text and anything else with 400 ``"<code> <text>"``.
"""
from __future__ import annotations

from contextlib import contextmanager

from aiohttp import web

from ..amqp.errors import AMQPError
from ..broker.direct import DirectClient
from .auth import authenticate, require_vhost
from .errors import bad_request, json_error, not_authorised
from .keys import BROKER


def explanation(text: str) -> str:
    """``NOT_FOUND - no queue 'q'`` -> ``no queue 'q'``."""
    head, sep, rest = text.partition(" - ")
    return rest if sep and head.isupper() else text


def check_vhost(request: web.Request, vhost: str) -> None:
    """A declare's vhost: 404 ``vhost_not_found`` if missing (``with_vhost_and_props``)."""
    if vhost not in request.app[BROKER].vhosts:
        authenticate(request)
        raise json_error(404, "not_found", "vhost_not_found")
    require_vhost(request, vhost)


@contextmanager
def direct_request(request: web.Request, vhost: str):
    """A :class:`DirectClient` as the request's user; AMQP errors become RabbitMQ's replies."""
    if vhost not in request.app[BROKER].vhosts:
        raise json_error(404, "not_found", "vhost_not_found")
    try:
        with DirectClient(request.app[BROKER], authenticate(request), vhost) as client:
            yield client
    except AMQPError as e:
        if e.reply_code == 404:
            raise json_error(404, "not_found", explanation(e.reply_text)) from None
        if e.reply_code in (403, 530):
            raise not_authorised("Access refused.") from None
        raise bad_request(explanation(e.reply_text)) from None


@contextmanager
def with_channel(request: web.Request, vhost: str):
    if vhost not in request.app[BROKER].vhosts:
        raise json_error(404, "not_found", "vhost_not_found")
    try:
        with DirectClient(request.app[BROKER], authenticate(request), vhost) as client:
            yield client
    except AMQPError as e:
        if e.reply_code == 404:
            raise json_error(404, "not_found", e.reply_text) from None
        if e.reply_code == 403:
            raise not_authorised(e.reply_text) from None
        if e.reply_code == 530:
            raise not_authorised("Access refused.") from None
        raise bad_request(f"{e.reply_code} {e.reply_text}") from None


def key_missing(body: dict, keys: tuple) -> None:
    """400 ``[{key_missing,k},...]`` for the keys the body lacks (rabbit_mgmt_util:with_decode)."""
    missing = [k for k in keys if k not in body]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name) == "true"
