"""Fixtures of the framework tests: a virtual host per test module (created through the
management API of the broker under test and deleted afterwards, with everything the framework
declared in it) and ``Worker``, a framework's worker process killed at teardown."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pytest

from tests.brokeradmin import HttpAdmin
from tests.subprocs import Program

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def fw_admin(broker_url, leveret_session_server) -> HttpAdmin:
    url = (os.environ.get("LEVERET_TEST_MGMT_URL", "http://guest:guest@127.0.0.1:15672")
           if os.environ.get("LEVERET_TEST_URL") else leveret_session_server.management_url)
    return HttpAdmin(url)


@pytest.fixture(scope="module")
def fw_vhost(request, broker_url, fw_admin) -> str:
    """The AMQP URL of a fresh virtual host for this module (guest has full permissions)."""
    name = f"fw.{request.module.__name__.rsplit('.', 1)[-1]}.{uuid.uuid4().hex[:8]}"
    fw_admin.add_vhost(name)
    try:
        fw_admin.set_permissions("guest", name, ".*", ".*", ".*")
        u = urllib.parse.urlparse(broker_url)
        yield urllib.parse.urlunparse(u._replace(path="/" + urllib.parse.quote(name, safe="")))
    finally:
        fw_admin.delete_vhost(name)


class Worker(Program):
    """A framework's worker process (``python -m <argv>`` in this folder), output read line by
    line as ``Program`` does."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str):  # noqa: super not called
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", *argv], cwd=HERE, env={**os.environ, **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self._start_reader()

    def kill(self) -> None:
        """Stop the worker and its children (its own process group): TERM, then KILL."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # pool children that outlived their parent
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture(scope="module")
def workers():
    """Start workers with ``workers(argv, env, name)``; all are killed at teardown."""
    started: list[Worker] = []

    def start(argv: list[str], env: dict[str, str], name: str) -> Worker:
        w = Worker(argv, env, name)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()
