"""docs/configuration.md is the complete reference: every ``leveret serve`` flag, every environment
variable the code reads, every ``rabbitmq.conf`` key Leveret applies and every ``Settings`` field
is on the page, and nothing on the page names a flag, variable or key the code does not have.

The same holds for the pytest plugin's options and variables (its own section).

The lists come from the code itself: the serve parser (``leveret.cli.build_parser``), the
``OPTIONS`` table and every ``environ.get("X")`` / ``environ["X"]`` / ``getenv("X")`` under
``src/leveret`` (``X`` a string, or a module constant such as the plugin's ``URL_ENV``),
``leveret.config.HANDLERS``, the ``Settings`` dataclass and the plugin's ``pytest_addoption``.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from leveret.cli import OPTIONS, build_parser
from leveret.config import HANDLERS
from leveret.settings import Settings
from leveret.testing import plugin

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "configuration.md").read_text()
SRC = ROOT / "src" / "leveret"


def section(title: str) -> str:
    start = DOC.index(f"\n## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end >= 0 else None]


def serve_flags() -> set[str]:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]
    return {o for a in serve._actions for o in a.option_strings if o not in ("-h", "--help")}


ENV_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")
ENV_READ_CONSTANT = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*([A-Z][A-Z0-9_]*)\s*[,)\]]""")


def file_variables(path: Path) -> set[str]:
    """The variables a source file reads, by name or through a module constant (``URL_ENV``)."""
    text = path.read_text()
    names = set(ENV_READ.findall(text))
    for constant in ENV_READ_CONSTANT.findall(text):
        value = re.search(rf"""^{constant}\s*=\s*["']([A-Z][A-Z0-9_]*)["']""", text, re.M)
        assert value, f"{path}: environment variable named by {constant}, not a string constant here"
        names.add(value.group(1))
    return names


def code_variables() -> set[str]:
    names = {env for _, env, *_ in OPTIONS if env}
    for path in SRC.rglob("*.py"):
        names.update(file_variables(path))
    return names


def plugin_options() -> set[str]:
    """The options the pytest plugin adds, from its own ``pytest_addoption``."""
    options: set[str] = set()

    class Group:
        def addoption(self, *names, **attrs):
            options.update(names)

    class Parser:
        def getgroup(self, name, description=""):
            return Group()

    plugin.pytest_addoption(Parser())
    return options


def test_the_lists_are_not_empty():
    # the scanners themselves must find what is known to exist, or the checks below prove nothing
    assert {"--port", "--config", "--no-uvloop", "--rabbitmq4"} <= serve_flags()
    assert {"LEVERET_PORT", "LEVERET_CONFIG_FILE", "XDG_DATA_HOME", "LEVERET_PERF_DEBUG"} <= code_variables()
    assert "listeners.tcp.$" in HANDLERS and "heartbeat" in HANDLERS
    assert {"--leveret-url", "--leveret-mgmt-url"} <= plugin_options()
    assert {plugin.URL_ENV, plugin.MGMT_ENV} <= file_variables(Path(plugin.__file__)) <= code_variables()


def test_every_flag_is_documented():
    table = section("`leveret serve` flags and environment variables")
    missing = sorted(f for f in serve_flags() if not re.search(rf"`{re.escape(f)}[` ]", table))
    assert not missing, f"flags missing from docs/configuration.md: {missing}"


def test_every_documented_flag_exists():
    documented = set(re.findall(r"`(--[a-z0-9-]+)", section("`leveret serve` flags and environment variables")))
    assert not documented - serve_flags(), f"documented but not in the parser: {documented - serve_flags()}"


def test_every_environment_variable_is_documented():
    missing = sorted(v for v in code_variables() if f"`{v}`" not in DOC)
    assert not missing, f"environment variables missing from docs/configuration.md: {missing}"


def test_every_documented_variable_exists():
    documented = set(re.findall(r"`((?:LEVERET|RABBITMQ|XDG)_[A-Z0-9_]+)`", DOC))
    assert not documented - code_variables(), f"documented but never read: {documented - code_variables()}"


def _key_pattern(key: str) -> str:
    # "listeners.tcp.$" is documented as `listeners.tcp.NAME`, "auth_mechanisms.$" as `auth_mechanisms.N`
    words = [r"[A-Za-z]+" if w == "$" else re.escape(w) for w in key.split(".")]
    return r"`" + r"\.".join(words) + r"(?: = [^`]*)?`"


def _key_cells() -> str:
    """The first column of the keys table (where a key is described, not merely mentioned)."""
    table = section("Keys Leveret applies")
    return "\n".join(line.split("|")[1] for line in table.splitlines() if line.startswith("| `"))


def test_every_config_key_is_documented():
    cells = _key_cells()
    missing = sorted(k for k in HANDLERS if not re.search(_key_pattern(k), cells))
    assert not missing, f"rabbitmq.conf keys missing from docs/configuration.md: {missing}"


def test_every_documented_key_is_applied():
    documented = set(re.findall(r"`([a-z_.A-Z]+)(?: = [^`]*)?`", _key_cells()))
    unknown = {k for k in documented if not any(re.fullmatch(_key_pattern(h), f"`{k}`") for h in HANDLERS)}
    assert not unknown, f"documented keys Leveret does not apply: {sorted(unknown)}"


def test_every_settings_field_is_documented():
    missing = sorted(f.name for f in dataclasses.fields(Settings) if f"`{f.name}`" not in DOC)
    assert not missing, f"Settings fields missing from docs/configuration.md: {missing}"


def test_every_pytest_plugin_option_is_documented():
    table = section("pytest plugin options")
    missing = sorted(o for o in plugin_options() if not re.search(rf"`{re.escape(o)}[` ]", table))
    missing += sorted(v for v in file_variables(Path(plugin.__file__)) if f"`{v}`" not in table)
    assert not missing, f"pytest plugin options or variables missing from docs/configuration.md: {missing}"


def test_every_documented_pytest_plugin_option_exists():
    documented = set(re.findall(r"`(--[a-z0-9-]+)", section("pytest plugin options")))
    assert not documented - plugin_options(), f"documented but not in the plugin: {documented - plugin_options()}"
