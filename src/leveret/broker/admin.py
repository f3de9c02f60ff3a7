"""Administration: users, vhosts, permissions, topic permissions and limits, kept durable.

The operations ``rabbitmqctl`` and the management API perform (``add_user``,
``delete_vhost``, ``set_permissions``, ``set_vhost_limits``, ...), as a mixin of
:class:`~leveret.broker.broker.Broker`; ``leveret ctl``, the management API, the
definitions loader and embedding programs call them. Each writes what it changes to the
store's definitions log and bumps the access-control generation, so open channels apply it
at their next operation.

RabbitMQ's side effects, copied (``rabbit_auth_backend_internal``, ``rabbit_vhost``,
``rabbit_connection_tracking``): deleting a user closes its connections with 320
``CONNECTION_FORCED - user 'U' is deleted``; deleting a vhost closes the connections to it
(``vhost 'V' is deleted``) and removes its queues, exchanges, bindings, policies and every
permission in it. Changing a password, tags or permissions closes nothing (RabbitMQ's
channels pick up a permission change when their check cache misses; Leveret's at once).
A refusal raises :class:`AdminError` with RabbitMQ's error term (``no_such_user``,
``user_already_exists``, ...) for the caller to present.
"""
from __future__ import annotations

import logging
import re

from ..amqp.errors import AMQPError
from ..auth import AccessControl, Permission, TopicPermission, User, compile_regexp
from ..auth.passwords import DEFAULT_ALGORITHM, algorithm as hashing_algorithm, decode_hash, encode_hash, hash_password
from .queue import QUEUE_TYPES

log = logging.getLogger("leveret.admin")

VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")


class AdminError(ValueError):
    """A refused administrative operation: ``kind`` is RabbitMQ's error atom
    (``no_such_user``, ``no_such_vhost``, ``user_already_exists``, ``vhost_already_exists``,
    ``invalid_regexp``, ``invalid_limit``), ``str()`` the one-line message."""

    def __init__(self, kind: str, message: str, **details):
        super().__init__(message)
        self.kind = kind
        self.details = details      # what a client needs to word it as RabbitMQ does


class AdminMixin:
    """Administrative operations of :class:`~leveret.broker.broker.Broker`."""

    access: AccessControl

    # ------------------------------------------------------------ lookups

    def _user(self, name: str) -> User:
        u = self.access.users.get(name)
        if u is None:
            raise AdminError("no_such_user", f"User '{name}' does not exist")
        return u

    def _vhost(self, name: str):
        v = self.vhosts.get(name)
        if v is None:
            raise AdminError("no_such_vhost", f"Virtual host '{name}' does not exist")
        return v

    @property
    def users(self) -> dict:
        return self.access.users

    # ------------------------------------------------------------ vhosts

    def add_vhost(self, name: str, *, exist_ok: bool = True, limits: dict | None = None,
                  description: str = "", tags=(), default_queue_type: str | None = None):
        """Create a vhost (with RabbitMQ's metadata: ``description``, ``tags`` and
        ``default_queue_type``, which only a new vhost takes; an unknown queue type is
        ``invalid_queue_type``). ``tags`` is a list, or a string kept as it is: RabbitMQ 3.10's
        ``rabbitmqctl add_vhost --tags`` without ``--default-queue-type`` stores the option's
        text unsplit, and its listings and the management API show that string."""
        v = self.vhosts.get(name)
        if v is not None:
            if not exist_ok:
                raise AdminError("vhost_already_exists", f"Virtual host '{name}' already exists")
            return v
        if default_queue_type is not None and default_queue_type not in QUEUE_TYPES:
            raise AdminError("invalid_queue_type", "invalid_queue_type")
        v = self.vhosts[name] = self._new_vhost(name)
        if limits:
            v.limits = dict(limits)
        v.description, v.tags, v.default_queue_type = description, _vhost_tags(tags), default_queue_type
        self._save_vhost(v)
        self.access.changed()
        return v

    def update_vhost_metadata(self, name: str, description: str, tags) -> None:
        """Replace an existing vhost's description and tags (``rabbit_vhost:update``; its
        default queue type stays)."""
        v = self._vhost(name)
        v.description, v.tags = description, _vhost_tags(tags)
        self._save_vhost(v)

    def _save_vhost(self, v) -> None:
        meta = {"description": v.description, "tags": vhost_tags(v)}
        if v.default_queue_type:
            meta["default_queue_type"] = v.default_queue_type
        self.store.definitions.put("vhost", (v.name,), limits=dict(v.limits), **meta)

    def delete_vhost(self, name: str) -> None:
        v = self._vhost(name)
        log.info("deleting vhost '%s'", name)
        self.close_connections(lambda c: c.vhost is v, f"vhost '{name}' is deleted")
        for q in list(v.queues.values()):
            v.delete_queue(q)
        for x in list(v.exchanges.values()):
            if x.name:
                v._remove_exchange(x)
        del self.vhosts[name]
        self.store.definitions.delete("vhost", (name,))
        for key in [k for k in self.access.permissions if k[1] == name]:
            del self.access.permissions[key]
        for key in [k for k in self.access.topic_permissions if k[1] == name]:
            del self.access.topic_permissions[key]
        self.access.changed()
        for key in [k for k in self.runtime_parameters if k[0] == name]:
            self.clear_runtime_parameter(*key)

    def set_vhost_limits(self, name: str, limits: dict) -> None:
        """Replace the vhost's limits (``{"max-connections": N, "max-queues": N}``; a negative
        value means no limit), as ``rabbitmqctl set_vhost_limits`` does."""
        v = self._vhost(name)
        v.limits = _check_limits(limits, VHOST_LIMITS)
        self._save_vhost(v)

    def clear_vhost_limits(self, name: str) -> None:
        """Remove the vhost's limits; as ``rabbitmqctl clear_vhost_limits`` (which clears the
        ``vhost-limits`` runtime parameter), refused with ``no_such_parameter`` when the vhost
        has none or does not exist."""
        v = self.vhosts.get(name)
        if v is None or not v.limits:
            raise AdminError("no_such_parameter", "Parameter does not exist")
        v.limits = {}
        self._save_vhost(v)

    # ------------------------------------------------------------ users

    def add_user(self, name: str, password: str | None, tags=(), *, exist_ok: bool = True) -> User:
        """Create a user (``password`` None or empty: no password, certificate login only).
        ``exist_ok`` (the embedding API's default) replaces an existing user's password and
        tags; ``rabbitmqctl add_user`` passes False and gets ``user_already_exists``."""
        if not exist_ok and name in self.access.users:
            raise AdminError("user_already_exists", f"User '{name}' already exists")
        u = User.with_password(name, password, _check_tags(tags))
        old = self.access.users.get(name)
        if old is not None:
            u.limits = old.limits
        return self.put_user(u)

    def put_user(self, u: User) -> User:
        self.access.users[u.name] = u
        self._save_user(u)
        self.access.changed()
        return u

    def add_user_with_hash(self, name: str, password_hash: str, algorithm: str | None, tags=(),
                           limits: dict | None = None) -> User:
        """A user from a definitions file: ``password_hash`` as RabbitMQ exports it."""
        return self.put_user(User(name, decode_hash(password_hash) if password_hash else b"",
                                  hashing_algorithm(algorithm), _check_tags(tags),
                                  _check_limits(limits or {}, USER_LIMITS)))

    def put_user_definition(self, body: dict, version: str | None = None) -> bool:
        """Create or update a user from a JSON object as the management API's ``PUT
        /api/users/U`` and the definitions import give it (``rabbit_auth_backend_internal:
        put_user``): ``name``, ``tags`` (required; or the old ``administrator`` flag),
        ``password`` or ``password_hash`` (+ ``hashing_algorithm``; without it the algorithm
        follows the definitions' RabbitMQ ``version``: MD5 before 3.6, else SHA-256),
        ``limits``, and for a new user ``permissions`` ``{vhost: {configure, write, read}}``.
        An existing user given neither password nor hash loses its password, as in RabbitMQ.
        Returns whether the user was created; refusals are AdminError with RabbitMQ's reason as ``kind``."""
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise AdminError("bad_request", "user name missing")
        if "tags" in body:
            tags = body["tags"]
        elif "administrator" in body:
            tags = ["administrator"] if str(body["administrator"]).lower() == "true" else []
        else:
            raise AdminError("tags_not_present", "tags_not_present")
        if not isinstance(tags, (str, list)) or not all(isinstance(t, str) for t in tags):
            raise AdminError("bad_request", f"tags must be a string or a list of strings, not {_erl(tags)}")
        has_pw, has_hash = "password" in body, "password_hash" in body
        if has_pw and has_hash:
            raise AdminError("both_password_and_password_hash_are_provided",
                             "both_password_and_password_hash_are_provided")
        if has_pw and not isinstance(body["password"], str):
            raise AdminError("bad_request", f"password must be a string, not {_erl(body['password'])}")
        limits = body.get("limits")
        if limits is not None:
            limits = _check_limits(limits, USER_LIMITS, "user-limits")
        existed = name in self.access.users
        if has_hash:
            ph = body["password_hash"]
            try:
                raw = decode_hash(ph) if ph else b""
            except (ValueError, TypeError):
                raise AdminError("not_base64", f"password_hash is not base64: {ph!r}", value=ph) from None
            try:
                algorithm = hashing_algorithm(body.get("hashing_algorithm"), version)
            except ValueError as e:
                raise AdminError("bad_request", str(e)) from None
            old = self.access.users.get(name)
            self.put_user(User(name, raw, algorithm, _check_tags(tags),
                               limits if limits is not None else (old.limits if old else {})))
        else:
            u = self.add_user(name, body["password"] if has_pw else None, tags)
            if limits is not None:
                u.limits = limits
                self._save_user(u)
        perms = body.get("permissions")
        if not existed and isinstance(perms, dict):
            for vhost, p in perms.items():
                self.set_permissions(name, vhost, p.get("configure"), p.get("write"), p.get("read"))
        return not existed

    def _save_user(self, u: User) -> None:
        self.store.definitions.put("user", (u.name,), password_hash=encode_hash(u.password_hash),
                                   hashing_algorithm=u.algorithm, tags=list(u.tags), limits=dict(u.limits))

    def delete_user(self, name: str) -> None:
        self._user(name)
        log.info("deleting user '%s'", name)
        del self.access.users[name]
        self.store.definitions.delete("user", (name,))
        for key in [k for k in self.access.permissions if k[0] == name]:
            del self.access.permissions[key]
        for key in [k for k in self.access.topic_permissions if k[0] == name]:
            del self.access.topic_permissions[key]
        self.access.changed()
        self.close_connections(lambda c: c.user is not None and c.user.name == name,
                               f"user '{name}' is deleted")

    def change_password(self, name: str, password: str) -> None:
        u = self._user(name)
        u.password_hash = hash_password(password, DEFAULT_ALGORITHM) if password else b""
        u.algorithm = DEFAULT_ALGORITHM
        self._save_user(u)

    def clear_password(self, name: str) -> None:
        u = self._user(name)
        u.password_hash = b""
        self._save_user(u)

    def set_user_tags(self, name: str, tags) -> None:
        u = self._user(name)
        u.tags = _check_tags(tags)
        self._save_user(u)
        self.access.changed()

    def authenticate_user(self, name: str, password: str) -> User:
        """``rabbitmqctl authenticate_user``: the password check alone (no loopback rule);
        a refusal raises ``AdminError("refused", reason)`` with the reason RabbitMQ gives
        (``user 'U' - invalid credentials``, the blank password text)."""
        u, reason = self.access.login(name, password, None)
        if u is None:
            raise AdminError("refused", reason)
        return u

    def set_user_limits(self, name: str, limits: dict) -> None:
        """Merge ``limits`` (``max-connections``, ``max-channels``; negative: none) into the
        user's, as ``rabbitmqctl set_user_limits`` does."""
        u = self._user(name)
        u.limits.update(_check_limits(limits, USER_LIMITS, "user-limits"))
        self._save_user(u)

    def clear_user_limits(self, name: str, limit: str = "all") -> None:
        u = self._user(name)
        if limit == "all":
            u.limits = {}
        else:
            u.limits.pop(limit, None)
        self._save_user(u)

    # ------------------------------------------------------------ permissions

    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> None:
        self._user(user)
        self._vhost(vhost)
        _check_regexps(configure, write, read)
        p = Permission(configure, write, read)
        self.access.permissions[(user, vhost)] = p
        self.store.definitions.put("permission", (user, vhost), configure=configure, write=write, read=read)
        self.access.changed()

    def clear_permissions(self, user: str, vhost: str) -> None:
        self._user(user)
        self._vhost(vhost)
        if self.access.permissions.pop((user, vhost), None) is not None:
            self.store.definitions.delete("permission", (user, vhost))
        self.access.changed()

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str, read: str) -> None:
        self._user(user)
        self._vhost(vhost)
        _check_regexps(write, read)
        t = TopicPermission(exchange, write, read)
        self.access.topic_permissions.setdefault((user, vhost), {})[exchange] = t
        self.store.definitions.put("topic_permission", (user, vhost, exchange), write=write, read=read)
        self.access.changed()

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None) -> None:
        self._user(user)
        self._vhost(vhost)
        tp = self.access.topic_permissions.get((user, vhost), {})
        for x in ([exchange] if exchange is not None else list(tp)):
            if tp.pop(x, None) is not None:
                self.store.definitions.delete("topic_permission", (user, vhost, x))
        if not tp:
            self.access.topic_permissions.pop((user, vhost), None)
        self.access.changed()

    # ------------------------------------------------------------ listings

    def list_users(self) -> list[dict]:
        return [{"user": u.name, "tags": list(u.tags)} for u in self.access.users.values()]

    def list_vhosts(self) -> list[dict]:
        return [{"name": v.name, "limits": dict(v.limits), "description": v.description, "tags": vhost_tags(v),
                 "default_queue_type": v.default_queue_type} for v in self.vhosts.values()]

    def list_permissions(self, vhost: str | None = None, user: str | None = None) -> list[dict]:
        if vhost is not None:
            self._vhost(vhost)
        if user is not None:
            self._user(user)
        return [{"user": u, "vhost": v, "configure": p.configure, "write": p.write, "read": p.read}
                for (u, v), p in self.access.permissions.items()
                if (vhost is None or v == vhost) and (user is None or u == user)]

    def list_topic_permissions(self, vhost: str | None = None, user: str | None = None) -> list[dict]:
        if vhost is not None:
            self._vhost(vhost)
        if user is not None:
            self._user(user)
        return [{"user": u, "vhost": v, "exchange": t.exchange, "write": t.write, "read": t.read}
                for (u, v), tps in self.access.topic_permissions.items()
                if (vhost is None or v == vhost) and (user is None or u == user)
                for t in tps.values()]

    def list_user_limits(self, name: str | None = None) -> list[dict]:
        """One user's limits (``{}`` when none), or every user that has some."""
        if name is not None:
            return [{"user": name, "limits": dict(self._user(name).limits)}]
        return [{"user": u.name, "limits": dict(u.limits)} for u in self.access.users.values() if u.limits]

    def list_vhost_limits(self, name: str | None = None) -> list[dict]:
        """One vhost's limits (``{}`` when none), or every vhost that has some."""
        if name is not None:
            return [{"vhost": name, "limits": dict(self._vhost(name).limits)}]
        return [{"vhost": v.name, "limits": dict(v.limits)} for v in self.vhosts.values() if v.limits]

    # ------------------------------------------------------------ queues

    def _queue(self, vhost: str, name: str):
        q = self._vhost(vhost).queues.get(name)
        if q is None:
            raise AdminError("not_found", f"no queue '{name}' in vhost '{vhost}'", vhost=vhost, name=name)
        return q

    def purge_queue(self, vhost: str, name: str) -> int:
        """``rabbitmqctl purge_queue`` (no permission checks, as there): the ready messages it
        dropped; AdminError ``no_such_vhost`` / ``not_found``."""
        return self._queue(vhost, name).purge()

    def delete_queue(self, vhost: str, name: str, if_empty: bool = False, if_unused: bool = False) -> int:
        """``rabbitmqctl delete_queue``: the ready messages the queue had. A refused flag is
        AdminError ``in_use`` / ``not_empty``, or ``not_implemented`` with the channel's text
        (a quorum queue refuses both flags, as ``rabbit_quorum_queue:delete/4``)."""
        q = self._queue(vhost, name)
        if if_unused and q.consumers and q.queue_type == "classic":
            raise AdminError("in_use", "Queue is in use")
        if if_empty and q.message_count and q.queue_type == "classic":
            raise AdminError("not_empty", "Queue is not empty")
        try:
            q.check_delete(if_unused, if_empty)
        except AMQPError as e:
            raise AdminError("not_implemented", e.reply_text.split(" - ", 1)[-1], name=name) from None
        return self.vhosts[vhost].delete_queue(q)

    # ------------------------------------------------------------ connections

    def close_connections(self, which, reason: str) -> int:
        """Close every open connection ``which(conn)`` selects with 320 CONNECTION_FORCED."""
        n = 0
        for c in list(self.connections):
            if which(c):
                c.force_close(f"CONNECTION_FORCED - {reason}")
                n += 1
        return n


# Python's ``re`` messages for the mistakes people make, as PCRE (Erlang's ``re``) words them
# and where it reports them: (PCRE message, offset: "end" = the pattern's length, "pos" =
# Python's position, "}" = the closing brace after it).
_PCRE_ERRORS = {
    "missing ), unterminated subpattern": ("missing )", "end"),
    "unbalanced parenthesis": ("unmatched parentheses", "pos"),
    "nothing to repeat": ("nothing to repeat", "pos"),
    "unterminated character set": ("missing terminating ] for character class", "end"),
    "min repeat greater than max repeat": ("numbers out of order in {} quantifier", "}"),
    "bad escape (end of pattern)": ("\\ at end of pattern", "end"),
    "missing >, unterminated name": ("syntax error in subpattern name (missing terminator)", "end"),
}


def _check_regexps(*patterns: str) -> None:
    """Refuse the first pattern that does not compile, as RabbitMQ does: ``invalid_regexp``
    with ``regexp``, and PCRE's ``error`` and ``offset`` where Python's message maps to one
    (otherwise Python's own)."""
    for pattern in patterns:
        try:
            compile_regexp(pattern)
        except ValueError:
            try:
                re.compile(pattern)
            except re.error as e:
                msg, where = _PCRE_ERRORS.get(e.msg, (e.msg, "pos"))
                pos = e.pos or 0
                offset = {"end": len(pattern), "pos": pos,
                          "}": pattern.find("}", pos) if "}" in pattern[pos:] else pos}[where]
                raise AdminError("invalid_regexp", f"regular expression '{pattern}' is invalid",
                                 regexp=pattern, error=msg, offset=offset) from None


def _vhost_tags(tags) -> list | str:
    """A vhost's tags as given: a string stays one string (see ``add_vhost``), a list is
    checked as a user's tags are."""
    return tags if isinstance(tags, str) else _check_tags(tags)


def vhost_tags(v) -> list | str:
    """A copy of vhost ``v``'s tags (a list, or the string ``add_vhost`` was given)."""
    return v.tags if isinstance(v.tags, str) else list(v.tags)


def _check_tags(tags) -> list:
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    return [str(t) for t in tags if str(t)]


def _check_limits(limits: dict, names: tuple, component: str = "limits") -> dict:
    """Validate a limits object as ``rabbit_vhost_limit`` (``component`` "limits", its message
    wrapped in "Validation failed") and ``rabbit_auth_backend_internal`` ("user-limits") do:
    unknown keys first, then each value must be an integer (negative: no limit)."""
    if not isinstance(limits, dict):
        raise AdminError("invalid_limit", f"limits must be a JSON object, not {_erl(limits)}")

    def refuse(text: str):
        raise AdminError("invalid_limit", f"Validation failed\n\n{text}\n" if component == "limits" else text)

    unknown = [(k, v) for k, v in limits.items() if k not in names]
    if unknown:
        refuse(f"Unrecognised terms [{','.join('{%s,%s}' % (_erl(k), _erl(v)) for k, v in unknown)}] "
               f"in {component}")
    for k, v in limits.items():
        if isinstance(v, bool) or not isinstance(v, int):
            refuse(f"{k} should be a number, actually was {_erl(v)}")
    return dict(limits)


def _erl(v) -> str:
    """A decoded JSON value as Erlang's ``~p`` prints it (strings are binaries)."""
    if isinstance(v, str):
        return '<<"%s">>' % v.replace("\\", "\\\\").replace('"', '\\"')
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ",".join(_erl(x) for x in v) + "]"
    if isinstance(v, dict):
        return "#{" + ",".join(f"{_erl(k)} => {_erl(x)}" for k, x in v.items()) + "}"
    return repr(v)
