"""Federation, as RabbitMQ 3.10.8's ``rabbitmq_federation`` plugin runs it (docs/scale-out.md).

Upstreams are runtime parameters of component ``federation-upstream`` and upstream sets of
``federation-upstream-set`` (``config.py``: validation and resolution), kept durably by the
broker (``Broker.runtime_parameters``); the policy keys ``federation-upstream``,
``federation-upstream-set`` and ``federation-upstream-pattern`` are registered with the
policy validator. An exchange (not the default one, not internal) or a queue (without
``x-internal-purpose``) whose policy has one of them is *federated*: the node's
:class:`FederationSupervisor` runs one link per upstream the policy names (``link.py``). It
learns of exchanges and queues created or deleted, policy changes and binding changes
through ``Broker.observers`` (RabbitMQ's exchange and queue decorators), and of upstream
changes through the parameter hooks (``notify`` / ``notify_clear``: the links of an upstream
that changed restart, those of one that was cleared stop).

Status rows are ``rabbit_federation_status``'s (``starting``, ``running`` with the local
connection's name, ``error`` with the reason), read by ``/api/federation-links`` and
``leveret ctl federation_status``; ``restart_federation_link`` restarts one link by its id.
Link ids are 8 hex digits derived from (vhost, kind, name, upstream, upstream exchange or
queue), stable across restarts; they are not RabbitMQ's ``erlang:phash2`` values.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging

from ..auth.access import InternalUser
from ..broker.parameters import StoredComponent, register
from ..broker.policy import register_keys
from ..shovel import Background, erlang_timestamp
from .config import KINDS, POLICY_CHECKS, POLICY_KEYS, policy_error, upstreams_for, validate
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # the links (and aiormq) come with the first federation link: a broker
    from .link import ExchangeLink, QueueLink    # without federation never pays that import

log = logging.getLogger("leveret.federation")


class UpstreamComponent(StoredComponent):
    def __init__(self, name: str):
        self.name = name

    def validate(self, broker, vhost, name, value, user):
        return validate(self.name, name, value)


for _kind in KINDS:
    register(UpstreamComponent(_kind))
register_keys(POLICY_CHECKS, policy_error)


def _definition(entity) -> tuple[dict, str | None]:
    p = entity.policy
    if p is None:
        return {}, None
    return {k: v for k, v in p.definition.items() if k in POLICY_KEYS}, p.name


class FederationSupervisor:
    """The node's federation links, keyed ``(kind, vhost, name, upstream)``."""

    def __init__(self, broker, listener):
        self.broker, self.listener = broker, listener
        self.user = InternalUser()
        self.links: dict[tuple, ExchangeLink | QueueLink] = {}
        self.suffixes: dict = {}        # (vhost, exchange, upstream) -> "A" / "B" (rabbit_federation_db)
        self._tasks = Background()

    def cluster_name(self) -> str:
        return str(self.broker.server_properties.get("cluster_name") or self.broker.node_name)

    def link_id(self, link) -> str:
        ident = repr((link.vhost, link.kind, link.name, link.up.name,
                      link.up.exchange if link.kind == "exchange" else link.up.queue))
        return hashlib.sha1(ident.encode()).hexdigest()[:8]

    async def start(self) -> None:
        for k in KINDS:
            self.broker.hooks[k] = self
        self.broker.federation = self
        self.broker.observers.append(self)
        for v in list(self.broker.vhosts.values()):
            self._reconcile_vhost(v)

    async def stop(self) -> None:
        for k in KINDS:
            self.broker.hooks.pop(k, None)
        self.broker.federation = None
        if self in self.broker.observers:
            self.broker.observers.remove(self)
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(*(link.stop() for link in links), return_exceptions=True)
        self._tasks.cancel()

    def _spawn(self, coro) -> None:
        self._tasks.spawn(coro)

    # ------------------------------------------------------------ what should run

    def _federated(self, entity) -> bool:
        if entity.kind == "exchange":
            return bool(entity.name) and not entity.internal
        return "x-internal-purpose" not in entity.arguments

    def _reconcile(self, vhost, entity, gone: bool = False) -> None:
        """Start, keep, restart or stop the links of one exchange or queue."""
        kind = entity.kind
        want = {}
        if not gone and self._federated(entity):
            definition, policy = _definition(entity)
            if definition:
                for up in upstreams_for(self.broker.runtime_parameters, vhost.name, definition, entity.name):
                    want[(kind, vhost.name, entity.name, up.name)] = (up, policy)
        have = [k for k in self.links if k[:3] == (kind, vhost.name, entity.name)]
        for k in have:
            link = self.links[k]
            if k not in want or want[k] != (link.up, link.policy):
                del self.links[k]
                # gone for good (no longer wanted): its upstream queue and exchange go too
                self._spawn(link.stop(cleanup=k not in want))
        new = [k for k in want if k not in self.links]
        if not new:
            return
        from .link import ExchangeLink, QueueLink     # lazily: see the import at the top
        cls = ExchangeLink if kind == "exchange" else QueueLink
        for k in new:
            up, policy = want[k]
            link = self.links[k] = cls(self, vhost.name, entity.name, up, policy)
            link.start()

    def _reconcile_vhost(self, vhost) -> None:
        for x in list(vhost.exchanges.values()):
            if x.name:
                self._reconcile(vhost, x)
        for q in list(vhost.queues.values()):
            self._reconcile(vhost, q)
        for k in [k for k in self.links if k[1] == vhost.name]:
            v = self.broker.vhosts.get(vhost.name)
            table = v.exchanges if k[0] == "exchange" else v.queues
            if k[2] not in table:
                self._spawn(self.links.pop(k).stop(cleanup=True))

    # ------------------------------------------------------------ observer and hooks

    def changed(self, vhost, event: str, entity) -> None:
        if event == "bindings":
            for k, link in self.links.items():
                if k[:3] == ("exchange", vhost.name, entity.name):
                    link.bindings_changed()
            return
        self._reconcile(vhost, entity, gone=event == "deleted")

    def notify(self, vhost: str, name: str, value) -> None:
        v = self.broker.vhosts.get(vhost)
        if v is not None:
            self._reconcile_vhost(v)

    def notify_clear(self, vhost: str, name: str) -> None:
        self.notify(vhost, name, None)

    # ------------------------------------------------------------ status, restart

    def status(self, vhost: str | None = None) -> list[dict]:
        out = []
        for k, link in sorted(self.links.items()):
            if vhost is None or link.vhost == vhost:
                row = {"node": self.broker.node_name, **link.row(), "timestamp": erlang_timestamp(link.timestamp)}
                out.append(row)
        return out

    def restart(self, link_id: str) -> bool:
        for k, link in list(self.links.items()):
            if self.link_id(link) == link_id:
                new = self.links[k] = type(link)(self, link.vhost, link.name, link.up, link.policy)

                async def swap(old=link, new=new):
                    await old.stop()
                    if self.links.get(k) is new:
                        new.start()
                self._spawn(swap())
                return True
        return False
