"""The README's quick start and docs/getting-started.md, tried as a new user would.

A copy of the project (``pyproject.toml``, ``README.md``, ``src/``) goes into a temporary
directory (one for both pages, as one user reading both: the page run second reuses the venv
and pip reinstalls only Leveret), where the documented commands run as written, through ``bash``: a fresh
``python3 -m venv .venv``, a real ``pip install .`` (dependencies from the package index, through
pip's own cache, so a second run installs from cached wheels in a few seconds), ``leveret
serve`` in the background, the first program, ``leveret ctl``, then pytest on the page's test
file, whose ``leveret_url`` fixture comes from the plugin that the non-editable install registered
(its ``pytest11`` entry point). Where the page shows output, the real output must match it (a
duration such as ``0.52s`` matches any duration).

Why a real install and not ``--no-index`` wheels from the test venv: the point is that the
documented command works on a fresh machine, dependencies included; pip's cache keeps it to
about 20 s here. Without network access the install fails and so does this test, with pip's
output.

Only what a new user's machine cannot share with the suite is changed, through what the docs
themselves offer: the broker's ports come from ``LEVERET_PORT``, ``LEVERET_MANAGEMENT_PORT`` and
``LEVERET_PROMETHEUS_PORT`` (a RabbitMQ or another test may hold 5672), its data directory from
``XDG_DATA_HOME``, and the documented ports in programs and commands are replaced by those.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 240.0   # seconds for the README's one line: venv, install, start

pytestmark = [pytest.mark.leveret_only, pytest.mark.timeout(420)]


def fences(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a markdown text: (info string, body)."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Machine:
    """A temporary directory holding a copy of the project, and the environment of a new user."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "leveret"
        shutil.copytree(ROOT / "src", self.dir / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, self.dir / name)
        self.ports = {5672: free_port(), 15672: free_port(), 15692: free_port()}
        self.data_home = tmp / "xdg-data"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LEVERET_", "RABBITMQ_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
        env.update(XDG_DATA_HOME=str(self.data_home), XDG_CONFIG_HOME=str(tmp / "xdg-config"),
                   LEVERET_PORT=str(self.ports[5672]), LEVERET_MANAGEMENT_PORT=str(self.ports[15672]),
                   LEVERET_PROMETHEUS_PORT=str(self.ports[15692]), PIP_DISABLE_PIP_VERSION_CHECK="1")
        self.env = env
        self.server: subprocess.Popen | None = None
        self.server_output: list[str] = []

    def local(self, text: str) -> str:
        """The documented ports replaced by this machine's."""
        for documented, port in self.ports.items():
            text = re.sub(rf"(?<=[:/]){documented}\b", str(port), text)
        return text

    def run(self, command: str, timeout: float = 240) -> str:
        proc = subprocess.run(["bash", "-c", self.local(command)], cwd=self.dir, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{proc.stdout}"
        return proc.stdout

    def serve(self, command: str) -> list[str]:
        """Start a command that ends in ``leveret serve``; wait for the broker's ready lines."""
        self.server = subprocess.Popen(["bash", "-c", self.local(command)], cwd=self.dir, env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not any("Prometheus metrics on" in line for line in self.server_output):
            if self.server.poll() is not None:
                time.sleep(0.2)    # the reader may still hold the last lines
                raise AssertionError(f"`{command}` exited {self.server.returncode}:\n" +
                                     "\n".join(self.server_output))
            assert time.monotonic() < deadline, f"`{command}` not ready:\n" + "\n".join(self.server_output)
            time.sleep(0.1)
        return [line for line in self.server_output if " INFO leveret: " in line]

    def _read(self) -> None:
        for line in self.server.stdout:
            self.server_output.append(line.rstrip("\n"))

    def stop(self) -> None:
        """Ctrl-C, as the docs say; the broker must shut down cleanly."""
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGINT)
        try:
            rc = self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
            raise AssertionError("leveret serve did not stop on SIGINT:\n" + "\n".join(self.server_output))
        assert rc == 0, f"leveret serve exited {rc}:\n" + "\n".join(self.server_output)
        assert any("shutting down" in line for line in self.server_output)


@pytest.fixture(scope="module")
def new_machine(tmp_path_factory):
    # one machine for both pages, as one user reading both: the second page's install runs in
    # the first one's venv (pip reinstalls only Leveret), which saves a fresh install's time
    return Machine(tmp_path_factory.mktemp("new-user"))


@pytest.fixture
def machine(new_machine):
    try:
        yield new_machine
    finally:
        m = new_machine
        if m.server is not None and m.server.poll() is None:
            os.killpg(m.server.pid, signal.SIGKILL)
            m.server.wait()
        m.server, m.server_output = None, []


DURATION = re.compile(r"^\d+\.\d+s$")   # pytest's "1 passed in 0.52s"


def words(text: str) -> list[list[str]]:
    """The words of each non-blank line, any duration counted as the same word."""
    return [["<seconds>" if DURATION.match(w) else w for w in line.split()]
            for line in text.strip().splitlines() if line.strip()]


def check_ready_lines(machine: Machine, expected: str, got: list[str]) -> None:
    """The documented start-up lines, with this machine's ports, data directory and Python."""
    got = [line.split(" ", 2)[2] for line in got]          # drop the timestamp
    for want in expected.strip().splitlines():
        want = machine.local(want).replace("/home/you/.local/share", str(machine.data_home))
        pattern = re.escape(want).replace(r"python\ 3\.11\.7", r"python\ [0-9.]+[^)]*")
        assert any(re.fullmatch(pattern, line) for line in got), f"no line like {want!r} in {got}"


def test_getting_started(machine):
    """docs/getting-started.md from top to bottom: every ``sh`` block's commands, every named
    ``python`` block written to its file, every ``text`` block compared with what the command
    before it printed."""
    blocks = fences((ROOT / "docs" / "getting-started.md").read_text())
    last_output, commands, written, pytest_runs = None, 0, {}, []
    for info, body in blocks:
        kind, _, name = info.partition(" ")
        if kind == "sh":
            for line in body.strip().splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                commands += 1
                if line.rstrip().endswith("leveret serve"):
                    last_output = ("serve", machine.serve(line))
                else:
                    last_output = ("run", machine.run(line))
                    if line.startswith(".venv/bin/pytest "):
                        pytest_runs.append(line)
        elif kind == "python" and name:
            (machine.dir / name).write_text(machine.local(body))
            written[name] = body
        elif kind == "text":
            assert last_output is not None, "a text block with no command before it"
            how, output = last_output
            if how == "serve":
                check_ready_lines(machine, body, output)
            else:
                assert words(output) == words(body), f"documented:\n{body}\nprinted:\n{output}"
            last_output = None
    assert commands >= 5 and machine.server is not None, "the page lost its commands"
    # the page's pytest section ran a test file of its own that uses the plugin's fixture
    assert any(name in run.split() and "leveret_url" in written[name]
               for run in pytest_runs for name in written), f"no pytest run of a leveret_url test: {pytest_runs}"
    machine.stop()


def dependency_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0).lower().replace("-", "_")


def test_getting_started_names_every_dependency():
    """The install step lists exactly pyproject.toml's [project].dependencies."""
    page = (ROOT / "docs" / "getting-started.md").read_text()
    listed = re.search(r"depends\s+on\s+\(([^)]*)\)", page)
    assert listed, "docs/getting-started.md no longer says what the install depends on"
    documented = {dependency_name(n.strip()) for n in listed.group(1).split(",")}
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert documented == {dependency_name(d) for d in dependencies}


def test_readme_quick_start(machine):
    """The README's install-and-run line, then its pika quick start against that broker."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The two commands"):]
    install = next(body for info, body in fences(section) if info == "").strip()
    assert install.endswith("leveret serve") and "pip install ." in install
    machine.serve(install)
    quick = readme[readme.index("## Quick start with pika"):]
    client = re.search(r"`(\.venv/bin/pip install [^`]+)`", quick).group(1)
    machine.run(client)
    program = next(body for info, body in fences(quick) if info == "python")
    expected = re.search(r"print\(body\)\s+# (.*)", program).group(1)
    (machine.dir / "quickstart.py").write_text(machine.local(program))
    assert machine.run(".venv/bin/python quickstart.py").strip() == expected
    machine.stop()
