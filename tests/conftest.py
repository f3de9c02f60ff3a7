"""Shared fixtures.

Conformance tests take the broker URL from ``LEVERET_TEST_URL``; without it the
session starts its own ``python -m leveret serve`` on a free loopback port, so the
same tests run against Leveret and against RabbitMQ. Tests of Leveret-only
behaviour carry ``@pytest.mark.leveret_only`` and skip when the URL is external.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

import pika
import pytest

EXTERNAL_URL = os.environ.get("LEVERET_TEST_URL")

# pytester runs the pytest plugin's own tests (tests/testing); the sample project is a suite of
# its own, run by tests/testing/test_sample_project.py and scripts/rabbitmq-conformance
pytest_plugins = ["pytester"]
collect_ignore = ["sample_project"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited early with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on {host}:{port} within {timeout}s")


class ServerProcess:
    """A ``python -m leveret serve`` child process on a free port."""

    def __init__(self, data_dir: str, *extra: str, port: int | None = None):
        self.port = port or _free_port()
        self.data_dir = data_dir
        self.log_path = os.path.join(data_dir, "server.log")
        self._log = open(self.log_path, "ab")
        self._log_start = len(self.log())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leveret", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", data_dir,
             # (a free port for the management API, so test brokers never collide on 15672)
             *(() if any(a.startswith("--management-port") or a == "--no-management" for a in extra)
               else ("--management-port", "0")),
             *(() if any(a.startswith("--prometheus-port") or a == "--no-prometheus" for a in extra)
               else ("--prometheus-port", "0")), *extra],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        _wait_port("127.0.0.1", self.port, self.proc)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def management_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the management API (from this process's log line: a
        restarted server appends to the same log)."""
        return self._logged_url(r"management API on http://[^:]+:(\d+)")

    @property
    def prometheus_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the Prometheus metrics (from the log line)."""
        return self._logged_url(r"Prometheus metrics on http://[^:]+:(\d+)")

    def _logged_url(self, pattern: str) -> str | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log()[self._log_start:])
            if m:
                return f"http://127.0.0.1:{m.group(1)}"
            time.sleep(0.05)
        return None

    def log(self) -> str:
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def leveret_session_server(tmp_path_factory):
    """The session's own ``leveret serve`` (None when the tests run against LEVERET_TEST_URL)."""
    if EXTERNAL_URL:
        yield None
        return
    server = ServerProcess(str(tmp_path_factory.mktemp("leveret-data")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker_url(leveret_session_server) -> str:
    """AMQP URL of the broker under test (``amqp://user:pass@host:port/vhost``)."""
    return EXTERNAL_URL or leveret_session_server.url


@pytest.fixture(scope="session")
def broker_addr(broker_url) -> tuple[str, int]:
    u = urllib.parse.urlparse(broker_url)
    return u.hostname or "127.0.0.1", u.port or 5672


@pytest.fixture
def leveret_server(tmp_path):
    """A private Leveret server process, for tests that stop or restart it."""
    servers: list[ServerProcess] = []

    def start(*extra: str, port: int | None = None, data_dir: str | None = None) -> ServerProcess:
        s = ServerProcess(data_dir or str(tmp_path), *extra, port=port)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def conn(broker_url):
    """A pika connection to the broker under test, closed afterwards (tests/conformance/conftest.py
    makes its own through its ``connect`` factory)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture
def uniq(request) -> str:
    """A name prefix unique to this test run, so tests never collide on a shared broker."""
    return f"t.{request.node.name[:40]}.{uuid.uuid4().hex[:8]}"


def pytest_collection_modifyitems(config, items):
    if not EXTERNAL_URL:
        return
    skip = pytest.mark.skip(reason="Leveret-only behaviour; LEVERET_TEST_URL points at another broker")
    for item in items:
        if "leveret_only" in item.keywords:
            item.add_marker(skip)
