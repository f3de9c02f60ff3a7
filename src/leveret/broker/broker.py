"""The broker: settings, users, virtual hosts, connections, lifecycle.

:class:`Broker` is what ``leveret serve`` runs and what a test suite or an
application embeds::

    broker = Broker(Settings(port=0))
    await broker.start()          # listening; broker.port is the bound port
    ...
    await broker.stop()           # connection.close 320 to every client

It owns no sockets itself: :mod:`leveret.server.listener` does the I/O and
creates one :class:`~leveret.broker.connection.BrokerConnection` per socket.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass

from .. import __version__
from ..store.base import MemoryStore, MessageStore
from .alarms import ResourceMonitor
from .delayed import DelayScheduler
from .policy import Policy, validate
from .vhost import VHost

log = logging.getLogger("leveret")


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "leveret")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5672
    data_dir: str | None = None             # None: keep nothing on disk (embedded default)
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047
    handshake_timeout: float = 10.0
    max_message_size: int = 134217728      # bytes; RabbitMQ's default
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    loopback_users: tuple = ("guest",)
    memory_high_watermark: float | int | str = 0.4   # fraction of RAM, or a size ("512MB")
    disk_free_limit: int | str = 50_000_000          # bytes, or a size ("1GB")
    monitor_interval: float = 1.0                     # seconds between resource checks
    compact_interval: float = 30.0                    # seconds between checks for stuck log segments
    # RabbitMQ 4.x defaults, off by default (3.13 behaviour):
    ignore_global_qos: bool = False          # 4.x ignores basic.qos(global=True)
    refuse_transient_queues: bool = False    # 4.x refuses transient non-exclusive queues
    consumer_timeout: int | None = 1800000   # ms an unacked delivery may wait (RabbitMQ's default)
    definitions_file: str | None = None      # RabbitMQ definitions JSON loaded at start


class User:
    __slots__ = ("name", "salt", "hash", "tags")

    def __init__(self, name: str, password: str, tags=()):
        self.name = name
        self.salt = os.urandom(4)
        self.hash = hashlib.sha256(self.salt + password.encode()).digest()
        self.tags = tuple(tags)

    @classmethod
    def restore(cls, name: str, salt: bytes, hash_: bytes, tags=()) -> "User":
        u = cls.__new__(cls)
        u.name, u.salt, u.hash, u.tags = name, salt, hash_, tuple(tags)
        return u

    def check(self, password: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(self.salt + password.encode()).digest(), self.hash)


class Broker:
    def __init__(self, settings: Settings | None = None, store: MessageStore | None = None):
        self.settings = settings or Settings()
        if store is None:
            if self.settings.data_dir:
                from ..store.disk import DiskStore
                store = DiskStore(self.settings.data_dir)
            else:
                store = MemoryStore()
        self.store = store
        self.vhosts: dict[str, VHost] = {}
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.connections: set = set()
        self.next_message_id = 0
        self._server = None
        self.alarm_text: str | None = None     # resource alarm in force ("low on memory", ...)
        self.monitor = ResourceMonitor(self)
        self._monitor_task = None
        self.loop = None
        self._deferred: list = []               # timers asked for before the loop runs
        self.reply_channels: dict = {}          # direct reply-to key -> channel
        self.dl_deferred: list | None = None    # dead-letters held while a message fans out
        self._timeout_task = None
        self.delays = DelayScheduler(self)
        s = self.settings
        self.recovery = self.store.recover(self)
        if not self.vhosts:
            # first boot (or nothing kept): the default vhost, user and permissions
            self.add_vhost(s.default_vhost)
            self.add_user(s.default_user, s.default_pass, ("administrator",))
            self.set_permissions(s.default_user, s.default_vhost, ".*", ".*", ".*")
        if s.definitions_file:
            from .definitions_file import load_definitions
            load_definitions(self, s.definitions_file)
        self.server_properties = {
            "product": "Leveret",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "copyright": "Leveret authors",
            "information": "Licensed under the Apache License 2.0",
            "cluster_name": f"leveret@{platform.node()}",
            "capabilities": {
                "publisher_confirms": True,
                "exchange_exchange_bindings": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "connection.blocked": True,
                "consumer_priorities": True,
                "authentication_failure_close": True,
                "per_consumer_qos": True,
                "direct_reply_to": True,
            },
        }

    # ------------------------------------------------------------ entities

    def add_vhost(self, name: str) -> VHost:
        v = self.vhosts.get(name)
        if v is None:
            v = self.vhosts[name] = VHost(name, self)
            self.store.definitions.put("vhost", (name,))
        return v

    def add_user(self, name: str, password: str, tags=()) -> User:
        u = self.users[name] = User(name, password, tags)
        self.store.definitions.put("user", (name,), salt=u.salt.hex(), hash=u.hash.hex(), tags=list(u.tags))
        return u

    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> None:
        self.permissions[(user, vhost)] = (configure, write, read)
        self.store.definitions.put("permission", (user, vhost), configure=configure, write=write, read=read)

    def authenticate(self, username: str, password: str, peer_host: str | None) -> User | None:
        u = self.users.get(username)
        if u is None or not u.check(password):
            return None
        if username in self.settings.loopback_users and peer_host is not None:
            try:
                if not ipaddress.ip_address(peer_host.split("%")[0]).is_loopback:
                    return None
            except ValueError:
                return None
        return u

    # ------------------------------------------------------------ policies

    def set_policy(self, name: str, pattern: str, definition: dict, *, vhost: str = "/", priority: int = 0,
                   apply_to: str = "all") -> None:
        """``rabbitmqctl set_policy``: add or replace a policy; it applies at once (ValueError if
        RabbitMQ would refuse it)."""
        validate(name, pattern, definition, priority, apply_to)
        v = self.vhosts.get(vhost)
        if v is None:
            raise ValueError(f"no vhost '{vhost}'")
        v.set_policy(Policy(vhost, name, pattern, definition, priority, apply_to))

    def clear_policy(self, name: str, vhost: str = "/") -> None:
        v = self.vhosts.get(vhost)
        if v is None or name not in v.policies:
            raise ValueError("Parameter does not exist")
        v.clear_policy(name)

    def list_policies(self, vhost: str | None = None) -> list[dict]:
        return [p.as_dict() for v in self.vhosts.values() if vhost is None or v.name == vhost
                for p in v.policies.values()]

    # ------------------------------------------------------------ timers

    def call_at_ms(self, t_ms: int, fn):
        """Run ``fn`` at wall-clock time ``t_ms`` (epoch ms); returns a cancellable handle."""
        delay = max(0.0, (t_ms - time.time() * 1000) / 1000)
        if self.loop is None:
            h = _Deferred(delay, fn)
            self._deferred.append(h)
            return h
        return self.loop.call_later(delay, fn)

    def new_message_id(self) -> int:
        self.next_message_id += 1
        return self.next_message_id

    def set_alarm(self, text: str | None) -> None:
        """Resource alarms changed: tell every connection (they block when they next publish)."""
        self.alarm_text = text
        for c in list(self.connections):
            c.set_alarm(text)

    async def _monitor_loop(self) -> None:
        import asyncio
        import time
        next_compact = time.monotonic() + self.settings.compact_interval
        while True:
            try:
                self.monitor.check()
                if self.store.durable and time.monotonic() >= next_compact:
                    next_compact = time.monotonic() + self.settings.compact_interval
                    self.compact_logs()
            except Exception:
                log.exception("resource check failed")
            await asyncio.sleep(self.settings.monitor_interval)

    def compact_logs(self) -> int:
        moved = 0
        for v in self.vhosts.values():
            for q in list(v.queues.values()):
                moved += q.compact()
        if moved:
            log.info("compaction: moved %d messages out of mostly-acked log segments", moved)
        return moved

    async def _consumer_timeout_loop(self) -> None:
        """Close channels whose oldest unacked delivery waited longer than its queue's
        consumer timeout (RabbitMQ checks on its channel tick; this checks 4 times a second)."""
        import asyncio
        while True:
            await asyncio.sleep(0.25)
            try:
                now = time.monotonic()
                for c in list(self.connections):
                    for ch in list(c.sessions.values()):
                        if ch.unacked:
                            ch.check_consumer_timeout(now)
            except Exception:
                log.exception("consumer timeout check failed")

    def queue_deleted(self, q) -> None:
        """Hook for the store, metrics and the management API."""

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._server.port if self._server else self.settings.port

    @property
    def url(self) -> str:
        """An AMQP URL for the default user and vhost (handy when embedded with port 0)."""
        from urllib.parse import quote
        s = self.settings
        return (f"amqp://{quote(s.default_user, safe='')}:{quote(s.default_pass, safe='')}@"
                f"{s.host}:{self.port}/{quote(s.default_vhost, safe='')}")

    async def start(self) -> None:
        from ..server.listener import Listener
        import asyncio
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.store.attach(loop)
        deferred, self._deferred = self._deferred, []
        for h in deferred:
            h.start(loop)
        self.delays.start()
        self._timeout_task = loop.create_task(self._consumer_timeout_loop())
        self._monitor_task = loop.create_task(self._monitor_loop())
        self._server = Listener(self)
        await self._server.start()
        log.info("Leveret %s listening on amqp://%s:%d (python %s)", __version__,
                 self.settings.host, self.port, sys.version.split()[0])

    async def stop(self) -> None:
        for attr in ("_monitor_task", "_timeout_task"):
            t = getattr(self, attr)
            if t is not None:
                t.cancel()
                setattr(self, attr, None)
        self.delays.stop()
        # no queue timer fires once stopping has begun (a queue must not expire while clients
        # are being disconnected), nor later if an embedding program's loop runs on: timers
        # asked for from now on are never started
        self.loop = None
        for v in self.vhosts.values():
            for q in v.queues.values():
                q.stop_timers()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self.store.durable:
            self._save_delivered_marks()
        self.store.close()

    def _save_delivered_marks(self) -> None:
        """Orderly stop: remember which persisted messages were delivered (RabbitMQ keeps
        ``next_deliver_seq_id`` in the queue's recovery terms for the same purpose)."""
        for c in list(self.connections):
            for ch in c.sessions.values():
                for msg, q, _c in ch.unacked.values():
                    if q.persist and not q.deleted:
                        q.mark_delivered(msg)
        for v in self.vhosts.values():
            for q in v.queues.values():
                if q.persist:
                    q.save_delivered_marks()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()


class _Deferred:
    """A timer asked for before the event loop runs (recovery): started with the broker."""

    __slots__ = ("delay", "fn", "handle", "cancelled")

    def __init__(self, delay: float, fn):
        self.delay, self.fn, self.handle, self.cancelled = delay, fn, None, False

    def start(self, loop) -> None:
        if not self.cancelled:
            self.handle = loop.call_later(self.delay, self.fn)

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()
