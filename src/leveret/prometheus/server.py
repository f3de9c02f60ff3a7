"""The metrics HTTP listener (``prometheus.tcp.port``, 15692), in the broker's event loop.

As ``rabbit_prometheus_handler``: ``GET`` (and ``HEAD``) ``/metrics`` (aggregated),
``/metrics/per-object`` and ``/metrics/detailed`` (``family=`` and ``vhost=``, both repeatable),
no authentication; any other ``/metrics/{registry}`` is 404 ``Unknown Registry``
(``text/plain``), another method 405 with ``allow: HEAD, GET, OPTIONS``; gzip when the scraper
accepts it. aiohttp as for the management API (``management/app.py`` says why).

A scrape must not stall message traffic: families are gathered a chunk of objects at a time
and written a chunk of samples at a time (:mod:`.exposition`), and the handler gives the loop
back to the broker whenever it has worked for ``SLICE`` seconds, so with 10,000 queues a
per-object scrape is a few hundred short slices rather than one long stop (BENCHMARKS.md).

``/metrics`` reads its sums from the statistics sampler's last sample instead of walking every
queue per scrape (:mod:`.metrics`); it and ``/metrics/per-object`` (whose ``rabbitmq_global_*``
come from that sample) say when the sample was taken in ``Last-Modified`` (RabbitMQ sends
none), which is how a scraper that must see its own traffic (the tests) knows a value is fresh.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from prometheus_client.exposition import generate_latest

from ..management.app import AppServer
from . import metrics
from .exposition import CONTENT_TYPE, encode
from ..management.keys import BROKER

log = logging.getLogger("leveret.prometheus")

SLICE = 0.005       # seconds of work between two turns of the event loop


class _Families:
    """A ``prometheus_client`` collector over families already gathered."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        for f in self.families:
            yield f.client()


async def _gather(gen) -> list:
    """The families of ``gen``, letting the loop run at every PAUSE after SLICE of work."""
    out = []
    t0 = time.perf_counter()
    for item in gen:
        if item is metrics.PAUSE:
            if time.perf_counter() - t0 > SLICE:
                await asyncio.sleep(0)
                t0 = time.perf_counter()
        else:
            out.append(item)
    return out


def _response(request: web.Request, sampled_at: float | None = None) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": CONTENT_TYPE, "vary": "accept-encoding"})
    if sampled_at is not None:
        resp.last_modified = int(sampled_at)      # (whole seconds: an HTTP date)
    if "gzip" in request.headers.get("accept-encoding", ""):
        resp.enable_compression(web.ContentCoding.gzip)
    return resp


async def aggregated(request: web.Request) -> web.StreamResponse:
    """``/metrics``: few samples; encoded by prometheus_client itself."""
    broker = request.app[BROKER]
    agg = broker.stats.current()
    families = await _gather(metrics.aggregated(broker, agg))
    resp = _response(request, agg.taken_at)
    await resp.prepare(request)
    if request.method != "HEAD":
        await resp.write(generate_latest(_Families(families)))
    await resp.write_eof()
    return resp


async def _stream(request: web.Request, gen, sampled_at: float | None = None) -> web.StreamResponse:
    families = await _gather(gen)
    resp = _response(request, sampled_at)
    await resp.prepare(request)
    if request.method != "HEAD":
        t0 = time.perf_counter()
        buf: list[str] = []
        cache: dict = {}
        for f in families:
            for text in encode(f, labels_cache=cache):
                buf.append(text)
                if time.perf_counter() - t0 > SLICE:
                    await resp.write("".join(buf).encode())
                    buf.clear()
                    await asyncio.sleep(0)
                    t0 = time.perf_counter()
        if buf:
            await resp.write("".join(buf).encode())
    await resp.write_eof()
    return resp


async def per_object(request: web.Request) -> web.StreamResponse:
    broker = request.app[BROKER]
    agg = broker.stats.current()
    return await _stream(request, metrics.per_object(broker, agg), agg.taken_at)


async def detailed(request: web.Request) -> web.StreamResponse:
    q = request.query
    vhosts = q.getall("vhost") if "vhost" in q else None
    return await _stream(request, metrics.detailed(request.app[BROKER], q.getall("family", []), vhosts))


async def unknown(request: web.Request) -> web.Response:
    return web.Response(status=404, text="Unknown Registry", content_type="text/plain")


def _route(path: str, handler) -> list:
    async def not_allowed(request: web.Request) -> web.Response:
        return web.Response(status=405, headers={"allow": "HEAD, GET, OPTIONS"})

    async def options(request: web.Request) -> web.Response:
        return web.Response(status=200, headers={"allow": "HEAD, GET, OPTIONS"})
    return [web.get(path, handler), web.options(path, options), web.route("*", path, not_allowed)]


def build_app(broker) -> web.Application:
    app = web.Application()
    app[BROKER] = broker
    app.router.add_routes(_route("/metrics", aggregated) + _route("/metrics/per-object", per_object)
                          + _route("/metrics/detailed", detailed) + _route("/metrics/{registry}", unknown))
    return app


class PrometheusServer(AppServer):
    """The listener on ``prometheus_host:prometheus_port``."""

    def __init__(self, broker):
        self.broker = broker
        super().__init__(build_app(broker), broker.settings.prometheus_host, broker.settings.prometheus_port)
