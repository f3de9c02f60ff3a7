"""Access control: RabbitMQ's permission table, topic permissions, user_id, limits, and what
deleting a user or vhost does to its connections -- the same test against Leveret and RabbitMQ.

The permission matrix runs every operation of the access-control table (``rabbit_channel``'s
``check_*_permitted`` calls) for users holding each combination of configure / write / read
(``.*``), none of them (empty regexps), and regexps that match nothing; each attempt either
succeeds or closes the channel with 403 and the text of the *first* check the user fails, in
RabbitMQ's order. Users, vhosts and permissions are set up through ``tests/brokeradmin.py``:
RabbitMQ's management API when ``LEVERET_TEST_MGMT_URL`` is given, else ``rabbitmqctl``; on
Leveret, an in-process broker's admin methods.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import urllib.parse
import uuid

import pika
import pika.exceptions
import pytest

from brokeradmin import CtlAdmin, HttpAdmin, InprocAdmin, rabbit_password_hash

EXTERNAL = os.environ.get("LEVERET_TEST_URL")
MGMT = os.environ.get("LEVERET_TEST_MGMT_URL")
PW = "s3cret-pw"

# the users of the matrix: name -> (configure, write, read)
ROLES = {
    "full": (".*", ".*", ".*"),
    "none": ("", "", ""),
    "cfg": (".*", "", ""),
    "wr": ("", ".*", ""),
    "rd": ("", "", ".*"),
    "wrrd": ("", ".*", ".*"),
    "cfgrd": (".*", "", ".*"),
    "cfgwr": (".*", ".*", ""),
    "nomatch": ("^zzz", "^zzz", "^zzz"),
}


class Env:
    def __init__(self, admin, host: str, port: int):
        self.admin, self.host, self.port = admin, host, port
        self.tag = uuid.uuid4().hex[:8]
        self.vhost = f"acl-{self.tag}"
        self.conns: list = []

    def user(self, role: str) -> str:
        return f"acl-{self.tag}-{role}"

    def connect(self, user: str, password: str = PW, vhost: str | None = None,
                host: str | None = None, client_properties: dict | None = None) -> pika.BlockingConnection:
        c = pika.BlockingConnection(pika.ConnectionParameters(
            host or self.host, self.port, vhost if vhost is not None else self.vhost,
            pika.PlainCredentials(user, password), connection_attempts=1, blocked_connection_timeout=30,
            client_properties=client_properties))
        self.conns.append(c)
        return c


@pytest.fixture(scope="module")
def env(broker_url):
    if EXTERNAL:
        u = urllib.parse.urlparse(EXTERNAL)
        e = Env(HttpAdmin(MGMT) if MGMT else CtlAdmin(), u.hostname or "127.0.0.1", u.port or 5672)
        threaded = None
    else:
        from inproc import ThreadedBroker
        threaded = ThreadedBroker(host="0.0.0.0")
        e = Env(InprocAdmin(threaded), "127.0.0.1", threaded.broker.port)
    a = e.admin
    a.add_vhost(e.vhost)
    for role, perms in ROLES.items():
        a.add_user(e.user(role), PW)
        a.set_permissions(e.user(role), e.vhost, *perms)
    try:
        yield e
    finally:
        for c in e.conns:
            if c.is_open:
                try:
                    c.close()
                except Exception:
                    pass
        for role in ROLES:
            a.delete_user(e.user(role))
        a.delete_vhost(e.vhost)
        if threaded is not None:
            threaded.stop()


@pytest.fixture(scope="module")
def full(env):
    """A channel of the user with every permission, for set-up."""
    return env.connect(env.user("full")).channel()


def channel_of(env, role: str, _cache={}):
    key = (env.tag, role)
    c = _cache.get(key)
    if c is None or not c.is_open:
        c = _cache[key] = env.connect(env.user(role))
    return c.channel()


def refused(kind: str, name: str, vhost: str, user: str) -> str:
    return f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"


@contextlib.contextmanager
def temp_user(env, role: str, perms=(".*", ".*", ".*"), tags=()):
    """A user with ``perms`` in the test vhost (None: no permission entry), deleted afterwards."""
    user = env.user(role)
    env.admin.add_user(user, PW, tags)
    if perms is not None:
        env.admin.set_permissions(user, env.vhost, *perms)
    try:
        yield user
    finally:
        env.admin.delete_user(user)


def said(e) -> str:
    """What a failed pika connection attempt reports, quotes unescaped (the broker's close text
    is nested in pika's exception chain)."""
    return repr(e.value).replace("\\", "")


_n = itertools.count()


def fresh(prefix: str) -> str:
    return f"{prefix}.{next(_n)}"


# --------------------------------------------------------------------------- the matrix
# Each operation: (name, setup(full_channel) -> names, action(channel, names), checks(names))
# where checks are (permission, kind, resource name) in the order RabbitMQ makes them.

def _x(full, **kw):
    n = fresh("acl.x")
    full.exchange_declare(n, "direct", **kw)
    return n


def _q(full):
    n = fresh("acl.q")
    full.queue_declare(n)
    return n


OPS = [
    ("exchange.declare",
     lambda f: {"x": fresh("acl.newx")},
     lambda ch, n: ch.exchange_declare(n["x"], "direct"),
     lambda n: [("configure", "exchange", n["x"])]),
    ("exchange.declare passive",
     lambda f: {"x": _x(f)},
     lambda ch, n: ch.exchange_declare(n["x"], "direct", passive=True),
     lambda n: []),
    ("exchange.declare with an alternate exchange",
     lambda f: {"x": fresh("acl.newx"), "ae": _x(f)},
     lambda ch, n: ch.exchange_declare(n["x"], "fanout", arguments={"alternate-exchange": n["ae"]}),
     lambda n: [("configure", "exchange", n["x"]), ("read", "exchange", n["x"]), ("write", "exchange", n["ae"])]),
    ("exchange.delete",
     lambda f: {"x": _x(f)},
     lambda ch, n: ch.exchange_delete(n["x"]),
     lambda n: [("configure", "exchange", n["x"])]),
    ("queue.declare",
     lambda f: {"q": fresh("acl.newq")},
     lambda ch, n: ch.queue_declare(n["q"]),
     lambda n: [("configure", "queue", n["q"])]),
    ("queue.declare of an existing queue",
     lambda f: {"q": _q(f)},
     lambda ch, n: ch.queue_declare(n["q"]),
     lambda n: [("configure", "queue", n["q"])]),
    ("queue.declare passive",
     lambda f: {"q": _q(f)},
     lambda ch, n: ch.queue_declare(n["q"], passive=True),
     lambda n: []),
    ("queue.declare with a dead-letter exchange",
     lambda f: {"q": fresh("acl.newq"), "dlx": _x(f)},
     lambda ch, n: ch.queue_declare(n["q"], arguments={"x-dead-letter-exchange": n["dlx"]}),
     lambda n: [("configure", "queue", n["q"]), ("read", "queue", n["q"]), ("write", "exchange", n["dlx"])]),
    ("queue.delete",
     lambda f: {"q": _q(f)},
     lambda ch, n: ch.queue_delete(n["q"]),
     lambda n: [("configure", "queue", n["q"])]),
    ("queue.purge",
     lambda f: {"q": _q(f)},
     lambda ch, n: ch.queue_purge(n["q"]),
     lambda n: [("read", "queue", n["q"])]),
    ("queue.bind",
     lambda f: {"q": _q(f), "x": _x(f)},
     lambda ch, n: ch.queue_bind(n["q"], n["x"], "k"),
     lambda n: [("write", "queue", n["q"]), ("read", "exchange", n["x"])]),
    ("queue.unbind",
     lambda f: {"q": _q(f), "x": _x(f)},
     lambda ch, n: ch.queue_unbind(n["q"], n["x"], "k"),
     lambda n: [("write", "queue", n["q"]), ("read", "exchange", n["x"])]),
    ("exchange.bind",
     lambda f: {"src": _x(f), "dest": _x(f)},
     lambda ch, n: ch.exchange_bind(n["dest"], n["src"], "k"),
     lambda n: [("write", "exchange", n["dest"]), ("read", "exchange", n["src"])]),
    ("exchange.unbind",
     lambda f: {"src": _x(f), "dest": _x(f)},
     lambda ch, n: ch.exchange_unbind(n["dest"], n["src"], "k"),
     lambda n: [("write", "exchange", n["dest"]), ("read", "exchange", n["src"])]),
    ("basic.publish",
     lambda f: {"x": _x(f)},
     lambda ch, n: (ch.confirm_delivery(), ch.basic_publish(n["x"], "k", b"m")),
     lambda n: [("write", "exchange", n["x"])]),
    ("basic.publish to the default exchange",
     lambda f: {"q": _q(f)},
     lambda ch, n: (ch.confirm_delivery(), ch.basic_publish("", n["q"], b"m")),
     lambda n: [("write", "exchange", "amq.default")]),
    ("basic.get",
     lambda f: {"q": _q(f)},
     lambda ch, n: ch.basic_get(n["q"]),
     lambda n: [("read", "queue", n["q"])]),
    ("basic.consume",
     lambda f: {"q": _q(f)},
     lambda ch, n: ch.basic_consume(n["q"], lambda *a: None),
     lambda n: [("read", "queue", n["q"])]),
]


def allows(role: str, perm: str, name: str) -> bool:
    regexp = ROLES[role][("configure", "write", "read").index(perm)]
    return re.search(regexp or "^$", name) is not None


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("op", OPS, ids=[o[0] for o in OPS])
def test_permission_matrix(env, full, op, role):
    _name, setup, action, checks = op
    names = setup(full)
    first_failed = next(((perm, kind, name) for perm, kind, name in checks(names)
                         if not allows(role, perm, name)), None)
    ch = channel_of(env, role)
    if first_failed is None:
        action(ch, names)
        ch.close()
        return
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        action(ch, names)
    _perm, kind, name = first_failed
    assert e.value.args == (403, refused(kind, name, env.vhost, env.user(role)))


def test_a_server_named_queue_is_checked_by_its_generated_name(env):
    ch = channel_of(env, "cfg")
    assert ch.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
    env.admin.set_permissions(env.user("nomatch"), env.vhost, "^zzz", "^zzz", "^zzz")
    ch = channel_of(env, "nomatch")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True)
    code, text = e.value.args
    assert code == 403 and re.fullmatch(
        re.escape("ACCESS_REFUSED - access to queue '") + r"amq\.gen-[A-Za-z0-9_-]{22}" +
        re.escape(f"' in vhost '{env.vhost}' refused for user '{env.user('nomatch')}'"), text), text


def test_regexps_are_searched_not_anchored(env):
    with temp_user(env, "unanchored", ("foo", "", "")) as user:
        ch = env.connect(user).channel()
        ch.queue_declare("a.foo.b", auto_delete=True)        # "foo" anywhere in the name
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("a.fo.b", auto_delete=True)
        assert e.value.args == (403, refused("queue", "a.fo.b", env.vhost, user))


def test_write_permission_is_checked_before_the_exchange_exists(env):
    """basic.publish: 403 for a user without write permission even when the exchange is
    missing; a user with it gets 404."""
    ch = channel_of(env, "rd")
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("acl.missing", "k", b"m")
    assert e.value.args == (403, refused("exchange", "acl.missing", env.vhost, env.user("rd")))
    ch = channel_of(env, "wr")
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("acl.missing", "k", b"m")
    assert e.value.args == (404, f"NOT_FOUND - no exchange 'acl.missing' in vhost '{env.vhost}'")


def test_reserved_names_are_refused_before_the_permission_check(env):
    ch = channel_of(env, "none")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_delete("amq.direct")
    assert e.value.args == (403, f"ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost "
                                 f"'{env.vhost}' not allowed")
    ch = channel_of(env, "none")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare("", "direct")
    assert e.value.args == (403, "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_direct_reply_to_needs_no_read_permission(env, full):
    q = _q(full)
    ch = channel_of(env, "wr")
    ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
    ch.basic_publish("", q, b"question", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    m = None
    for _ in range(50):
        m = full.basic_get(q, auto_ack=True)
        if m[0] is not None:
            break
        full.connection.sleep(0.05)
    assert m[2] == b"question" and m[1].reply_to.startswith("amq.rabbitmq.reply-to.")


# --------------------------------------------------------------------------- vhost access, login

def test_a_user_needs_a_permission_entry_for_the_vhost(env):
    with temp_user(env, "nowhere", None) as user:
        with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
            env.connect(user)
        assert f"NOT_ALLOWED - access to vhost '{env.vhost}' refused for user '{user}'" in said(e)
    # an entry with empty regexps is enough to open the vhost
    env.connect(env.user("none")).close()


def test_wrong_password_and_unknown_user_are_refused(env):
    for user, pw in ((env.user("full"), "wrong"), (env.user("nobody"), PW)):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
            env.connect(user, pw)
        assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in said(e)


# (user suffix, hash function, hashing_algorithm named in the entry (None: no key), the
# definitions' rabbit_version (None: no key), whether the password then logs in)
HASHED_USERS = [
    ("h-sha256", "sha256", "rabbit_password_hashing_sha256", None, True),
    ("h-sha512", "sha512", "rabbit_password_hashing_sha512", None, True),
    ("h-md5", "md5", "rabbit_password_hashing_md5", None, True),
    # no algorithm named, no version: the node's default, sha256 (an md5 hash does not match)
    ("h-unnamed", "sha256", None, None, True),
    ("h-unnamed-md5", "md5", None, None, False),
    # no algorithm named, definitions from before 3.6: md5
    ("h-old-md5", "md5", None, "3.5.7", True),
    ("h-old-sha256", "sha256", None, "3.5.7", False),
]


def test_users_imported_with_password_hashes_log_in(env):
    """Definitions (``POST /api/definitions`` on RabbitMQ) carrying users with a password hash
    for each hashing algorithm: each logs in with its password and not with another."""
    users = []
    try:
        for suffix, digest, algorithm, version, _ok in HASHED_USERS:
            user = env.user(suffix)
            entry = {"name": user, "password_hash": rabbit_password_hash(digest, PW + suffix), "tags": ""}
            if algorithm is not None:
                entry["hashing_algorithm"] = algorithm
            defs = {"users": [entry], "permissions": [{"user": user, "vhost": env.vhost, "configure": ".*",
                                                       "write": ".*", "read": ".*"}]}
            if version is not None:
                defs["rabbit_version"] = version
            env.admin.import_definitions(defs)
            users.append(user)
        for (suffix, _digest, _algorithm, _version, ok), user in zip(HASHED_USERS, users):
            if ok:
                env.connect(user, PW + suffix).close()
            # refused: a wrong password; for a hash read with the wrong algorithm, the right one
            with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
                env.connect(user, PW + suffix + ("-wrong" if ok else ""))
            assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in said(e)
    finally:
        for user in users:
            env.admin.delete_user(user)


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))           # no packet is sent: picks the outgoing address
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


def test_loopback_users_log_in_only_from_localhost(env):
    """``guest`` (in ``loopback_users`` by default) is refused from a non-loopback address."""
    addr = _non_loopback_address()
    if addr is None:
        pytest.skip("no non-loopback address on this machine")
    try:
        socket.create_connection((addr, env.port), timeout=2).close()
    except OSError:
        pytest.skip(f"the broker does not listen on {addr}")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        env.connect("guest", "guest", vhost="/", host=addr)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in said(e)
    env.connect(env.user("full"), host=addr).close()     # other users may


# --------------------------------------------------------------------------- topic permissions

def test_topic_permissions_check_routing_keys(env, full):
    x = fresh("acl.topic")
    full.exchange_declare(x, "topic")
    q = _q(full)
    with temp_user(env, "topic") as user:
        env.admin.set_topic_permissions(user, env.vhost, x, r"^allowed\.", r"^{username}\.")
        c = env.connect(user)
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish(x, "allowed.one", b"m")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.basic_publish(x, "other.one", b"m")
        assert e.value.args == (403, f"ACCESS_REFUSED - access to topic 'other.one' in exchange '{x}' in "
                                     f"vhost '{env.vhost}' refused for user '{user}'")
        ch = c.channel()
        ch.queue_bind(q, x, f"{user}.#")                  # {username} is expanded
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_bind(q, x, "someone.#")
        assert e.value.args == (403, f"ACCESS_REFUSED - access to topic 'someone.#' in exchange '{x}' in "
                                     f"vhost '{env.vhost}' refused for user '{user}'")
        # exchanges without a topic permission entry, and non-topic exchanges, are not checked
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("amq.topic", "anything", b"m")
        d = _x(full)
        env.admin.set_topic_permissions(user, env.vhost, d, "^never$", "^never$")
        ch.basic_publish(d, "anything", b"m")


def _topic_refused(rk: str, x: str, env, user: str) -> str:
    return (f"ACCESS_REFUSED - access to topic '{rk}' in exchange '{x}' in vhost '{env.vhost}' refused for "
            f"user '{user}'")


def test_topic_permission_variables_and_unbinds(env, full):
    """``{vhost}`` is expanded; ``{client_id}`` is not, for AMQP 0-9-1 (even when the client
    sends a ``client_id`` client property): it stays a literal in the regexp. The read
    regexp is checked for queue.unbind and for exchange.bind / exchange.unbind with a topic
    *source* -- also for an unbind of a binding that does not exist -- and not for a topic
    destination; an unbind from a missing source has no topic check and succeeds."""
    x, src_free = fresh("acl.topic"), fresh("acl.topic")
    for name in (x, src_free):
        full.exchange_declare(name, "topic")
    dest, q = _x(full), _q(full)
    with temp_user(env, "topicvars") as user:
        env.admin.set_topic_permissions(user, env.vhost, x, r"^{vhost}\.", r"^{client_id}\.|^ok\.")
        env.admin.set_topic_permissions(user, env.vhost, src_free, "^never$", "^never$")
        c = env.connect(user, client_properties={"client_id": "cid1"})

        def refuses(rk, xname, action):
            ch = c.channel()
            ch.confirm_delivery()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                action(ch)
            assert e.value.args == (403, _topic_refused(rk, xname, env, user))

        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish(x, f"{env.vhost}.a", b"m")                 # {vhost} is expanded
        refuses("other.a", x, lambda ch: ch.basic_publish(x, "other.a", b"m"))
        refuses("cid1.#", x, lambda ch: ch.queue_bind(q, x, "cid1.#"))   # {client_id} is not
        ch = c.channel()
        ch.queue_bind(q, x, "{client_id}.#")                       # ... it is matched literally
        ch.queue_unbind(q, x, "{client_id}.#")
        # queue.unbind: the read regexp, whether or not the binding exists
        full.queue_bind(q, x, "zz")
        refuses("zz", x, lambda ch: ch.queue_unbind(q, x, "zz"))
        refuses("yy", x, lambda ch: ch.queue_unbind(q, x, "yy"))
        # exchange.bind / exchange.unbind: the source's topic permission
        refuses("zz", x, lambda ch: ch.exchange_bind(dest, x, "zz"))
        ch = c.channel()
        ch.exchange_bind(dest, x, "ok.1")
        ch.exchange_unbind(dest, x, "ok.1")
        full.exchange_bind(dest, x, "zz")
        refuses("zz", x, lambda ch: ch.exchange_unbind(dest, x, "zz"))
        # a topic *destination* is not checked (its source here is a direct exchange)
        ch = c.channel()
        ch.exchange_bind(src_free, dest, "never-allowed")
        ch.exchange_unbind(src_free, dest, "never-allowed")
        # unbinding from a source that does not exist checks nothing
        ch.queue_unbind(q, "acl.no-such-topic", "zz")
        ch.close()
    full.queue_unbind(q, x, "zz")
    full.exchange_unbind(dest, x, "zz")
    for name in (x, src_free, dest):
        full.exchange_delete(name)
    full.queue_delete(q)


# --------------------------------------------------------------------------- not checked per message

def _first(ch, q: str, auto_ack: bool = True):
    """(method, properties, body) of the first message in ``q``, polled: dead-lettering and
    alternate-exchange routing complete after the reply to the method that caused them."""
    for _ in range(100):
        m = ch.basic_get(q, auto_ack=auto_ack)
        if m[0] is not None:
            return m
        ch.connection.sleep(0.05)
    return None, None, None


def _sink(full, kind: str = "fanout") -> tuple[str, str]:
    """An exchange (``acl.sinkx.N``: outside the write regexp of :data:`RESTRICTED`) with a
    queue bound to it."""
    x, q = fresh("acl.sinkx"), fresh("acl.sinkq")
    full.exchange_declare(x, kind)
    full.queue_declare(q)
    full.queue_bind(q, x, "")
    return x, q


@contextlib.contextmanager
def _policy_on(env, name: str, definition: dict, apply_to: str):
    """A policy applying ``definition`` to the queue or exchange ``name`` only."""
    policy = fresh("acl-policy")
    env.admin.set_policy(env.vhost, policy, "^" + re.escape(name) + "$", definition, apply_to)
    try:
        yield
    finally:
        env.admin.clear_policy(env.vhost, policy)


def _publish_refused(env, ch, user: str, x: str) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish(x, "", b"m")
    assert e.value.args == (403, refused("exchange", x, env.vhost, user))


RESTRICTED = ("", r"^acl\.(q|main)\.", r"^acl\.q\.")       # configure nothing; no write on the sinks


def test_dead_lettering_needs_no_write_permission_on_the_dlx(env, full):
    """A message rejected by a user without write permission on the dead-letter exchange is
    still dead-lettered to it: the DLX (a queue argument of an admin's declare, or a policy)
    is checked only at queue.declare, for the declaring user."""
    dlx, dlq = _sink(full)
    by_arg, by_policy = fresh("acl.q"), fresh("acl.q")
    full.queue_declare(by_arg, arguments={"x-dead-letter-exchange": dlx})
    full.queue_declare(by_policy)
    with _policy_on(env, by_policy, {"dead-letter-exchange": dlx}, "queues"), \
            temp_user(env, "dlrestricted", RESTRICTED) as user:
        ch = env.connect(user).channel()
        ch.confirm_delivery()
        for q in (by_arg, by_policy):
            full.basic_publish("", q, q.encode())
            m = _first(ch, q, auto_ack=False)
            assert m[2] == q.encode()
            ch.basic_reject(m[0].delivery_tag, requeue=False)
            assert _first(full, dlq)[2] == q.encode()
        _publish_refused(env, ch, user, dlx)          # (the user cannot publish to the DLX itself)
    for q in (by_arg, by_policy, dlq):
        full.queue_delete(q)
    full.exchange_delete(dlx)


def test_alternate_exchange_needs_no_write_permission(env, full):
    """A user who may write to an exchange but not to its alternate exchange (set by an
    admin's declare argument, or by a policy) still has unroutable messages routed to the AE."""
    ae, aeq = _sink(full)
    by_arg, by_policy = fresh("acl.main"), fresh("acl.main")
    full.exchange_declare(by_arg, "direct", arguments={"alternate-exchange": ae})
    full.exchange_declare(by_policy, "direct")
    with _policy_on(env, by_policy, {"alternate-exchange": ae}, "exchanges"), \
            temp_user(env, "aerestricted", RESTRICTED) as user:
        ch = env.connect(user).channel()
        ch.confirm_delivery()
        for x in (by_arg, by_policy):
            ch.basic_publish(x, "unbound-key", x.encode(), mandatory=True)   # (unroutable: pika raises)
            assert _first(full, aeq)[2] == x.encode()
        _publish_refused(env, ch, user, ae)
    for x in (by_arg, by_policy, ae):
        full.exchange_delete(x)
    full.queue_delete(aeq)


# --------------------------------------------------------------------------- user_id

def test_user_id_must_be_the_users_unless_impersonator(env):
    ch = channel_of(env, "full")
    ch.confirm_delivery()
    ch.basic_publish("amq.fanout", "", b"m", pika.BasicProperties(user_id=env.user("full")))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("amq.fanout", "", b"m", pika.BasicProperties(user_id="someone-else"))
    assert e.value.args == (406, f"PRECONDITION_FAILED - user_id property set to 'someone-else' but "
                                 f"authenticated user was '{env.user('full')}'")
    with temp_user(env, "impersonator", (".*", ".*", ".*"), tags=("impersonator",)) as user:
        ch = env.connect(user).channel()
        ch.confirm_delivery()
        ch.basic_publish("amq.fanout", "", b"m", pika.BasicProperties(user_id="someone-else"))


# --------------------------------------------------------------------------- changes at run time

def test_a_permission_change_applies_to_open_connections(env):
    with temp_user(env, "changing", (".*", ".*", ".*")) as user:
        ch = env.connect(user).channel()
        ch.queue_declare(fresh("acl.changing"), auto_delete=True)
        env.admin.set_permissions(user, env.vhost, "^only-this$", ".*", ".*")
        name = fresh("acl.changing")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(name, auto_delete=True)
        assert e.value.args == (403, refused("queue", name, env.vhost, user))


def test_deleting_a_user_closes_its_connections(env):
    user = env.user("doomed")
    env.admin.add_user(user, PW)
    env.admin.set_permissions(user, env.vhost, ".*", ".*", ".*")
    c = env.connect(user)
    env.admin.delete_user(user)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        for _ in range(100):
            c.process_data_events(0.1)
    assert e.value.args == (320, f"CONNECTION_FORCED - user '{user}' is deleted")


def test_deleting_a_vhost_closes_its_connections(env):
    vhost = f"acl-{env.tag}-doomed"
    env.admin.add_vhost(vhost)
    env.admin.set_permissions(env.user("full"), vhost, ".*", ".*", ".*")
    c = env.connect(env.user("full"), vhost=vhost)
    c.channel().queue_declare("gone-with-the-vhost", durable=True)
    env.admin.delete_vhost(vhost)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        for _ in range(100):
            c.process_data_events(0.1)
    # RabbitMQ notifies vhost_deleted, then stops the vhost (vhost_down); each event closes the
    # connections from a process of its own, so either text may arrive first there. Leveret
    # sends the first event's.
    assert e.value.args in ((320, f"CONNECTION_FORCED - vhost '{vhost}' is deleted"),
                            (320, f"CONNECTION_FORCED - vhost '{vhost}' is down"))
    with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
        env.connect(env.user("full"), vhost=vhost)
    assert f"NOT_ALLOWED - vhost {vhost} not found" in said(e)


# --------------------------------------------------------------------------- limits

def test_vhost_limits(env):
    vhost = f"acl-{env.tag}-limited"
    user = env.user("full")
    env.admin.add_vhost(vhost)
    try:
        env.admin.set_permissions(user, vhost, ".*", ".*", ".*")
        env.admin.set_vhost_limits(vhost, {"max-connections": 1, "max-queues": 1})
        c = env.connect(user, vhost=vhost)
        with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
            env.connect(user, vhost=vhost)
        assert (f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}': connection limit (1) "
                "is reached") in said(e)
        ch = c.channel()
        ch.queue_declare("first")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("second")
        assert e.value.args == (406, f"PRECONDITION_FAILED - cannot declare queue 'second': queue limit in "
                                     f"vhost '{vhost}' (1) is reached")
        c.channel().queue_declare("first")            # redeclaring an existing queue is fine
    finally:
        env.admin.delete_vhost(vhost)


def test_user_limits(env):
    with temp_user(env, "limited", (".*", ".*", ".*")) as user:
        env.admin.set_user_limits(user, {"max-connections": 1, "max-channels": 2})
        c = env.connect(user)
        with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
            env.connect(user)
        assert (f"NOT_ALLOWED - connection refused for user '{user}': user connection limit (1) is "
                "reached") in said(e)
        c.channel()
        c.channel()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.channel()
        assert e.value.args == (530, f"NOT_ALLOWED - number of channels opened for user '{user}' has reached "
                                     "the maximum allowed user limit of (2)")
