#!/usr/bin/env python
"""A live metrics dashboard: consume samples from the 'metrics' exchange, serve the aggregate.

The dashboard's durable queue 'metrics.dashboard' is bound to the 'metrics' topic exchange
with ``metrics.#`` (``--bind`` picks other patterns, e.g. ``metrics.api.*``), so samples sent
while the dashboard is down wait for it. For every (service, metric) it keeps count, sum, min,
max, average and the last value, and serves them over HTTP (aiohttp):

* ``GET /api/metrics`` - JSON: ``{"received": 7, "rejected": 0, "services": {"api":
  {"latency_ms": {"count": 3, "sum": 60.0, "min": 10.0, "max": 30.0, "avg": 20.0, "last": 30.0}}}}``
* ``GET /`` - the same as an HTML table that reloads itself every 2 seconds.

A sample that is not JSON of that shape is rejected (``basic.reject``, requeue=False: it is
dropped, there is no dead-letter queue) and counted in ``rejected``.

Usage: dashboard.py [--url URL] [--prefix P] [--host 127.0.0.1] [--port 8080] [--bind metrics.#]
                    [--timeout S]
"""
import argparse
import asyncio
import html
import json
import os
import sys

import aio_pika
from aiohttp import web

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


class Aggregate:
    """Per (service, metric) statistics of the samples seen so far."""

    def __init__(self):
        self.services: dict[str, dict[str, dict]] = {}
        self.received = 0
        self.rejected = 0

    def add(self, sample: dict) -> None:
        service, metric, value = sample["service"], sample["metric"], float(sample["value"])
        if not isinstance(service, str) or not isinstance(metric, str):
            raise TypeError("service and metric must be strings")
        s = self.services.setdefault(service, {}).setdefault(
            metric, {"count": 0, "sum": 0.0, "min": value, "max": value})
        s["count"] += 1
        s["sum"] += value
        s["min"], s["max"] = min(s["min"], value), max(s["max"], value)
        s["avg"] = s["sum"] / s["count"]
        s["last"] = value
        self.received += 1

    def as_json(self) -> dict:
        return {"received": self.received, "rejected": self.rejected, "services": self.services}

    def as_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(svc)}</td><td>{html.escape(m)}</td><td>{s['count']}</td>"
            f"<td>{s['min']:g}</td><td>{s['avg']:.2f}</td><td>{s['max']:g}</td><td>{s['last']:g}</td></tr>"
            for svc, metrics in sorted(self.services.items()) for m, s in sorted(metrics.items()))
        return ("<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
                "<title>Metrics</title></head><body><h1>Metrics</h1>"
                f"<p>{self.received} samples, {self.rejected} rejected</p><table border='1'>"
                "<tr><th>service</th><th>metric</th><th>count</th><th>min</th><th>avg</th><th>max</th>"
                f"<th>last</th></tr>{rows}</table></body></html>")


async def consume(url: str, prefix: str, patterns: list[str], aggregate: Aggregate) -> aio_pika.abc.AbstractConnection:
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=100)
    exchange = await channel.declare_exchange(prefix + "metrics", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(prefix + "metrics.dashboard", durable=True)
    for pattern in patterns:
        await queue.bind(exchange, routing_key=pattern)

    async def on_sample(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            aggregate.add(json.loads(message.body))
        except (ValueError, KeyError, TypeError) as exc:
            aggregate.rejected += 1
            print(f" [!] rejected sample {message.body[:60]!r} ({type(exc).__name__}: {exc})", flush=True)
            await message.reject(requeue=False)
        else:
            await message.ack()

    await queue.consume(on_sample)
    return connection


def make_app(aggregate: Aggregate) -> web.Application:
    async def api(request: web.Request) -> web.Response:
        return web.json_response(aggregate.as_json())

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=aggregate.as_html(), content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/api/metrics", api), web.get("/", page)])
    return app


async def run(args) -> None:
    aggregate = Aggregate()
    connection = await consume(args.url, args.prefix, args.bind or ["metrics.#"], aggregate)
    runner = web.AppRunner(make_app(aggregate))
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]
    print(f" [*] Dashboard on http://{args.host}:{port}/ (consuming {args.prefix}metrics.dashboard)", flush=True)
    try:
        await asyncio.sleep(args.timeout if args.timeout is not None else float("inf"))
    finally:
        await runner.cleanup()
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free port)")
    parser.add_argument("--bind", action="append", help="binding pattern (default metrics.#; repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
