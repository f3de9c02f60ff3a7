"""The broker: users, virtual hosts, connections, timers, lifecycle -- no sockets.

:class:`Broker` holds everything AMQP means: vhosts with their exchanges and
queues, users and permissions, policies, the connections the I/O layer
created, the flow-control object and the resource monitor. It never opens a
socket and never imports ``leveret.server``: the server is handed a broker
(:class:`leveret.node.Node`, which ``leveret serve`` runs and which
``leveret.Broker`` names for embedding, puts the two together)::

    broker = Broker(Settings(data_dir=...))   # recovers what the data directory holds
    await broker.start()        # timers run on the current event loop
    ...                         # server/ feeds it connections
    await broker.stop()         # marks delivered messages, closes the store

Recovery (recreating durable entities and their messages at construction) is
:mod:`.recovery`; the store underneath is reached only through
:class:`~leveret.store.base.MessageStore`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import platform
import time
from urllib.parse import quote

from .. import __version__
from ..auth import AccessControl, User
from ..settings import Settings
from ..store.base import MemoryStore, MessageStore
from ..store.disk import DiskStore
from .admin import AdminError, AdminMixin
from .alarms import ResourceMonitor
from .definitions_file import load_definitions
from .delayed import DelayScheduler
from .flow import FlowControl
from .policy import Policy, parameter_errors, validate
from .recovery import recover
from .stats import Sampler
from .vhost import VHost

_MISSING = object()

log = logging.getLogger("leveret")


class Broker(AdminMixin):
    def __init__(self, settings: Settings | None = None, store: MessageStore | None = None):
        self.settings = settings or Settings()
        if store is None:
            store = DiskStore(self.settings.data_dir) if self.settings.data_dir else MemoryStore()
        self.store = store
        self.vhosts: dict[str, VHost] = {}
        self.access = AccessControl(self.settings.loopback_users)
        self.connections: set = set()
        self.next_message_id = 0
        self.alarm_text: str | None = None     # resource alarm in force ("low on memory", ...)
        self.monitor = ResourceMonitor(self)
        self._monitor_task = None
        self.loop = None
        self._deferred: list = []               # timers asked for before the loop runs
        self.reply_channels: dict = {}          # direct reply-to key -> channel
        self.dl_deferred: list | None = None    # dead-letters held while a message fans out
        self._timeout_task = None
        self.delays = DelayScheduler(self)
        self.flow = FlowControl(self)
        self.stats = Sampler(self)
        self.started_at = time.time()
        self.global_parameters: dict = {}       # name -> JSON value (RabbitMQ's global runtime parameters)
        # (vhost, component, name) -> JSON value: parameters of components that keep no table
        # of their own (the shovel's); a component's runner (``hooks[component]``, set by the
        # node) is told of each change with ``notify(vhost, name, value)`` / ``notify_clear``
        self.runtime_parameters: dict[tuple[str, str, str], object] = {}
        self.hooks: dict = {}
        self.shovels = None                     # the shovel supervisor (leveret.shovel), set by the node
        self.federation = None                  # the federation supervisor (leveret.federation), idem
        # watchers of exchanges and queues (federation, as RabbitMQ's exchange and queue
        # decorators): ``changed(vhost, event, entity)`` with event "created", "deleted",
        # "policy" or "bindings" (an exchange's own bindings changed); see VHost.tell
        self.observers: list = []
        s = self.settings
        self.recovery = recover(self)
        if not self.vhosts:
            # first boot (or nothing kept): the default vhost, user and permissions
            self.add_vhost(s.default_vhost, description="Default virtual host")     # (RabbitMQ's)
            self.add_user(s.default_user, s.default_pass, tuple(s.default_user_tags))
            self.set_permissions(s.default_user, s.default_vhost, *s.default_permissions)
        if s.definitions_file:
            load_definitions(self, s.definitions_file)
        self.server_properties = {
            "product": s.product_name,          # RabbitMQ's by default (settings.product_name)
            "version": s.product_version,
            "platform": f"Python {platform.python_version()}",
            "copyright": "Leveret authors",
            "information": f"Leveret {__version__}. Licensed under the Apache License 2.0",
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
        if isinstance(self.global_parameters.get("cluster_name"), str):
            self.server_properties["cluster_name"] = self.global_parameters["cluster_name"]

    @property
    def node_name(self) -> str:
        """This node's name as RabbitMQ prints one (``rabbit@host`` there)."""
        return f"leveret@{platform.node()}"

    @property
    def cluster_name(self) -> str:
        """RabbitMQ's cluster name (``rabbit@host`` there, ``leveret@host`` here), sent in
        connection.start's server properties."""
        return self.server_properties["cluster_name"]

    @cluster_name.setter
    def cluster_name(self, name: str) -> None:
        self.set_global_parameter("cluster_name", name)

    # ------------------------------------------------------------ global parameters

    def set_global_parameter(self, name: str, value) -> None:
        """Set a global runtime parameter (any JSON value), durably. ``cluster_name`` is one, as
        in RabbitMQ (``rabbit_nodes:set_cluster_name``): it is the name sent to clients."""
        self.global_parameters[name] = value
        self.store.definitions.put("global_parameter", (name,), value=json.dumps(value))
        if name == "cluster_name" and hasattr(self, "server_properties"):
            self.server_properties["cluster_name"] = value

    def set_runtime_parameter(self, vhost: str, component: str, name: str, value) -> None:
        """Store a component's parameter durably and tell the component's runner."""
        self.runtime_parameters[(vhost, component, name)] = value
        self.store.definitions.put("parameter", (vhost, component, name), value=json.dumps(value))
        hook = self.hooks.get(component)
        if hook is not None:
            hook.notify(vhost, name, value)

    def clear_runtime_parameter(self, vhost: str, component: str, name: str) -> None:
        if self.runtime_parameters.pop((vhost, component, name), _MISSING) is _MISSING:
            raise AdminError("no_such_parameter", "Parameter does not exist")
        self.store.definitions.delete("parameter", (vhost, component, name))
        hook = self.hooks.get(component)
        if hook is not None:
            hook.notify_clear(vhost, name)

    def clear_global_parameter(self, name: str) -> None:
        if name not in self.global_parameters:
            raise AdminError("no_such_parameter", "Parameter does not exist")
        del self.global_parameters[name]
        self.store.definitions.delete("global_parameter", (name,))
        if name == "cluster_name":
            self.server_properties["cluster_name"] = f"leveret@{platform.node()}"

    # ------------------------------------------------------------ entities

    def _new_vhost(self, name: str) -> VHost:
        return VHost(name, self)

    def authenticate(self, username: str, password: str, peer_host: str | None) -> User | None:
        """The user if ``password`` is right and the loopback rule lets ``peer_host`` in."""
        return self.access.login(username, password, peer_host)[0]

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

    def put_policy(self, vhost: str, name: str, pattern, definition, priority=0, apply_to="all", *,
                   operator: bool = False) -> None:
        """Add or replace a policy (``operator``: an operator policy) as the management API and
        the definitions importer do (``rabbit_policy:set``): AdminError ``no_such_vhost``, or
        ``invalid_policy`` with every reason RabbitMQ's validation gives, one per line."""
        v = self._vhost(vhost)
        errors = parameter_errors(pattern, definition, priority, apply_to, operator)
        if errors:
            raise AdminError("invalid_policy", "\n".join(errors))
        v.set_policy(Policy(vhost, name, pattern, definition, priority, apply_to),
                     "operator_policy" if operator else "policy")

    def clear_policy(self, name: str, vhost: str = "/", *, operator: bool = False) -> None:
        v = self.vhosts.get(vhost)
        if v is None or name not in (v.operator_policies if operator else v.policies):
            raise ValueError("Parameter does not exist")
        v.clear_policy(name, "operator_policy" if operator else "policy")

    def list_policies(self, vhost: str | None = None, *, operator: bool = False) -> list[dict]:
        return [p.as_dict() for v in self.vhosts.values() if vhost is None or v.name == vhost
                for p in (v.operator_policies if operator else v.policies).values()]

    # ------------------------------------------------------------ timers

    def call_at_ms(self, t_ms: int, fn):
        """Run ``fn`` at wall-clock time ``t_ms`` (epoch ms); returns a cancellable handle."""
        delay = max(0.0, (t_ms - time.time() * 1000) / 1000)
        if self.loop is None:
            h = _Deferred(delay, fn)
            self._deferred.append(h)
            return h
        return self.loop.call_later(delay, fn)

    def call_later(self, delay: float, fn):
        """Run ``fn`` in ``delay`` seconds (the broker runs); returns a cancellable handle."""
        return self.call_at_ms(int(time.time() * 1000 + delay * 1000), fn)

    def new_message_id(self) -> int:
        self.next_message_id += 1
        return self.next_message_id

    def set_alarm(self, text: str | None) -> None:
        """Resource alarms changed: tell every connection (they block when they next publish)."""
        self.alarm_text = text
        for c in list(self.connections):
            c.set_alarm(text)

    async def _monitor_loop(self) -> None:
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

    def unacked(self):
        """Every delivered, unacknowledged message: ``(message, queue)`` pairs."""
        for c in list(self.connections):
            for ch in c.sessions.values():
                for msg, q, _c in ch.unacked.values():
                    yield msg, q

    def compact_logs(self) -> int:
        moved = 0
        by_queue: dict = {}
        for msg, q in self.unacked():
            by_queue.setdefault(q, []).append(msg)
        for v in self.vhosts.values():
            for q in list(v.queues.values()):
                moved += q.compact(by_queue.get(q, ()))
        if moved:
            log.info("compaction: moved %d messages out of mostly-acked log segments", moved)
        return moved

    async def _consumer_timeout_loop(self) -> None:
        """Close channels whose oldest unacked delivery waited longer than its queue's
        consumer timeout (RabbitMQ checks on its channel tick; this checks 4 times a second)."""
        while True:
            await asyncio.sleep(self.settings.consumer_timeout_check)
            try:
                now = time.monotonic()
                for c in list(self.connections):
                    for ch in list(c.sessions.values()):
                        if ch.unacked:
                            ch.check_consumer_timeout(now)
            except Exception:
                log.exception("consumer timeout check failed")

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def url(self) -> str:
        """An AMQP URL for the default user and vhost (handy when embedded with port 0)."""
        s = self.settings
        # a broker listening on every interface ("", 0.0.0.0, ::) is reached on the loopback one
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(s.host, s.host)
        host = f"[{host}]" if ":" in host else host
        return (f"amqp://{quote(s.default_user, safe='')}:{quote(s.default_pass, safe='')}@"
                f"{host}:{self.port}/{quote(s.default_vhost, safe='')}")

    async def start(self) -> None:
        """Run on the current event loop: the store's committer, timers, periodic checks."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.store.attach(loop)
        deferred, self._deferred = self._deferred, []
        for h in deferred:
            h.start(loop)
        self.delays.start()
        self._timeout_task = loop.create_task(self._consumer_timeout_loop())
        self._monitor_task = loop.create_task(self._monitor_loop())
        self.stats.start(loop)

    def stop_timers(self) -> None:
        """The first step of stopping: no timer fires from now on (a queue must not expire
        while clients are being disconnected, nor later if an embedding program's loop runs on:
        timers asked for from now on are never started)."""
        for attr in ("_monitor_task", "_timeout_task"):
            t = getattr(self, attr)
            if t is not None:
                t.cancel()
                setattr(self, attr, None)
        self.delays.stop()
        self.stats.stop()
        self.loop = None
        for v in self.vhosts.values():
            for q in v.queues.values():
                q.stop_timers()

    async def stop(self) -> None:
        """Stop (after the I/O layer closed the connections): delivered marks, then the store."""
        self.stop_timers()
        if self.store.durable:
            self._save_delivered_marks()
        self.store.close()

    def _save_delivered_marks(self) -> None:
        """Orderly stop: remember which persisted messages were delivered (RabbitMQ keeps
        ``next_deliver_seq_id`` in the queue's recovery terms for the same purpose)."""
        for msg, q in self.unacked():
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
