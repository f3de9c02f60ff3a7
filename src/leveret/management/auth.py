"""Who may call what: HTTP basic auth against the broker's users, and RabbitMQ's tag rules.

As ``rabbit_mgmt_util`` (3.10.8): the user must log in (password, and ``loopback_users`` from a
non-loopback address is refused: ``User can only log in via localhost``) and carry one of the
management tags, else 401 ``Not management user``. A user's *login vhosts* are those it has a
permission entry for (whatever its tags). Then each resource asks one question:

=========================  ===============================================================  =====================================
check                      passes for                                                       refusal (401 ``not_authorised``)
=========================  ===============================================================  =====================================
:func:`require_vhost`      administrator; anyone whose login vhosts hold the path's vhost   ``User not authorised to access
                           (monitoring is no exception)                                     virtual host``
:func:`require_vhost_      administrator; monitoring (every vhost); login vhosts            same
visible`
:func:`require_monitor`    administrator, monitoring                                        ``Not monitor user``
:func:`require_policies`   administrator; policymaker in one of its login vhosts            ``User not authorised to access
                                                                                            object``
:func:`require_global_     administrator, policymaker                                       same
parameters`
:func:`require_object_     GET: monitoring/administrator or the object's own user;          same
user`                      DELETE: administrator or its own user
:func:`require_admin`      administrator                                                    ``Not administrator user``
=========================  ===============================================================  =====================================

A vhost in the path that does not exist passes the vhost checks (the resource answers 404).
Which listing shows what:

* vhosts (``/api/vhosts``), vhost limits: every vhost for monitoring/administrator, else the
  login vhosts (``list_visible_vhosts``: :func:`shown_vhosts`);
* queues, exchanges, bindings, policies, operator policies, parameters, federation links:
  every vhost's for an administrator, the login vhosts' for everyone else, monitoring
  included (``filter_vhost``: :func:`visible_vhosts`);
* connections, channels, consumers: every user's for monitoring/administrator, else the user's
  own (``filter_user``), in every vhost (``/api/vhosts/{v}/connections`` and ``/channels``
  also need :func:`require_vhost`; ``/api/consumers/{v}`` does not).

Which resource asks what is in each route's module; the tags' reach in short: ``management``
sees its login vhosts' objects and its own connections; ``policymaker`` may also manage
policies and parameters in its login vhosts and read and write global parameters;
``monitoring`` may also read the node (``/api/nodes``, the overview's node-wide totals,
``node``, ``listeners``, ``contexts``), every vhost's name and every connection and channel,
but not other vhosts' objects; ``administrator`` everything. Users, permissions, definitions,
``/api/vhosts/{vhost}``, operator policies and queue actions are administrator-only.
``tests/management/test_access.py`` shows these on both brokers.
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


NOT_OBJECT = "User not authorised to access object"
NOT_VHOST = "User not authorised to access virtual host"


def _login_vhost(request: web.Request, user: User, vhost: str) -> bool:
    """``user_matches_vhost``: a vhost that does not exist matches (the resource 404s)."""
    broker = request.app[BROKER]
    return vhost not in broker.vhosts or bool(broker.access.vhost_access(user, vhost))


def require_policies(request: web.Request, vhost: str | None = None) -> User:
    """``is_authorized_policies``: administrator, or policymaker with ``vhost`` among its login
    vhosts (policies, runtime parameters)."""
    user = authenticate(request)
    if not (is_admin(user) or (is_policymaker(user) and (vhost is None or _login_vhost(request, user, vhost)))):
        raise not_authorised(NOT_OBJECT)
    return user


def require_global_parameters(request: web.Request) -> User:
    """``is_authorized_global_parameters``: policymaker or administrator."""
    user = authenticate(request)
    if not is_policymaker(user):
        raise not_authorised(NOT_OBJECT)
    return user


def require_object_user(request: web.Request, owner: str | None) -> User:
    """``is_authorized_user`` (a connection or channel; ``owner`` None: there is none): GET for
    monitoring or the owner, DELETE for administrator or the owner."""
    user = authenticate(request)
    allowed = is_admin(user) if request.method == "DELETE" else is_monitor(user)
    if not allowed and (owner is None or owner != user.name):
        raise not_authorised(NOT_OBJECT)
    return user


def login_vhosts(request: web.Request) -> list[str]:
    """The vhosts the user has a permission entry for."""
    user = authenticate(request)
    broker = request.app[BROKER]
    return [v for v in broker.vhosts if broker.access.vhost_access(user, v)]


def _vhosts(request: web.Request, sees_all) -> list[str]:
    if sees_all(authenticate(request)):
        return list(request.app[BROKER].vhosts)
    return login_vhosts(request)


def visible_vhosts(request: web.Request) -> list[str]:
    """``filter_vhost``: the vhosts whose objects a listing shows: all for an administrator,
    the login vhosts for anyone else (monitoring too)."""
    return _vhosts(request, is_admin)


def shown_vhosts(request: web.Request) -> list[str]:
    """``list_visible_vhosts``: the vhosts ``/api/vhosts`` lists: all for monitoring and
    administrator, else the login vhosts."""
    return _vhosts(request, is_monitor)


def _require_vhost(request: web.Request, vhost: str, sees_all) -> User:
    user = authenticate(request)
    if not sees_all(user) and not _login_vhost(request, user, vhost):
        raise not_authorised(NOT_VHOST)
    if vhost not in request.app[BROKER].vhosts:
        raise not_found()
    return user


def require_vhost(request: web.Request, vhost: str) -> User:
    """``is_authorized_vhost``: the user may use ``vhost``'s objects (which must exist: 404
    otherwise, as RabbitMQ)."""
    return _require_vhost(request, vhost, is_admin)


def require_vhost_visible(request: web.Request, vhost: str) -> User:
    """``is_authorized_vhost_visible``: as :func:`require_vhost`, and monitoring sees every vhost."""
    return _require_vhost(request, vhost, is_monitor)
