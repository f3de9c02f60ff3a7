"""The layers import downwards only: settings (and config) <- amqp <- auth, store <- broker <- server <- node/cli.

* ``leveret.config`` (the rabbitmq.conf reader) sits beside ``leveret.settings``: it imports
  only the settings, no other Leveret module, and no I/O beyond reading files.

* ``leveret.amqp`` is sans-I/O: no asyncio, socket, selectors or ssl, and nothing from the
  layers above it.
* ``leveret.store`` never imports the broker: it deals in names, bytes and plain records.
* ``leveret.auth`` (users, permissions) imports only the protocol layer: the broker owns it
  and persists what changes; it opens no socket.
* ``leveret.broker`` opens no socket and never imports ``leveret.server``: the server is
  handed the broker (``leveret.node``).
* ``leveret.server`` never imports the node or the CLI; ``leveret.perf`` (a client tool)
  uses only the protocol core; ``leveret.ctl`` (the control-socket client) only the settings.
* ``leveret.embed`` (a broker in a thread) and ``leveret.testing`` (the pytest plugin) sit at the
  top with the node; the plugin never reaches the CLI, and loading it imports no broker (pytest
  loads it in every run: tests/testing/test_pytest_plugin.py checks that at run time).
* No module of ``amqp``/``store``/``broker``/``server`` imports a Leveret module inside a
  function: that is how import cycles hide.

Checked on the AST of every file (so an import inside a function, or ``from .. import
server``, counts too), and at runtime: importing ``leveret.amqp`` or ``leveret.store`` in a
fresh interpreter must not pull the layers above in.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import leveret

SRC = os.path.dirname(os.path.abspath(leveret.__file__))
ABOVE_AMQP = {"leveret.broker", "leveret.server", "leveret.store", "leveret.auth", "leveret.cli",
              "leveret.node", "leveret.embed", "leveret.testing", "leveret.perf", "leveret.ctl",
              "leveret.__main__", "leveret.shovel", "leveret.federation"}
# the top layer: the node, the broker in a thread (embed), the pytest plugin (testing)
TOP = {"leveret.cli", "leveret.node", "leveret.embed", "leveret.testing", "leveret.__main__"}
LAYERS = {
    # package: (forbidden leveret modules, forbidden stdlib modules)
    "config": (ABOVE_AMQP | {"leveret.amqp"}, {"asyncio", "socket", "selectors", "select", "ssl"}),
    "amqp": (ABOVE_AMQP, {"asyncio", "socket", "selectors", "select", "ssl"}),
    "store": (ABOVE_AMQP - {"leveret.store"}, {"socket", "selectors", "select", "ssl"}),
    "auth": (ABOVE_AMQP - {"leveret.auth"}, {"asyncio", "socket", "selectors", "select", "ssl"}),
    "broker": ({"leveret.server", "leveret.management", "leveret.perf", "leveret.shovel", "leveret.federation"} | TOP,
               {"socket", "selectors", "select", "ssl"}),
    "server": ({"leveret.perf", "leveret.ctl", "leveret.management", "leveret.shovel", "leveret.federation"} | TOP,
               set()),
    # shovels run above the server (direct connections through its listener, control commands);
    # the management API reads them through Broker.shovels
    "shovel": ({"leveret.perf", "leveret.ctl", "leveret.management", "leveret.federation"} | TOP, set()),
    # federation runs as shovels do (and reuses their client and parameter checks); the
    # management API reads it through Broker.federation
    "federation": ({"leveret.perf", "leveret.ctl", "leveret.management"} | TOP, set()),
    # the management API reads the broker through its admin/introspection methods; it never
    # reaches the AMQP listener, the node or the CLI
    "management": ({"leveret.server", "leveret.perf", "leveret.ctl", "leveret.shovel", "leveret.federation"} | TOP,
                   set()),
    # Prometheus reads the broker as the management API does (introspect, stats) and shares
    # its HTTP listener (management/app.py)
    "prometheus": ({"leveret.server", "leveret.perf", "leveret.ctl", "leveret.shovel", "leveret.federation"} | TOP,
                   set()),
    "perf": ({"leveret.broker", "leveret.server", "leveret.store", "leveret.auth"} | TOP, set()),
    # ctl (a client of the control socket) knows only the settings (where the socket is)
    "ctl": ({"leveret.amqp", "leveret.broker", "leveret.server", "leveret.store", "leveret.auth",
             "leveret.perf", "leveret.shovel", "leveret.federation"} | TOP, set()),
    # the pytest plugin sits at the top: it may use the node (through leveret.embed), never the CLI
    "testing": ({"leveret.cli", "leveret.__main__", "leveret.ctl", "leveret.perf"}, set()),
}
NO_LOCAL_IMPORTS = ("config", "amqp", "auth", "store", "broker", "server", "management", "prometheus", "shovel", "federation")


def files_of(pkg: str) -> list[str]:
    root = os.path.join(SRC, pkg)
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n.endswith(".py"))


def _package_of(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(SRC))
    return ".".join(rel[:-3].split(os.sep)[:-1])


def imported_modules(path: str, pkg: str | None = None, local_only: bool = False) -> set[str]:
    """Absolute names of everything a file imports (relative imports resolved against ``pkg``);
    ``local_only``: only imports made inside a function."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    pkg = pkg or _package_of(path)
    nodes = ast.walk(tree)
    if local_only:
        nodes = (n for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(fn))
    out: set[str] = set()
    for node in nodes:
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


def forbidden(name: str, layer: str) -> bool:
    leveret_bad, stdlib_bad = LAYERS[layer]
    if name.split(".")[0] in stdlib_bad:
        return True
    return any(name == f or name.startswith(f + ".") for f in leveret_bad)


def test_the_scan_sees_every_layer():
    """Sanity: the scan sees the modules each layer is known to have."""
    names = {layer: {os.path.basename(p) for p in files_of(layer)} for layer in LAYERS}
    assert {"codec.py", "spec.py", "frames.py", "connection.py", "errors.py"} <= names["amqp"]
    assert {"disk.py", "segments.py", "base.py"} <= names["store"]
    assert {"broker.py", "confirms.py", "recovery.py", "flow.py", "quorum.py"} <= names["broker"]
    assert {"listener.py", "protocol.py"} <= names["server"]
    assert {"access.py", "passwords.py"} <= names["auth"]
    assert {"__init__.py", "rabbitmq_keys.py"} <= names["config"]


@pytest.mark.parametrize("path", [p for layer in LAYERS for p in files_of(layer)],
                         ids=lambda p: os.path.relpath(p, SRC))
def test_no_upward_imports(path):
    """A module imports nothing from the layers above its own (nor I/O modules its layer forbids)."""
    layer = os.path.relpath(path, SRC).split(os.sep)[0]
    bad = sorted(n for n in imported_modules(path) if forbidden(n, layer))
    assert not bad, f"{os.path.relpath(path, SRC)} ({layer} layer) imports {bad}"


LAZY_SIBLINGS = {("shovel/__init__.py", "leveret.shovel.worker"),
                 ("shovel/__init__.py", "leveret.shovel.worker.Shovel"),
                 ("federation/__init__.py", "leveret.federation.link"),
                 ("federation/__init__.py", "leveret.federation.link.ExchangeLink"),
                 ("federation/__init__.py", "leveret.federation.link.QueueLink")}


@pytest.mark.parametrize("path", [p for layer in NO_LOCAL_IMPORTS for p in files_of(layer)],
                         ids=lambda p: os.path.relpath(p, SRC))
def test_no_leveret_imports_inside_functions(path):
    """Function-local imports of Leveret modules hide import cycles: there are none, but for the
    listed ones -- a sibling module a package imports on first use because it drags in a client
    library that a broker not using the feature should not pay for at start-up."""
    bad = sorted(n for n in imported_modules(path, local_only=True)
                 if n.startswith("leveret") and (os.path.relpath(path, SRC), n) not in LAZY_SIBLINGS)
    assert not bad, f"{os.path.relpath(path, SRC)} imports {bad} inside a function"


def test_resolver_catches_relative_and_dynamic_imports(tmp_path):
    """The checker itself sees ``from ..broker import x``, ``from .. import server``, nested and dynamic imports."""
    probe = tmp_path / "probe.py"
    probe.write_text("from ..broker.channel import Channel\n"
                     "from .. import server\n"
                     "def f():\n    import asyncio.events\n    from ..store import disk\n"
                     "importlib.import_module('socket')\n"
                     "from . import codec\n")
    names = imported_modules(str(probe), pkg="leveret.amqp")
    assert {"leveret.broker.channel", "leveret.server", "asyncio.events", "socket", "leveret.amqp.codec"} <= names
    assert sorted(n for n in names if forbidden(n, "amqp")) == [
        "asyncio.events", "leveret.broker.channel", "leveret.broker.channel.Channel", "leveret.server",
        "leveret.store", "leveret.store.disk", "socket"]
    assert sorted(n for n in names if forbidden(n, "broker")) == ["leveret.server", "socket"]
    assert imported_modules(str(probe), pkg="leveret.amqp", local_only=True) == {
        "asyncio.events", "leveret.store", "leveret.store.disk"}


@pytest.mark.parametrize("layer, must_not_load", [
    ("amqp", ("asyncio", "socket", "selectors", "select", "ssl", "leveret.broker", "leveret.server",
              "leveret.store")),
    ("store", ("leveret.broker", "leveret.server", "leveret.node")),
    ("auth", ("asyncio", "socket", "ssl", "leveret.broker", "leveret.server", "leveret.store", "leveret.node")),
    ("config", ("asyncio", "socket", "ssl", "leveret.amqp", "leveret.store", "leveret.broker", "leveret.server",
                "leveret.node")),
])
def test_importing_a_layer_loads_nothing_above_it(layer, must_not_load):
    """In a fresh interpreter, importing every module of the layer loads none of the forbidden modules."""
    mods = sorted({f"leveret.{layer}." + os.path.basename(p)[:-3] for p in files_of(layer)
                   if not p.endswith("__init__.py")})
    code = (
        "import sys, importlib\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {must_not_load!r} "
        f"or n.startswith({tuple(m + '.' for m in must_not_load if '.' in m)!r}) or n in {must_not_load!r})\n"
        "print(','.join(bad))\n"
    )
    # leveret/__init__ imports the node (``from leveret import Broker``), so load the layer
    # without running leveret/__init__: put a bare namespace stub first.
    stub = (
        "import sys, types\n"
        f"pkg = types.ModuleType('leveret'); pkg.__path__ = [{SRC!r}]\n"
        "sys.modules['leveret'] = pkg\n"
    )
    r = subprocess.run([sys.executable, "-I", "-c", stub + code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing leveret.{layer} loaded: {r.stdout.strip()}"


def test_a_running_broker_without_those_features_loads_none_of_the_lazy_modules():
    """A started broker (the pytest plugin's session broker, an embedded one) that has no
    federation link, no shovel, no management API, no Prometheus endpoint and no TLS has not
    imported their modules: aiormq (the links' and shovels' client), aiohttp, prometheus_client,
    cryptography. They are a session's start-up cost otherwise (bench/plugin_startup.py)."""
    code = (
        "import sys\n"
        "from leveret import BackgroundBroker\n"
        "with BackgroundBroker(port=0) as b:\n"
        "    import pika\n"
        "    c = pika.BlockingConnection(pika.URLParameters(b.url)); ch = c.channel()\n"
        "    ch.exchange_declare('x', 'topic'); ch.queue_declare('q'); c.close()\n"
        "    lazy = ('aiormq', 'aiohttp', 'prometheus_client', 'cryptography', 'leveret.federation.link',\n"
        "            'leveret.shovel.worker', 'leveret.management', 'leveret.prometheus')\n"
        "    print(','.join(sorted(n for n in sys.modules if n in lazy)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(SRC)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"a plain running broker loaded: {r.stdout.strip()}"
