"""Example programs run as subprocesses against the broker under test, for tests/test_tutorials.py
(examples/tutorials) and tests/test_examples.py (the pattern examples).

A ``Programs`` runs the scripts below one directory with AMQP_URL pointing at the broker and
``<env_prefix>PREFIX`` set to the test's unique prefix, so queue and exchange names never collide.
Consumers are started first and waited for until they print their "waiting" line; on leaving its
``with`` block it kills whatever still runs and deletes the named queues and exchanges.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika

CONSUMER_TIMEOUT = "15"  # safety net: every consumer exits by itself after this long
WAIT = 8.0  # seconds to wait for an expected output line


class Program:
    """A running program whose merged stdout/stderr is read line by line."""

    def __init__(self, path: Path, args: tuple[str, ...], env: dict[str, str], name: str):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(path), *args], cwd=path.parent,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self._start_reader()

    def _start_reader(self) -> None:
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _describe(self) -> str:
        return f"{self.name} (rc={self.proc.poll()}) output so far:\n" + "\n".join(self.output)

    def expect(self, text: str, timeout: float = WAIT) -> str:
        """Wait for an output line containing ``text``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {text!r} from {self._describe()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)  # keep the end marker for later calls
                raise AssertionError(f"{self.name} ended before printing {text!r}: {self._describe()}")
            self.output.append(line)
            if text in line:
                return line

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the program to exit by itself; collect the rest of its output."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            while not self._lines.empty():  # show everything it printed so far
                line = self._lines.get_nowait()
                if line is not None:
                    self.output.append(line)
            raise AssertionError(f"{self.name} did not exit: {self._describe()}") from None
        self._reader.join(timeout)
        while True:
            line = self._lines.get()
            if line is None:
                self._lines.put(None)
                break
            self.output.append(line)
        return rc

    def stop(self) -> None:
        """Terminate the program (if still running) and collect its output."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.finish()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def text(self) -> str:
        return "\n".join(self.output)

    def received(self, marker: str = " [x] ") -> list[str]:
        """The part after ``marker`` of every output line that carries it."""
        return [line.split(marker, 1)[1] for line in self.output if marker in line]


class Programs:
    """The scripts below ``base`` (paths relative to it), run against ``broker_url`` with
    ``<env_prefix>PREFIX=<prefix>``; ``queues`` and ``exchanges`` are the names (without the
    prefix) of what they create, deleted on leaving the ``with`` block."""

    def __init__(self, base: Path, broker_url: str, prefix: str, env_prefix: str,
                 queues: tuple[str, ...] = (), exchanges: tuple[str, ...] = ()):
        self.base = base
        self.broker_url = broker_url
        self.prefix = prefix
        self.queues = queues
        self.exchanges = exchanges
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(env_prefix)}
        self.env.update({"AMQP_URL": broker_url, env_prefix + "PREFIX": prefix, "PYTHONUNBUFFERED": "1"})
        self.programs: list[Program] = []

    def __enter__(self) -> Programs:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def name(self, base: str) -> str:
        return self.prefix + base

    def start(self, script: str, *args: str, env: dict[str, str] | None = None) -> Program:
        program = Program(self.base / script, args, {**self.env, **(env or {})}, name=script)
        self.programs.append(program)
        return program

    def consumer(self, script: str, *args: str, ready: str = "Waiting for",
                 env: dict[str, str] | None = None) -> Program:
        """Start a consuming program (with the safety timeout) and wait until it is consuming."""
        return self.consumers([(script, *args)], ready=ready, env=env)[0]

    def consumers(self, commands: list[tuple[str, ...]], ready: str = "Waiting for",
                  env: dict[str, str] | None = None) -> list[Program]:
        """Start several consuming programs at once; wait until all of them are consuming."""
        programs = [self.start(script, "--timeout", CONSUMER_TIMEOUT, *args, env=env)
                    for script, *args in commands]
        for program in programs:
            program.expect(ready)
        return programs

    def run(self, script: str, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a short-lived program to completion (with ``check``: it must succeed)."""
        path = self.base / script
        done = subprocess.run([sys.executable, str(path), *args], cwd=path.parent,
                              capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})})
        if check:
            assert done.returncode == 0, f"{script} {args} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def cleanup(self) -> None:
        for program in self.programs:
            program.kill()
        connection = pika.BlockingConnection(pika.URLParameters(self.broker_url))
        try:
            channel = connection.channel()
            for q in self.queues:
                channel.queue_delete(self.name(q))
            for x in self.exchanges:
                channel.exchange_delete(self.name(x))
        finally:
            connection.close()
