"""Users, vhost permissions and topic permissions, and the checks the channel asks for.

What RabbitMQ 3.10's internal auth backend does (``rabbit_auth_backend_internal``,
``rabbit_access_control``, ``rabbit_channel``), copied:

* **Login** (PLAIN/AMQPLAIN): a blank password is refused; an unknown user or a wrong
  password is ``user 'NAME' - invalid credentials``; a user without a password hash can
  log in only through EXTERNAL (a client certificate). Users in ``loopback_users`` may log
  in only from a loopback address (``user 'NAME' can only connect via localhost``).
* **Vhost access** at connection.open: the user needs a permission entry for the vhost,
  whatever its regexps (``access to vhost 'V' refused for user 'U'``).
* **Resource permissions**: three regular expressions per user and vhost (configure,
  write, read) matched against the resource name with ``re:run`` -- a *search*, not
  anchored: ``foo`` allows ``xfooy``; an empty string means ``^$`` (nothing but the empty
  name, which no queue or exchange has). The default exchange is checked as
  ``amq.default``; a server-named queue is checked by its generated ``amq.gen-...`` name.
  A refusal is 403 ``access to queue 'Q' in vhost 'V' refused for user 'U'``. Which
  permission each method needs is decided by the channel (``broker/channel``), in
  RabbitMQ's order with its other checks.
* **Topic permissions** (``set_topic_permissions``): per user, vhost and *topic* exchange,
  write and read regexps matched against the routing key of a publish (write) or a binding
  (read); ``{username}`` and ``{vhost}`` in a regexp are replaced first (``{client_id}``
  exists only for MQTT, so it stays literal for AMQP 0-9-1, as in RabbitMQ). No entry for
  an exchange means allowed. Refusal: ``access to topic 'RK' in exchange 'X' in vhost 'V'
  refused for user 'U'``.
* **user_id**: a published ``user_id`` must be the connection's user unless the user has
  the ``impersonator`` tag (406 ``user_id property set to 'A' but authenticated user was
  'B'``). The internal user of a shovel's or federation link's own-broker end
  (:class:`InternalUser`, RabbitMQ's dummy-backend user) may publish any ``user_id``, as
  ``rabbit_channel:check_user_id_header`` lets a user of ``rabbit_auth_backend_dummy`` do: a
  shovelled message keeps the ``user_id`` it was published with. (RabbitMQ's federation
  publishes as the default user, made an impersonator when the upstream has
  ``trust-user-id``, and clears ``user_id`` otherwise -- the link does the clearing here.)

RabbitMQ's channel caches up to 12 successful checks and forgets them when it idles, so a
changed permission reaches an open channel at a time that depends on its traffic. Leveret
applies a change at the next operation: every mutation bumps :attr:`AccessControl.generation`,
which a channel compares against its own cache of allowed checks (the cache is what keeps
a publish's check off the hot path). Erlang's ``re`` is PCRE on bytes; Leveret uses Python's
``re`` on the name: the same for the regexps people write (anchors, classes, alternation,
``.*``), different only in exotic PCRE syntax.

This package imports only the protocol layer (for the reply errors): the broker owns an
:class:`AccessControl` and persists what changes.
"""
from __future__ import annotations

import ipaddress
import re

from ..amqp.errors import access_refused, precondition_failed
from .passwords import DEFAULT_ALGORITHM, check_password, hash_password

PERMS = ("configure", "write", "read")


class User:
    __slots__ = ("name", "password_hash", "algorithm", "tags", "limits")

    def __init__(self, name: str, password_hash: bytes = b"", algorithm: str = DEFAULT_ALGORITHM,
                 tags=(), limits: dict | None = None):
        self.name = name
        self.password_hash = password_hash
        self.algorithm = algorithm
        self.tags = list(tags)
        self.limits = dict(limits or {})

    @classmethod
    def with_password(cls, name: str, password: str | None, tags=(), algorithm: str = DEFAULT_ALGORITHM):
        return cls(name, hash_password(password, algorithm) if password else b"", algorithm, tags)

    def check(self, password: str) -> bool:
        return bool(self.password_hash) and check_password(password, self.password_hash, self.algorithm)

    @property
    def impersonator(self) -> bool:
        return "impersonator" in self.tags


class InternalUser(User):
    """The user of a direct connection a plugin-like feature opens to its own broker (a shovel's
    ``amqp://`` end): RabbitMQ's ``none`` user (``rabbit_auth_backend_dummy``), which may use
    every vhost and every resource. It has no password and is in no user table."""

    __slots__ = ()

    def __init__(self, name: str = "none"):
        super().__init__(name)


def compile_regexp(pattern: str) -> re.Pattern:
    """A permission regexp as ``re:run`` reads it; an empty one matches only the empty name.
    Raises ValueError for one that does not compile (RabbitMQ refuses it when it is set)."""
    try:
        return re.compile(pattern or "^$")
    except re.error as e:
        raise ValueError(f"Invalid regexp '{pattern}': {e}") from None


class Permission:
    """A user's configure / write / read regexps in one vhost."""

    __slots__ = ("configure", "write", "read", "_res")

    def __init__(self, configure: str, write: str, read: str):
        self.configure, self.write, self.read = configure, write, read
        self._res = {p: compile_regexp(r) for p, r in zip(PERMS, (configure, write, read))}

    def allows(self, perm: str, name: str) -> bool:
        return self._res[perm].search(name) is not None


class TopicPermission:
    """A user's write / read regexps for the routing keys of one topic exchange."""

    __slots__ = ("exchange", "write", "read")

    def __init__(self, exchange: str, write: str, read: str):
        compile_regexp(write), compile_regexp(read)
        self.exchange, self.write, self.read = exchange, write, read

    def allows(self, perm: str, routing_key: str, variables: dict) -> bool:
        pattern = (self.write if perm == "write" else self.read) or "^$"
        for k, v in variables.items():
            pattern = pattern.replace("{" + k + "}", v)
        try:
            return re.search(pattern, routing_key) is not None
        except re.error:          # a variable's value made it invalid: nothing matches
            return False


def resource_text(kind: str, name: str, vhost: str) -> str:
    """``rabbit_misc:rs``: ``queue 'q' in vhost '/'``."""
    return f"{kind} '{name}' in vhost '{vhost}'"


class AccessControl:
    """Users, permissions and topic permissions of one broker (no persistence: the broker
    writes what changes to its store)."""

    def __init__(self, loopback_users=("guest",)):
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.topic_permissions: dict[tuple[str, str], dict[str, TopicPermission]] = {}
        self.loopback_users = set(loopback_users or ())
        self.generation = 0

    def changed(self) -> None:
        self.generation += 1

    # ------------------------------------------------------------ login

    def login(self, username: str, password: str, peer_host: str | None) -> tuple[User | None, str]:
        """(user, "") or (None, the reason RabbitMQ logs)."""
        if password == "":
            return None, (f"user '{username}' attempted to log in with a blank password, which is "
                          "prohibited by the internal authN backend. To use TLS/x509 certificate-based "
                          "authentication, see the rabbitmq_auth_mechanism_ssl plugin and configure the "
                          "client to use the EXTERNAL authentication mechanism. Alternatively change the "
                          "password for the user to be non-blank.")
        u = self.users.get(username)
        if u is None or not u.check(password):
            return None, f"user '{username}' - invalid credentials"
        return self._loopback(u, peer_host)

    def login_external(self, username: str, peer_host: str | None) -> tuple[User | None, str]:
        """A user named by a verified client certificate: it must exist, password or not."""
        u = self.users.get(username)
        if u is None:
            return None, f"user '{username}' - invalid credentials"
        return self._loopback(u, peer_host)

    def _loopback(self, u: User, peer_host: str | None) -> tuple[User | None, str]:
        if u.name in self.loopback_users and peer_host is not None and not is_loopback(peer_host):
            return None, f"user '{u.name}' can only connect via localhost"
        return u, ""

    # ------------------------------------------------------------ checks

    def vhost_access(self, user: User, vhost: str) -> bool:
        return (user.name, vhost) in self.permissions or type(user) is InternalUser

    def check(self, user: User, vhost: str, kind: str, name: str, perm: str) -> None:
        """403 unless ``user`` has ``perm`` (configure/write/read) on the resource."""
        if kind == "exchange" and name == "":
            name = "amq.default"
        p = self.permissions.get((user.name, vhost))
        if (p is None or not p.allows(perm, name)) and type(user) is not InternalUser:
            raise access_refused(f"access to {resource_text(kind, name, vhost)} refused for user "
                                 f"'{user.name}'")

    def check_topic(self, user: User, vhost: str, exchange: str, routing_key: str, perm: str) -> None:
        """403 unless the routing key passes the user's topic permission for ``exchange``
        (a topic exchange; the caller checks the type)."""
        tp = self.topic_permissions.get((user.name, vhost))
        if not tp:
            return
        t = tp.get(exchange)
        if t is None or t.allows(perm, routing_key, {"username": user.name, "vhost": vhost}):
            return
        raise access_refused(f"access to topic '{routing_key}' in exchange "
                             f"'{exchange}' in vhost '{vhost}' refused for user '{user.name}'")

    @staticmethod
    def check_user_id(user: User, user_id: str) -> None:
        if user_id != user.name and not user.impersonator and type(user) is not InternalUser:
            raise precondition_failed(f"user_id property set to '{user_id}' but authenticated user "
                                      f"was '{user.name}'")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
