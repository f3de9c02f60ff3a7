"""The management HTTP API application (aiohttp) and its server, in the broker's event loop.

Why aiohttp: a well-kept asyncio HTTP server that runs on the loop the broker already owns
(uvloop or not) with no second thread and no ASGI bridge, so a handler reads broker state
directly and consistently between two loop turns; its router matches the raw path, so
RabbitMQ's ``%2F`` vhost segments work as they do there. Starlette would need an ASGI server
(uvicorn) sharing the loop, one more layer for nothing.

Every route lives in a module of :mod:`leveret.management.routes` (one per resource group);
:data:`~leveret.management.routes.MODULES` lists them. Handlers read the broker through
its administrative and introspection methods, never through queue or connection internals.
A path may end with one slash, as with cowboy. Errors leave as RabbitMQ's JSON
(:mod:`.errors`): an unknown path is 404 ``Object Not
Found``, a method a path lacks is 405 with ``allow`` and no body, an exception inside a
handler is 500 ``{"error":"internal_server_error"}`` (logged), never a dropped connection.
"""
from __future__ import annotations

import logging

from aiohttp import web

from .errors import json_error, not_found
from .routes import MODULES
from .keys import BROKER

log = logging.getLogger("leveret.management")


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as e:
        return web.Response(status=405, headers={"allow": ", ".join(sorted(e.allowed_methods))})
    except web.HTTPNotFound as e:
        if e.content_type == "application/json":
            raise
        raise not_found() from None
    except web.HTTPException:
        raise
    except Exception:
        log.exception("management API: %s %s failed", request.method, request.path)
        raise json_error(500, "internal_server_error", "internal_server_error") from None


def build_app(broker) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=broker.settings.max_message_size + 65536)
    app[BROKER] = broker
    for mod in MODULES:
        app.router.add_routes(mod.routes)
    # cowboy's router drops one trailing slash (/api/overview/ is /api/overview); a second one
    # is an empty segment (404). The slash variants come after every route, in the same order,
    # so a fixed path still wins over a variable one.
    for mod in MODULES:
        app.router.add_routes([web.route(r.method, r.path + "/", r.handler, **r.kwargs)
                               for r in mod.routes if isinstance(r, web.RouteDef)
                               and r.path.startswith("/api/") and not r.path.endswith("/")])
    return app


class AppServer:
    """An aiohttp application's listener on ``host:port`` in the running loop (the management
    API here; Prometheus metrics in ``prometheus/server.py``)."""

    def __init__(self, app: web.Application, host: str, port: int):
        self.app, self.host, self.bind_port = app, host, port
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host or None, self.bind_port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self.runner.cleanup()
            self.runner = None
            raise
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class ManagementServer(AppServer):
    """The API's HTTP listener on ``management_host:management_port``."""

    def __init__(self, broker):
        self.broker = broker
        super().__init__(build_app(broker), broker.settings.management_host, broker.settings.management_port)
