"""A Leveret shovel into a RabbitMQ that is SIGKILLed mid-transfer and restarted (ack-mode
on-confirm): nothing the source fed is lost. The RabbitMQ is a private node the test starts
(never the shared one): a node name, AMQP and distribution ports, mnesia, log, plugin list,
config paths and HOME (Erlang cookie) of its own under the test's tmp_path, no plugins. Its
``beam.smp`` (from its pid file, checked to carry the node name) is SIGKILLed twice, at a
third and two thirds of the feed, and the node restarted on the same mnesia directory.

Opt-in, as it boots RabbitMQ three times (tens of seconds on a loaded machine):

    LEVERET_PRIVATE_RABBITMQ=1 PYTHONPATH=src .venv/bin/python -m pytest tests/shovel/test_rabbitmq_sigkill.py -s

It needs ``rabbitmq-server`` (Debian's package; ``RABBITMQ_SERVER`` names another script)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pika
import pytest
from conftest import _free_port

from .conftest import Node, api, wait_for
from .test_faults import LIMIT, PREFETCH, check, collect, declare_source, feed_through, put_shovel, \
    source_settled, wait_state

SERVER = os.environ.get("RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server")

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(not os.environ.get("LEVERET_PRIVATE_RABBITMQ"),
                       reason="opt-in: LEVERET_PRIVATE_RABBITMQ=1 (starts a private RabbitMQ node)"),
    pytest.mark.skipif(not (os.access(SERVER, os.X_OK) or shutil.which("rabbitmq-server")),
                       reason="rabbitmq-server is not installed"),
]


class PrivateRabbit:
    """A RabbitMQ node of the test's own, started and SIGKILLed by it."""

    def __init__(self, base: Path):
        self.base = base
        self.name = f"leveret-sigkill-{uuid.uuid4().hex[:8]}@{socket.gethostname().split('.')[0]}"
        self.port = _free_port()
        for d in ("mnesia", "log"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        self.env = {**os.environ, "HOME": str(base), "RABBITMQ_NODENAME": self.name,
                    "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(_free_port()),
                    "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                    "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
                    "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                    "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
                    "RABBITMQ_PID_FILE": str(base / "node.pid")}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        self.starts += 1
        (self.base / "node.pid").unlink(missing_ok=True)
        with open(self.base / f"server-{self.starts}.out", "wb") as out:
            self.proc = subprocess.Popen([SERVER], env=self.env, cwd=self.base, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"RabbitMQ exited: {(self.base / f'server-{self.starts}.out').read_text()[-2000:]}")
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return True
            except pika.exceptions.AMQPError:
                return False
        wait_for(up, f"private RabbitMQ {self.name} accepting connections", 180)

    def beam_pid(self) -> int:
        """The node's ``beam.smp`` -- checked to be this node (its environment names it)."""
        pid = int((self.base / "node.pid").read_text().split()[0])
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"RABBITMQ_NODENAME={self.name}".encode() in env, f"pid {pid} is not {self.name}"
        return pid

    def kill(self, api_host: str, name: str):
        """A fault: SIGKILL the node; the shovel is seen terminated; restart; it runs again."""
        def fault():
            os.kill(self.beam_pid(), signal.SIGKILL)
            self.proc.wait(60)
            wait_state(api_host, name, "terminated")
            self.start()
            wait_state(api_host, name, "running")
        return fault

    def stop(self) -> None:
        """Stop the node (SIGTERM to its start script, which stops it cleanly; SIGKILL to its
        beam.smp if that does not do it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            pid = self.beam_pid()
        except (OSError, ValueError, AssertionError):
            pid = None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            self.proc.wait(30)


def test_sigkill_rabbitmq_destination(tmp_path):
    """A Leveret shovel (on-confirm) from its own node into the private RabbitMQ, which is
    SIGKILLed twice mid-transfer: what RabbitMQ confirmed is on its disk when it comes back,
    the rest is sent again."""
    rabbit = PrivateRabbit(tmp_path / "rabbit")
    a = Node()
    try:
        rabbit.start()
        declare_source(a.url)
        declare_source(rabbit.url, "dst")
        put_shovel(a.api, "push", {"src-uri": "amqp://", "src-queue": "src", "dest-uri": rabbit.url,
                                   "dest-queue": "dst"})
        wait_state(a.api, "push", "running")
        feeder = feed_through(a.url, [rabbit.kill(a.api, "push")] * 2)
        wait_for(lambda: source_settled(a.api, "src"), "source settled", LIMIT)
        check(collect(rabbit.url, "dst"), "destination RabbitMQ SIGKILLed twice", feeder, 2 * PREFETCH)
    finally:
        api(a.api, "DELETE", "/api/parameters/shovel/%2F/push")
        a.stop()
        rabbit.stop()
