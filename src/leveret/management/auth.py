"""Who may call what: HTTP basic auth against the broker's users, and RabbitMQ's tag rules.

As ``rabbit_mgmt_util`` (3.10): the user must log in (password, and ``loopback_users`` from a
non-loopback address is refused: ``User can only log in via localhost``) and carry one of the
management tags, else 401 ``Not management user``. Then per resource:

==================  ======================================================================
``management``      its own vhosts (those it has a permission entry for) and their objects
``policymaker``     + policies and parameters in its vhosts
``monitoring``      + every vhost's objects read-only, node-wide data (nodes, connections)
``administrator``   everything (users, vhosts, permissions, definitions, ...)
==================  ======================================================================

Refusals: 401 ``Not administrator user`` / ``Not monitor user`` / ``Not policymaker user``;
a vhost the user may not see is 401 ``User not authorised to access virtual host``.
"""
from __future__ import annotations

import base64
import binascii

from aiohttp import web

from ..auth import User
from ..auth.access import is_loopback
from .errors import login_failed, no_credentials, not_authorised, not_found
from .keys import BROKER

MANAGEMENT_TAGS = {"management", "policymaker", "monitoring", "administrator"}
# the logged-in user, cached on the request (a typed key where aiohttp has them: 3.13+)
_USER = web.RequestKey("user", User) if hasattr(web, "RequestKey") else "user"


def authenticate(request: web.Request) -> User:
    """The logged-in user of ``request`` (cached on it), or raise the 401 RabbitMQ sends."""
    user = request.get(_USER)
    if user is not None:
        return user
    header = request.headers.get("Authorization", "")
    # (a script's call is not challenged, or the browser would open its own login dialog)
    challenge = request.headers.get("X-Requested-With") != "XMLHttpRequest"
    if not header.lower().startswith("basic "):
        raise no_credentials(challenge)
    try:
        name, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise login_failed(challenge=challenge) from None
    broker = request.app[BROKER]
    user, reason = broker.access.login(name, password, None)
    if user is None:
        raise login_failed(challenge=challenge)
    peer = request.remote
    if name in broker.access.loopback_users and peer is not None and not is_loopback(peer):
        raise login_failed("User can only log in via localhost", challenge)
    if not MANAGEMENT_TAGS & set(user.tags):
        raise not_authorised("Not management user")
    request[_USER] = user
    return user


def is_admin(user: User) -> bool:
    return "administrator" in user.tags


def is_monitor(user: User) -> bool:
    return bool({"administrator", "monitoring"} & set(user.tags))


def is_policymaker(user: User) -> bool:
    return bool({"administrator", "policymaker"} & set(user.tags))


def require_admin(request: web.Request) -> User:
    user = authenticate(request)
    if not is_admin(user):
        raise not_authorised("Not administrator user")
    return user


def require_monitor(request: web.Request) -> User:
    user = authenticate(request)
    if not is_monitor(user):
        raise not_authorised("Not monitor user")
    return user


def require_policymaker(request: web.Request) -> User:
    user = authenticate(request)
    if not is_policymaker(user):
        raise not_authorised("Not policymaker user")
    return user


def visible_vhosts(request: web.Request) -> list[str]:
    """The vhosts whose objects the user may list: all for monitoring/administrator, else
    those it has a permission entry for."""
    user = authenticate(request)
    broker = request.app[BROKER]
    if is_monitor(user):
        return list(broker.vhosts)
    return [v for v in broker.vhosts if broker.access.vhost_access(user, v)]


def require_vhost(request: web.Request, vhost: str) -> User:
    """The user may see ``vhost`` (which must exist: 404 otherwise, as RabbitMQ)."""
    user = authenticate(request)
    broker = request.app[BROKER]
    if vhost not in broker.vhosts:
        raise not_found()
    if not is_monitor(user) and not broker.access.vhost_access(user, vhost):
        raise not_authorised("User not authorised to access virtual host")
    return user
