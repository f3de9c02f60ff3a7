"""The aiohttp application keys of Leveret's HTTP servers (the management API and the
Prometheus endpoint). Typed ``web.AppKey``s, not strings: aiohttp warns (``NotAppKeyWarning``)
on a string key, and a program run with ``-W error`` -- a test suite with
``filterwarnings = error`` embedding the broker -- would fail to start the management API."""
from __future__ import annotations

from aiohttp import web

BROKER: web.AppKey = web.AppKey("broker")
