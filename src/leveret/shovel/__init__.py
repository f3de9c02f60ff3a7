"""Dynamic shovels, as RabbitMQ 3.10.8's ``rabbitmq_shovel`` plugin runs them (docs/scale-out.md).

A shovel is a runtime parameter of component ``shovel`` (``config.py``: validation and
defaults), set through ``leveret ctl set_parameter shovel``, ``/api/parameters/shovel/...`` or
a definitions import, and kept durably by the broker (``Broker.runtime_parameters``), so
shovels start again after a restart. The node runs one :class:`ShovelSupervisor`; it starts a
:class:`~leveret.shovel.worker.Shovel` (an asyncio task in the broker's loop) per parameter and
replaces or stops it when the parameter changes or is cleared (RabbitMQ's ``notify`` /
``notify_clear``). Status rows are ``rabbit_shovel_status``'s: ``starting``, ``running`` (with
its URIs and endpoints), ``terminated`` (with the reason) -- read by the management API's
``/api/shovels`` and by ``leveret ctl shovel_status`` (``control.py``).

This package sits above ``leveret.server`` (it opens direct connections through the listener
and registers control commands); the management API reads it through ``Broker.shovels``.
"""
from __future__ import annotations

import asyncio
import logging
import time

from ..auth.access import InternalUser
from ..broker.parameters import StoredComponent, register
from .config import parse, validate
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # the worker (and aiormq, ~50 ms of import) comes with the first shovel, so a
    from .worker import Shovel   # broker without shovels, embedded ones above all, never pays it

log = logging.getLogger("leveret.shovel")

COMPONENT = "shovel"



class Background:
    """A supervisor's fire-and-forget tasks (a shovel's or a link's stop and restart), kept
    referenced until done and cancelled when the supervisor stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for t in list(self._tasks):
            t.cancel()

class ShovelComponent(StoredComponent):
    name = COMPONENT

    def validate(self, broker, vhost, name, value, user):
        return validate(broker, vhost, name, value, user)


register(ShovelComponent())


def erlang_timestamp(t: float) -> str:
    """``rabbit_mgmt_format:timestamp``-like local time as the shovel status shows it
    (``2026-12-07 2:00:13``: the hour not padded)."""
    s = time.localtime(t)
    return f"{s.tm_year}-{s.tm_mon:02}-{s.tm_mday:02} {s.tm_hour}:{s.tm_min:02}:{s.tm_sec:02}"


class ShovelSupervisor:
    """The node's shovels, keyed ``(vhost, name)``."""

    def __init__(self, broker, listener):
        self.broker, self.listener = broker, listener
        self.user = InternalUser()
        self.shovels: dict[tuple[str, str], Shovel] = {}
        self._tasks = Background()

    def cluster_name(self) -> str:
        return str(self.broker.server_properties.get("cluster_name") or self.broker.node_name)

    async def start(self) -> None:
        self.broker.hooks[COMPONENT] = self
        self.broker.shovels = self
        for (vhost, component, name), value in list(self.broker.runtime_parameters.items()):
            if component == COMPONENT:
                self.notify(vhost, name, value)

    async def stop(self) -> None:
        self.broker.hooks.pop(COMPONENT, None)
        self.broker.shovels = None
        shovels, self.shovels = list(self.shovels.values()), {}
        await asyncio.gather(*(s.stop() for s in shovels), return_exceptions=True)
        self._tasks.cancel()

    def _spawn(self, coro) -> None:
        self._tasks.spawn(coro)

    # ------------------------------------------------------------ notify / notify_clear

    def notify(self, vhost: str, name: str, value) -> None:
        from .worker import Shovel     # lazily: see the import at the top
        old = self.shovels.get((vhost, name))
        new = self.shovels[(vhost, name)] = Shovel(self, parse(vhost, name, value))
        self._spawn(self._replace(old, new))

    def notify_clear(self, vhost: str, name: str) -> None:
        old = self.shovels.pop((vhost, name), None)
        if old is not None:
            self._spawn(old.stop())

    async def _replace(self, old: Shovel | None, new: Shovel) -> None:
        if old is not None:
            await old.stop()
        if self.shovels.get((new.cfg.vhost, new.cfg.name)) is new:
            new.start()

    def autodelete(self, shovel: Shovel) -> None:
        """The shovel moved its ``src-delete-after``: its parameter goes (RabbitMQ clears it)."""
        key = (shovel.cfg.vhost, shovel.cfg.name)
        if self.shovels.get(key) is shovel:
            del self.shovels[key]
            try:
                self.broker.clear_runtime_parameter(shovel.cfg.vhost, COMPONENT, shovel.cfg.name)
            except Exception:      # (cleared meanwhile)
                pass

    # ------------------------------------------------------------ status, restart

    def status(self, vhost: str | None = None) -> list[dict]:
        """``/api/shovels`` rows: node, timestamp, name, vhost, type, state, then details."""
        out = []
        for (v, _), s in sorted(self.shovels.items()):
            if vhost is None or v == vhost:
                out.append({"node": self.broker.node_name, "timestamp": erlang_timestamp(s.timestamp),
                            **s.status()})
        return out

    def restart(self, vhost: str, name: str) -> bool:
        """``rabbit_shovel_util:restart_shovel``: False when there is no such shovel."""
        s = self.shovels.get((vhost, name))
        if s is None:
            return False
        log.info("Shovel '%s' in virtual host '%s' will be restarted", name, vhost)
        self.notify(vhost, name, self.broker.runtime_parameters[(vhost, COMPONENT, name)])
        return True
