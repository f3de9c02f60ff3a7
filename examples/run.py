#!/usr/bin/env python
"""Run one example's scripted demo: ``python examples/run.py EXAMPLE [--url URL]``.

Without ``--url`` (and without ``$AMQP_URL``) the launcher starts a Leveret broker in this
process (``leveret.BackgroundBroker`` on a free port, nothing kept on disk) and points every
program of the example at it; with ``--url amqp://...`` the same demo runs against any broker,
RabbitMQ included. The demo itself is ``examples/EXAMPLE/demo.py``: it starts the example's
consumers and services (waiting for their "ready" line), runs its producers and clients, and
stops everything. Every program's output is shown live, prefixed with the program's name.

Against a URL every queue and exchange name gets a unique prefix (``$EXAMPLE_PREFIX``, which
every example program honours), and the named queues and exchanges the demo lists in
``QUEUES`` / ``EXCHANGES`` are deleted at the end, so a shared broker is left as it was.
Files the programs write (mail boxes, PDF stores, images) go to a temporary directory that is
removed too. Exit status: 0 when the demo ran to its end, 1 when a step failed (the reason is
printed), 2 for a bad command line.

``python examples/run.py --list`` lists the examples that have a demo.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
WAIT = 20.0  # seconds to wait for an expected output line or for a program to exit
_print_lock = threading.Lock()


def show(label: str, text: str) -> None:
    with _print_lock:
        print(f"{label:<12}| {text}", flush=True)


class DemoError(Exception):
    """A demo step did not happen: a program failed, or an expected line never came."""


class Program:
    """A running example program; its merged stdout/stderr is shown live and kept in ``output``."""

    def __init__(self, label: str, argv: list[str], cwd: Path, env: dict[str, str], stdin: bool):
        self.label = label
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._seen = 0  # lines of ``output`` that expect() has looked at
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, text=True, bufsize=1,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            show(self.label, line)
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, text: str, timeout: float = WAIT) -> str:
        """Wait for a line containing ``text`` (not one seen by an earlier expect); return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise DemoError(f"{self.label}: no line with {text!r} within {timeout:g} s") from None
            if line is None:
                self._lines.put(None)
                raise DemoError(f"{self.label} exited (status {self.proc.wait()}) before printing {text!r}")
            if text in line:
                return line

    def send(self, line: str) -> None:
        """Write a line to the program's standard input."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = WAIT) -> None:
        """Wait for the program to exit by itself; it must exit with status 0."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DemoError(f"{self.label} did not finish within {timeout:g} s") from None
        self._reader.join(5)
        if rc != 0:
            raise DemoError(f"{self.label} exited with status {rc}")

    def stop(self) -> None:
        """Terminate the program if it still runs (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.stdin:  # end of input: a program reading it gets to finish by itself
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(2)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)


class Demo:
    """What a demo script gets: runs the example's programs against ``url``."""

    def __init__(self, example: str, url: str, prefix: str, tmp: Path):
        self.example = example
        self.dir = HERE / example
        self.url = url
        self.prefix = prefix
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "EXAMPLE_PREFIX")}
        self.env.update({"AMQP_URL": url, "EXAMPLE_PREFIX": prefix, "PYTHONUNBUFFERED": "1"})
        self.programs: list[Program] = []

    def name(self, base: str) -> str:
        """A queue or exchange name as the programs see it (with the prefix)."""
        return self.prefix + base

    def say(self, text: str) -> None:
        show("demo", f"--- {text}")

    def start(self, script: str, *args: str, ready: str | None = None, label: str | None = None,
              env: dict[str, str] | None = None, stdin: bool = False) -> Program:
        """Start ``script`` (a path relative to the example, or ``../other/script.py``) in the
        background; with ``ready``, wait until it prints a line containing that text."""
        path = (self.dir / script).resolve()
        program = Program(label or path.stem, [sys.executable, "-u", str(path), *args], path.parent,
                          {**self.env, **(env or {})}, stdin)
        self.programs.append(program)
        if ready is not None:
            program.expect(ready)
        return program

    def run(self, script: str, *args: str, label: str | None = None, env: dict[str, str] | None = None,
            timeout: float = WAIT) -> Program:
        """Run ``script`` to its end; it must exit with status 0."""
        program = self.start(script, *args, label=label, env=env)
        program.finish(timeout)
        return program

    @staticmethod
    def free_port() -> int:
        """A TCP port free on 127.0.0.1 right now, for a program that needs a fixed one."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def http(self, method: str, url: str, body: object = None) -> tuple[int, object]:
        """An HTTP request with an optional JSON body; returns (status, decoded JSON answer)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        shown = answer.decode(errors="replace")
        show("http", f"{method} {url} {'' if body is None else json.dumps(body) + ' '}-> {status} {shown[:200]}")
        return status, json.loads(answer)

    def poll(self, url: str, done, timeout: float = WAIT) -> object:
        """GET ``url`` (JSON) until ``done(answer)`` holds; return that answer."""
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.loads(response.read())
            if done(answer):
                return answer
            if time.monotonic() > deadline:
                raise DemoError(f"GET {url}: still {answer!r} after {timeout:g} s")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for program in self.programs:
            program.stop()


def examples() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/demo.py"))


def load(example: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"demo_{example}", HERE / example / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def delete_named(url: str, prefix: str, queues: tuple[str, ...], exchanges: tuple[str, ...]) -> None:
    """Delete the demo's named queues and exchanges (absent ones are fine)."""
    import pika
    from pika.exceptions import AMQPError

    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            for name in queues:
                channel.queue_delete(prefix + name)
            for name in exchanges:
                channel.exchange_delete(prefix + name)
        finally:
            if connection.is_open:
                connection.close()
    except AMQPError as exc:
        show("demo", f"!!! could not delete the demo's queues and exchanges ({prefix}*): {exc!r}")


def reachable(url: str) -> str | None:
    """None when an AMQP connection to ``url`` opens; otherwise why not."""
    import pika
    from pika.exceptions import AMQPError

    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return None
    except (AMQPError, ValueError, IndexError) as exc:  # IndexError: pika on a URL without a path
        return repr(exc)


def run_demo(example: str, url: str | None) -> int:
    module = load(example)
    with contextlib.ExitStack() as stack:
        if url is None:
            from leveret import BackgroundBroker

            broker = stack.enter_context(BackgroundBroker(port=0))
            url, prefix = broker.url, ""
            show("demo", f"--- embedded Leveret broker at {url}")
        else:
            problem = reachable(url)
            if problem is not None:
                show("demo", f"!!! cannot connect to {url}: {problem}")
                return 1
            prefix = f"demo-{secrets.token_hex(3)}."
            show("demo", f"--- broker {url}, names prefixed with {prefix!r}")
            stack.callback(delete_named, url, prefix, getattr(module, "QUEUES", ()),
                           getattr(module, "EXCHANGES", ()))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"leveret-{example}-")))
        demo = Demo(example, url, prefix, tmp)
        stack.callback(demo.stop_all)
        try:
            module.demo(demo)
        except (DemoError, OSError) as exc:  # OSError: an HTTP or AMQP connection that failed
            show("demo", f"!!! demo failed: {exc}")
            return 1
    show("demo", f"--- {example}: demo finished")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("example", nargs="?", help="an example folder name (see --list)")
    parser.add_argument("--url", default=os.environ.get("AMQP_URL"),
                        help="run against this broker instead of an embedded Leveret (default: $AMQP_URL)")
    parser.add_argument("--list", action="store_true", help="list the examples that have a demo")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(examples()))
        return 0
    if args.example not in examples():
        parser.error(f"unknown example {args.example!r}; one of: {', '.join(examples())}")
    if args.url is not None and not args.url.startswith(("amqp://", "amqps://")):
        parser.error(f"--url must be an amqp:// or amqps:// URL, not {args.url!r}")
    return run_demo(args.example, args.url)


if __name__ == "__main__":
    sys.exit(main())
