"""A node: the broker and its listeners, what ``leveret serve`` runs and a program embeds.

RabbitMQ calls one running broker a node. Here a :class:`Node` is the
broker (``leveret.broker``: AMQP semantics, no sockets) handed to the server
(``leveret.server``: the listening socket and one protocol object per
connection). The layers import downwards only -- store <- broker <- server <-
node/cli -- so this is the one place that knows both::

    from leveret import Broker, Settings      # Broker is Node

    async with Broker(Settings(port=0)) as broker:   # port 0: pick a free port
        url = broker.url                             # amqp://guest:guest@127.0.0.1:<port>/%2F

    # TLS (docs/tls.md): an AMQPS listener next to the plain one, or instead of it
    Settings(port=0, ssl_port=0, ssl_certfile="server.pem", ssl_keyfile="server.key",
             ssl_cacertfile="ca.pem", ssl_verify="verify_peer")       # broker.ssl_url: amqps://...
"""
from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from urllib.parse import quote

from . import __version__
from .broker.broker import Broker
from .server.listener import Listener
from .federation import FederationSupervisor
from .shovel import ShovelSupervisor
from .settings import control_socket_path

if TYPE_CHECKING:   # imported when enabled: aiohttp and the API's routes cost about 0.4 s of
    # start-up, which an embedded broker (management off by default) never pays; the control
    # socket's server and commands (about 12 ms) likewise only with a control socket
    from .server.control import ControlServer
    from .management.app import ManagementServer
    from .prometheus.server import PrometheusServer

log = logging.getLogger("leveret")


def _control_path(settings) -> str | None:
    """Where the control socket goes (None: no socket); decided without importing server.control."""
    if settings.control_socket is not None:
        return settings.control_socket or None
    return control_socket_path(settings.data_dir) if settings.data_dir else None


class Node(Broker):
    """A :class:`~leveret.broker.broker.Broker` that listens (``start``) and disconnects its
    clients with 320 CONNECTION_FORCED before it stops (``stop``); with a data directory it
    also opens the control socket ``leveret ctl`` uses (``server/control.py``)."""

    listener: Listener | None = None
    control: ControlServer | None = None
    management: ManagementServer | None = None
    prometheus: PrometheusServer | None = None
    shovel_supervisor: ShovelSupervisor | None = None
    federation_supervisor: FederationSupervisor | None = None

    @property
    def management_port(self) -> int | None:
        """The management API's port (None when it does not run)."""
        return self.management.port if self.management is not None else None

    @property
    def prometheus_port(self) -> int | None:
        """The Prometheus metrics port (None when it does not run)."""
        return self.prometheus.port if self.prometheus is not None else None

    @property
    def port(self) -> int | None:
        """The plain listener's port (None when ``tcp_listener`` is off)."""
        return self.listener.port if self.listener is not None else self.settings.port

    @property
    def ssl_port(self) -> int | None:
        """The TLS listener's port (None without one)."""
        return self.listener.ssl_port if self.listener is not None else self.settings.ssl_port

    @property
    def ssl_url(self) -> str:
        """An AMQPS URL for the default user and vhost on the TLS listener."""
        s = self.settings
        return (f"amqps://{quote(s.default_user, safe='')}:{quote(s.default_pass, safe='')}@"
                f"{s.ssl_host or s.host}:{self.ssl_port}/{quote(s.default_vhost, safe='')}")

    async def start(self) -> None:
        await super().start()
        # the control socket first (as RabbitMQ's CLI reaches a node before its listeners are
        # up): whoever sees the AMQP port open can use leveret ctl at once
        path = _control_path(self.settings)
        if path is not None:
            from .federation import control as _federation_control  # noqa: F401  (registers
            from .server.control import ControlServer
            from .shovel import control as _shovel_control  # noqa: F401  its ctl commands)
            control = ControlServer(self, path)
            try:
                await control.start()
                self.control = control
            except OSError as e:   # the broker runs without it; ctl will say it cannot connect
                log.error("control socket %s not opened: %s", path, e)
        self.listener = Listener(self)
        try:
            await self.listener.start()
        except BaseException:
            self.listener = None
            if self.control is not None:
                await self.control.stop()
                self.control = None
            await super().stop()
            raise
        self.shovel_supervisor = ShovelSupervisor(self, self.listener)
        await self.shovel_supervisor.start()
        self.federation_supervisor = FederationSupervisor(self, self.listener)
        await self.federation_supervisor.start()
        s = self.settings
        where = []

        def addr(host: str) -> str:
            host = host or "*"      # "": every interface
            return f"[{host}]" if ":" in host else host
        if self.port is not None:
            where.append(f"amqp://{addr(s.host)}:{self.port}")
        if self.ssl_port is not None:
            where.append(f"amqps://{addr(s.ssl_host if s.ssl_host is not None else s.host)}:{self.ssl_port}")
        log.info("Leveret %s listening on %s (python %s)", __version__, " and ".join(where) or "no port",
                 sys.version.split()[0])
        if self.control is not None:
            log.info("control socket for leveret ctl: %s", self.control.path)
        if s.management_enabled:
            from .management.app import ManagementServer
            m = ManagementServer(self)
            try:
                await m.start()
                self.management = m
                log.info("management API on http://%s:%d", addr(s.management_host), m.port)
            except OSError as e:   # as with the control socket: the broker serves AMQP regardless
                log.error("management API not started on %s:%s: %s", s.management_host, s.management_port, e)
        if s.prometheus_enabled:
            from .prometheus.server import PrometheusServer
            p = PrometheusServer(self)
            try:
                await p.start()
                self.prometheus = p
                log.info("Prometheus metrics on http://%s:%d/metrics", addr(s.prometheus_host), p.port)
            except OSError as e:
                log.error("Prometheus metrics not served on %s:%s: %s", s.prometheus_host, s.prometheus_port, e)

    async def stop(self) -> None:
        self.stop_timers()
        if self.federation_supervisor is not None:
            await self.federation_supervisor.stop()
            self.federation_supervisor = None
        if self.shovel_supervisor is not None:
            await self.shovel_supervisor.stop()
            self.shovel_supervisor = None
        if self.prometheus is not None:
            await self.prometheus.stop()
            self.prometheus = None
        if self.management is not None:
            await self.management.stop()
            self.management = None
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        await super().stop()
