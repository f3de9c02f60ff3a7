"""``leveret.amqp`` is sans-I/O: none of its modules may import asyncio, socket,
selectors or the broker/server layers above it.

Checked on the AST of every file under ``src/leveret/amqp`` (so an import inside a
function, or ``from .. import server``, counts too), and once at runtime: importing
the package in a fresh interpreter must not pull those modules in.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import leveret.amqp

AMQP_DIR = os.path.dirname(os.path.abspath(leveret.amqp.__file__))
FORBIDDEN_STDLIB = {"asyncio", "socket", "selectors", "select", "ssl"}
FORBIDDEN_LEVERET = {"leveret.broker", "leveret.server", "leveret.store", "leveret.cli", "leveret.__main__"}

FILES = sorted(
    os.path.join(dirpath, name)
    for dirpath, _, names in os.walk(AMQP_DIR)
    for name in names
    if name.endswith(".py")
)


def _package_of(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(AMQP_DIR)))
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    else:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: str, pkg: str | None = None) -> set[str]:
    """Absolute names of everything a file imports (relative imports resolved against ``pkg``)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    pkg = pkg or _package_of(path)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            # ``from .. import broker`` / ``from leveret import server`` name modules too
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            if isinstance(node.args[0], ast.Constant):
                out.add(str(node.args[0].value))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            if isinstance(node.args[0], ast.Constant):
                out.add(str(node.args[0].value))
    return out


def _forbidden(name: str) -> bool:
    top = name.split(".")[0]
    if top in FORBIDDEN_STDLIB:
        return True
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN_LEVERET)


def test_there_are_amqp_modules():
    """Sanity: the scan sees the protocol modules."""
    names = {os.path.basename(p) for p in FILES}
    assert {"codec.py", "spec.py", "frames.py", "connection.py", "errors.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, AMQP_DIR))
def test_no_io_or_upper_layer_imports(path):
    """A leveret.amqp module imports no asyncio/socket/selectors and nothing from broker/server."""
    bad = sorted(n for n in imported_modules(path) if _forbidden(n))
    assert not bad, f"{os.path.relpath(path, AMQP_DIR)} imports {bad}"


def test_resolver_catches_relative_and_dynamic_imports(tmp_path):
    """The checker itself sees ``from ..broker import x``, ``from .. import server``, nested and dynamic imports."""
    probe = tmp_path / "probe.py"
    probe.write_text("from ..broker.channel import Channel\n"
                     "from .. import server\n"
                     "def f():\n    import asyncio.events\n"
                     "importlib.import_module('socket')\n"
                     "from . import codec\n")
    names = imported_modules(str(probe), pkg="leveret.amqp")
    assert {"leveret.broker.channel", "leveret.server", "asyncio.events", "socket", "leveret.amqp.codec"} <= names
    assert sorted(n for n in names if _forbidden(n)) == [
        "asyncio.events", "leveret.broker.channel", "leveret.broker.channel.Channel", "leveret.server", "socket"]


def test_importing_amqp_loads_no_io_modules():
    """In a fresh interpreter, importing every leveret.amqp module loads none of the forbidden modules."""
    mods = sorted({"leveret.amqp." + os.path.basename(p)[:-3] for p in FILES if not p.endswith("__init__.py")})
    code = (
        "import sys\n"
        f"mods = {mods!r}\n"
        "import importlib\n"
        "for m in mods: importlib.import_module(m)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        f"{sorted(FORBIDDEN_STDLIB)!r} or n.startswith(('leveret.broker', 'leveret.server', 'leveret.store')))\n"
        "print(','.join(bad))\n"
    )
    # leveret/__init__ imports the broker (``from leveret import Broker``), so load the
    # amqp package without running leveret/__init__: put a bare namespace stub first.
    stub = (
        "import sys, types, os\n"
        f"pkg = types.ModuleType('leveret'); pkg.__path__ = [{os.path.dirname(AMQP_DIR)!r}]\n"
        "sys.modules['leveret'] = pkg\n"
    )
    r = subprocess.run([sys.executable, "-I", "-c", stub + code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing leveret.amqp loaded: {r.stdout.strip()}"
