"""Fixtures of the management API tests: ``api`` (host:port of the API under test: Leveret's,
or RabbitMQ's with ``LEVERET_TEST_MGMT_URL`` and ``LEVERET_TEST_URL``) and ``call``."""
from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request

import pytest


@pytest.fixture(scope="module")
def api(broker_url, leveret_session_server):
    url = os.environ.get("LEVERET_TEST_MGMT_URL") if os.environ.get("LEVERET_TEST_URL") \
        else leveret_session_server.management_url
    if url is None:
        pytest.skip("no management API to test (set LEVERET_TEST_MGMT_URL with LEVERET_TEST_URL)")
    return url.split("@")[-1] if "@" in url else url.replace("http://", "")


def call(api: str, method: str, path: str, user: str = "guest", password: str = "guest", body=None,
         auth: bool = True, headers: dict | None = None):
    headers = {"content-type": "application/json", **(headers or {})}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    r = urllib.request.Request(f"http://{api}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return e.code, dict(e.headers), parsed
