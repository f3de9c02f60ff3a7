#!/usr/bin/env python3
"""Run the client libraries' own integration test suites against a broker.

Leveret's promise is that a client cannot tell it from RabbitMQ 3.10.8. The strongest
outside evidence is the client libraries' own integration suites, written against
RabbitMQ by their authors: pika, aio-pika, aiormq, kombu (py-amqp transport), py-amqp and
amqpstorm (its functional tests, which set up through the management API).
This script, for each library:

1. fetches the source of the released version installed in the project venv (or the
   version given with ``--version NAME=VER``): the PyPI sdist through ``pip download``,
   or, for pika (whose sdist has no tests), the release's git tag (``--git pika=URL`` names
   another clone source, e.g. a local mirror). Everything goes into a cache directory
   outside the repository (``$LEVERET_SUITES_CACHE``, default
   ``~/.cache/leveret-client-suites``): no third-party source is ever committed;
2. makes a venv for the suite (``<cache>/venvs/<name>-<version>``) with the library at
   that version and what its tests need, so the project venv stays clean;
3. points the suite at the broker. Each suite has its own way: kombu and py-amqp read
   ``RABBITMQ_HOST``/``RABBITMQ_5672_TCP``; pika hard-codes ``localhost:5672`` and
   aio-pika/aiormq start RabbitMQ in Docker, so their cache copies get a small patch
   (``_patch_*`` below; each patch checks the text it replaces is there, so a new release
   that moved it fails loudly instead of silently testing something else);
4. runs pytest with a junit xml report and records each test id's outcome:
   passed / failed / error / skipped, or ``n/a`` for the tests that cannot apply to a
   broker given as a URL (TLS tests expecting the suite's own certificates on 5671, a test
   that restarts its own Docker broker). Those are skipped *before* they run, the same way
   on every broker, so the comparison stays like for like.

``--tls`` (or ``--tls-only``, which runs nothing else) runs the TLS tests of aio-pika,
aiormq and py-amqp too: each of those suites gets a broker of its own, started from a
rabbitmq.conf written as that suite's CI configures its RabbitMQ -- its certificates (aiormq's
``tests/certs``, which aio-pika's tests use too; py-amqp's ``t/certs`` and the server files its
repository's Dockerfile writes, from ``--git py-amqp=URL``, since its sdist has none),
``verify_peer``, its ``fail_if_no_peer_cert``, TLS on 5671 (a free port if 5671 is taken:
only aio-pika's ``test_default_context`` insists on 5671, and it is then n/a) and the plain
listener on a free port (RabbitMQ may hold 5672). The suites are told those ports. The broker
is ``python -m leveret serve --config THAT``, and with ``--compare`` also a private RabbitMQ
node (``--rabbitmq-server``) started from the same file. See docs/tls.md.

``--url URL`` runs against any broker. Without it the script starts a Leveret
(``python -m leveret serve`` on a free port with a temporary data directory) and runs
against it; ``--compare`` also runs against RabbitMQ (``--rabbitmq-url``, default
amqp://guest:guest@127.0.0.1:5672/%2F) and prints both side by side, with the test ids
whose outcome differs. ``--markdown FILE`` writes that table for docs/compatibility.md.

It downloads, so it is not part of the default test run (``scripts/client-suites`` runs it).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

import pika  # the project venv's (test extras): deletes a suite's leftover queues

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_RABBITMQ_HTTP_URL = "http://127.0.0.1:15672"
NA_PREFIX = "leveret-client-suites n/a: "
PLUGIN_NAME = "leveret_suites_plugin"
# bumped when a patch changes, so that cached copies are patched again
PATCH_REVISION = "2: LEVERET_SUITE_TLS_PORT"
OUTCOMES = ("passed", "failed", "error", "skipped", "n/a")

# The pytest plugin every suite runs with: marks the not-applicable tests as skipped with a
# recognisable reason before they run.
PLUGIN_SOURCE = f'''\
"""Loaded by Leveret's tools/client_suites.py: skips the tests that cannot apply."""
import json
import os
import re

import pytest

_RULES = [(re.compile(p), r) for p, r in json.loads(os.environ.get("LEVERET_SUITES_NA", "[]"))]


_ONLY = [re.compile(p) for p in json.loads(os.environ.get("LEVERET_SUITES_ONLY", "[]"))]


def pytest_collection_modifyitems(config, items):
    if _ONLY:
        kept = [i for i in items if any(p.search(i.nodeid) for p in _ONLY)]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    for item in items:
        for pattern, reason in _RULES:
            if pattern.search(item.nodeid):
                item.add_marker(pytest.mark.skip(reason={NA_PREFIX!r} + reason))
                break
'''

# Appended to aio-pika's and aiormq's tests/conftest.py: the broker comes from
# LEVERET_SUITE_URL instead of a Docker container (later definitions in a module win).
ASYNC_OVERLAY = '''

# --- leveret client-suites overlay: the broker is LEVERET_SUITE_URL, not a Docker container
import os as _lcs_os
import types as _lcs_types
from urllib.parse import unquote as _lcs_unquote, urlsplit as _lcs_urlsplit

import pytest as _lcs_pytest
from yarl import URL as _LcsURL

_lcs_url = _lcs_urlsplit(_lcs_os.environ["LEVERET_SUITE_URL"])


def pytest_configure(config):
    """No Docker check: the broker is given."""


@_lcs_pytest.fixture(scope="session")
def rabbitmq_container():
    return _lcs_types.SimpleNamespace(
        id="leveret-client-suites", host=_lcs_url.hostname,
        ports={"5672/tcp": _lcs_url.port or 5672,
               "5671/tcp": int(_lcs_os.environ.get("LEVERET_SUITE_TLS_PORT", "5671"))},
    )


@_lcs_pytest.fixture(scope="session")
def amqp_direct_url(rabbitmq_container):
    vhost = _lcs_unquote(_lcs_url.path[1:]) if len(_lcs_url.path) > 1 else "/"
    return _LcsURL.build(
        scheme="amqp", user=_lcs_unquote(_lcs_url.username or "guest"),
        password=_lcs_unquote(_lcs_url.password or "guest"), path="/" + vhost,
        host=rabbitmq_container.host, port=rabbitmq_container.ports["5672/tcp"],
    )
'''


class SuiteError(Exception):
    """A suite could not be fetched, patched or installed."""


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise SuiteError(f"{path}: the text to patch is not there (a new release?): {old!r}")
    path.write_text(text.replace(old, new))


def _patch_pika(src: Path) -> None:
    # blocking_adapter_test builds every URL (also those through its forwarding server)
    # from a template with the port as the only hole; async_test_base hard-codes localhost.
    _replace(src / "tests/acceptance/blocking_adapter_test.py",
             "'amqp://guest:guest@127.0.0.1:%(port)s/%%2f?socket_timeout=1')",
             "__import__('os').environ['LEVERET_SUITE_PIKA_TEMPLATE'])")
    _replace(src / "tests/acceptance/blocking_adapter_test.py",
             "DEFAULT_URL = PARAMS_URL_TEMPLATE % {'port': 5672}",
             "DEFAULT_URL = PARAMS_URL_TEMPLATE % "
             "{'port': int(__import__('os').environ['LEVERET_SUITE_PORT'])}")
    _replace(src / "tests/base/async_test_base.py",
             "return pika.ConnectionParameters(host='localhost', port=5672)",
             "return pika.URLParameters(__import__('os').environ['LEVERET_SUITE_URL'])")


def _patch_async(src: Path) -> None:
    conftest = src / "tests/conftest.py"
    text = conftest.read_text()
    if "amqp_direct_url" not in text:
        raise SuiteError(f"{conftest}: no amqp_direct_url fixture use (a new release?)")
    conftest.write_text(text + ASYNC_OVERLAY)


def _patch_amqpstorm(src: Path) -> None:
    # amqpstorm's functional tests give Connection() no port (5672), only a host.
    port = "port=int(__import__('os').environ['LEVERET_SUITE_PORT'])"
    tests = src / "amqpstorm/tests/functional"
    _replace(tests / "utility.py", "return Connection(HOST, USERNAME, PASSWORD, **kwargs)",
             f"return Connection(HOST, USERNAME, PASSWORD, {port}, **kwargs)")
    _replace(tests / "test_web_based.py", "Connection(HOST, USERNAME, PASSWORD,\n",
             f"Connection(HOST, USERNAME, PASSWORD, {port},\n")
    _replace(tests / "management/test_connection.py",
             "HOST, USERNAME, PASSWORD,\n            client_properties",
             f"HOST, USERNAME, PASSWORD, {port},\n            client_properties")


def _env_amqpstorm(url: str, http_url: str) -> dict[str, str]:
    # amqpstorm.tests reads AMQP_*; the management API (AMQP_HTTP_URL) sets up and cleans up
    parts = urlsplit(url)
    return {"AMQP_HOST": parts.hostname or "127.0.0.1", "AMQP_URI": url,
            "AMQP_USERNAME": unquote(parts.username or "guest"),
            "AMQP_PASSWORD": unquote(parts.password or "guest"),
            "AMQP_HTTP_URL": http_url, "LEVERET_SUITE_PORT": str(parts.port or 5672)}


def _env_host_port(url: str, http_url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {"RABBITMQ_HOST": parts.hostname or "127.0.0.1",
            "RABBITMQ_5672_TCP": str(parts.port or 5672)}


def _env_pika(url: str, http_url: str) -> dict[str, str]:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'guest'}:{parts.password or 'guest'}@{parts.hostname}"
    vhost = parts.path[1:] or "%2F"
    return {"LEVERET_SUITE_PIKA_TEMPLATE": f"amqp://{netloc}:%(port)s/{vhost.replace('%', '%%')}"
                                           "?socket_timeout=1",
            "LEVERET_SUITE_PORT": str(parts.port or 5672)}


def _docker_pems(dockerfile: str) -> dict[str, str]:
    """The files a Dockerfile writes with ``echo '-----BEGIN ...' > /etc/rabbitmq/ca/NAME``."""
    return {name: body.replace("\\n\\\n", "\n") + "\n" for body, name in re.findall(
        r"echo '(-----BEGIN .*?-----END [A-Z ]+-----)' > /etc/rabbitmq/ca/(\S+)", dockerfile, re.S)}


def _certs_py_amqp(cache: Cache, suite: Suite, version: str, src: Path) -> dict[str, Path]:
    # Its sdist has no certificates. The repository has the client's in t/certs (the tests
    # read them relative to the source directory), and its CI's broker image is built from
    # the repository's Dockerfile, which writes the CA, the server's certificate and key,
    # and the rabbitmq.conf (verify_peer, fail_if_no_peer_cert = true).
    repo = cache.checkout(suite, version)
    shutil.copytree(repo / "t/certs", src / "t/certs", dirs_exist_ok=True)
    dockerfile = (repo / "Dockerfile").read_text()
    for line in ("listeners.ssl.default = 5671", "ssl_options.verify     = verify_peer",
                 "ssl_options.fail_if_no_peer_cert = true"):
        if line not in dockerfile:
            raise SuiteError(f"{repo}/Dockerfile: no {line!r} (a new release?)")
    pems = _docker_pems(dockerfile)
    out = cache.root / "tls" / f"{suite.name}-{version}"
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, name in (("cacertfile", "ca_certificate.pem"), ("certfile", "server_certificate.pem"),
                      ("keyfile", "server_key.pem")):
        if name not in pems:
            raise SuiteError(f"{repo}/Dockerfile: writes no {name} (a new release?)")
        (out / name).write_text(pems[name])
        files[key] = out / name
    return files


def _certs_aiormq(cache: Cache, suite: Suite, version: str, src: Path) -> dict[str, Path]:
    # tests/certs (in the sdist) is what its CI image, tests/certs/Dockerfile, is given:
    # RABBITMQ_SSL_CACERTFILE/CERTFILE/KEYFILE, so verify_peer, fail_if_no_peer_cert false
    certs = src / "tests/certs"
    return {"cacertfile": certs / "ca.pem", "certfile": certs / "server.pem",
            "keyfile": certs / "server.key"}


def _certs_aio_pika(cache: Cache, suite: Suite, version: str, src: Path) -> dict[str, Path]:
    # aio-pika's tests run the image aiormq's CI builds (mosquito/aiormq-rabbitmq): the
    # certificates of the aiormq its venv installs
    venv_python = cache.root / "venvs" / f"{suite.name}-{version}" / "bin/python"
    aiormq_version = subprocess.run(
        [str(venv_python), "-c", "import importlib.metadata as m; print(m.version('aiormq'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    aiormq = next(s for s in SUITES if s.name == "aiormq")
    return _certs_aiormq(cache, aiormq, aiormq_version, cache.source(aiormq, aiormq_version))


@dataclass
class TLSSetup:
    """How a suite's own CI starts the broker its TLS tests expect (``--tls``)."""
    # (cache, suite, version, patched source) -> cacertfile / certfile / keyfile
    certs: Callable[[Cache, Suite, str, Path], dict[str, Path]]
    fail_if_no_peer_cert: bool
    port_env: Callable[[int], dict[str, str]]     # the TLS port -> environment variables
    # tests that connect to port 5671 whatever they are told: n/a when it is not free
    fixed_port: list[str] = field(default_factory=list)
    verify: str = "verify_peer"


def _tls_port_async(port: int) -> dict[str, str]:
    return {"LEVERET_SUITE_TLS_PORT": str(port)}


@dataclass
class Suite:
    name: str                  # the library, as the table names it
    dist: str                  # its PyPI distribution
    pinned: str                # the version used when the project venv has none
    tests: list[str]           # pytest arguments: what is its integration suite
    deps: list[str]            # what its tests need besides the library
    source: str = "sdist"      # "sdist" or "git"
    git: str = ""              # owner/name on GitHub, for source="git"
    tag: str = "{version}"
    patch: Callable[[Path], None] | None = None
    # (AMQP URL, management HTTP URL) -> environment variables
    env: Callable[[str, str], dict[str, str]] = lambda url, http_url: {}
    not_applicable: list[tuple[str, str]] = field(default_factory=list)
    guest_only: bool = False   # the suite hard-codes guest/guest and vhost /
    # queues (often durable) and exchanges with fixed names that the suite leaves behind,
    # messages in them too: deleted before a run (otherwise only the first run against a
    # broker can pass) and after it (the broker may be shared)
    leftovers: list[str] = field(default_factory=list)
    leftover_exchanges: list[str] = field(default_factory=list)
    tls: TLSSetup | None = None   # how its TLS tests' broker is set up, for --tls

    def version(self, overrides: dict[str, str]) -> str:
        if self.name in overrides:
            return overrides[self.name]
        try:
            return metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return self.pinned


TLS = "TLS: expects the suite's own certificates on port 5671"
SUITES = [
    Suite("pika", "pika", "1.4.4", ["tests/acceptance"],
          ["pytest", "pytest-timeout", "twisted", "tornado", "gevent"],
          source="git", git="pika/pika", patch=_patch_pika, env=_env_pika,
          not_applicable=[(r"TestGetaddrinfoWWWGoogleDotCom",
                           "resolves www.google.com: needs the internet")]),
    Suite("aio-pika", "aio-pika", "10.2.1", ["tests"],
          ["pytest", "pytest-timeout", "aiomisc", "aiomisc-pytest", "shortuuid",
           "timeout-decorator"],
          patch=_patch_async,
          tls=TLSSetup(_certs_aio_pika, fail_if_no_peer_cert=False, port_env=_tls_port_async,
                       fixed_port=[r"^tests/test_amqps\.py::test_default_context\b"]),
          not_applicable=[(r"^tests/test_amqps\.py::", TLS),
                          (r"^tests/test_robust_recovery\.py::",
                           "restarts its own broker in Docker")]),
    Suite("aiormq", "aiormq", "7.2.4", ["tests"],
          ["pytest", "pytest-timeout", "aiomisc-pytest"],
          patch=_patch_async,
          tls=TLSSetup(_certs_aiormq, fail_if_no_peer_cert=False, port_env=_tls_port_async),
          not_applicable=[(r"[\[-]amqps[\]-]", TLS), (r"::test_auth_external\b", TLS),
                          (r"::test_ssl_", TLS)]),
    Suite("kombu", "kombu", "5.7.0", ["t/integration/test_py_amqp.py"],
          ["pytest", "pytest-timeout", "pytest-rerunfailures"],
          env=_env_host_port, guest_only=True,
          # test_publish_requeue_consume never acks its 4 messages
          leftovers=["priority_requeue_test"]),
    Suite("py-amqp", "amqp", "5.4.2", ["t/integration"],
          ["pytest<=8.0.0", "pytest-timeout", "pytest-rerunfailures"],
          env=_env_host_port, guest_only=True, git="celery/py-amqp", tag="v{version}",
          tls=TLSSetup(_certs_py_amqp, fail_if_no_peer_cert=True,
                       port_env=lambda port: {"RABBITMQ_5671_TCP": str(port)}),
          not_applicable=[(r"::test_tls_(no_)?default_certs",
                           "connects to tls-v1-2.badssl.com: needs the internet"),
                          (r"\[tls[\]-]", TLS), (r"::test_tls_", TLS)]),
    # the functional tests (the unit tests use a fake connection); they set up and clean up
    # through the management API, at --management-url / the started Leveret's
    Suite("amqpstorm", "amqpstorm", "3.1.4", ["amqpstorm/tests/functional"],
          ["pytest", "pytest-timeout", "requests"],
          patch=_patch_amqpstorm, env=_env_amqpstorm,
          # its @setup(queue=False) tests declare durable queues they never delete
          leftovers=["test_api_queue_declare", "test_api_queue_declare_passive_exists",
                     "test_api_queue_get", "test_api_queue_list", "test_api_queue_list_all"],
          leftover_exchanges=["test_queue_declare_passive_exists"],
          not_applicable=[(r"functional[./]ssl[./]", TLS),
                          (r"::test_api_ssl_test$", "TLS: expects the suite's CA on HTTPS")]),
]


def _run(cmd: list[str], **kwargs) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode:
        raise SuiteError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}{result.stderr[-3000:]}")


class Cache:
    def __init__(self, root: Path, git_sources: dict[str, str]):
        self.root = root
        self.git_sources = git_sources

    def source(self, suite: Suite, version: str) -> Path:
        """A patched copy of the suite's released source (made once per version)."""
        dest = self.root / "src" / f"{suite.name}-{version}"
        ready = dest / ".leveret-ready"
        if ready.exists() and ready.read_text() == PATCH_REVISION:
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if suite.source == "git":
            url = self.git_sources.get(suite.name, f"https://github.com/{suite.git}.git")
            _run(["git", "clone", "-q", "--depth", "1", "--branch",
                  suite.tag.format(version=version), url, str(dest)])
        else:
            sdists = self.root / "sdist"
            sdists.mkdir(parents=True, exist_ok=True)
            _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                  "--no-deps", "--no-binary", suite.dist, "-d", str(sdists),
                  f"{suite.dist}=={version}"])
            stem = f"{suite.dist.replace('-', '_')}-{version}".lower()
            archive = next((p for p in sdists.iterdir()
                            if p.name.lower().replace("-", "_").startswith(stem.replace("-", "_"))
                            and p.name.endswith(".tar.gz")), None)
            if archive is None:
                raise SuiteError(f"no sdist of {suite.dist} {version} in {sdists}")
            with tempfile.TemporaryDirectory(dir=dest.parent) as tmp, \
                    tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
                (top,) = Path(tmp).iterdir()
                top.rename(dest)
        if suite.patch:
            suite.patch(dest)
        ready.write_text(PATCH_REVISION)
        return dest

    def checkout(self, suite: Suite, version: str) -> Path:
        """The suite's git repository at the release tag (for files its sdist leaves out,
        such as py-amqp's certificates): ``--git NAME=URL`` or GitHub, cloned once."""
        dest = self.root / "git" / f"{suite.name}-{version}"
        if (dest / ".git").exists():
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        url, _, ref = self.git_sources.get(
            suite.name, f"https://github.com/{suite.git}.git").partition("#")
        _run(["git", "clone", "-q", "--depth", "1", "--branch",
              ref or suite.tag.format(version=version), url, str(dest)])
        return dest

    def venv(self, suite: Suite, version: str) -> Path:
        """A venv with the library at that version and what its tests need."""
        venv = self.root / "venvs" / f"{suite.name}-{version}"
        wanted = json.dumps([f"{suite.dist}=={version}", *suite.deps])
        stamp = venv / ".leveret-requirements"
        if stamp.exists() and stamp.read_text() == wanted:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(venv)])
        _run([str(venv / "bin/python"), "-m", "pip", "install", "-q",
              "--disable-pip-version-check", *json.loads(wanted)])
        stamp.write_text(wanted)
        return venv

    def plugin_dir(self) -> Path:
        path = self.root / "plugin"
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{PLUGIN_NAME}.py").write_text(PLUGIN_SOURCE)
        return path


@dataclass
class Result:
    suite: str
    version: str
    outcomes: dict[str, str]   # test id -> outcome
    note: str = ""             # why the suite did not run, if it did not

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def parse_junit(path: Path) -> dict[str, str]:
    """Test id -> passed / failed / error / skipped / n/a, from a pytest junit xml."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            outcome = "failed"
        elif case.find("error") is not None:
            outcome = "error"
        elif (skipped := case.find("skipped")) is not None:
            outcome = "n/a" if NA_PREFIX in (skipped.get("message") or "") else "skipped"
        else:
            outcome = "passed"
        # a test whose teardown errors appears twice: keep the worse outcome
        if outcomes.get(test_id) in ("failed", "error"):
            continue
        outcomes[test_id] = outcome
    return outcomes


def run_suite(cache: Cache, suite: Suite, version: str, url: str, http_url: str,
              results_dir: Path, timeout: int, extra: list[str],
              not_applicable: list[tuple[str, str]] | None = None,
              only: list[str] | None = None, extra_env: dict[str, str] | None = None) -> Result:
    try:
        src = cache.source(suite, version)
        venv = cache.venv(suite, version)
    except SuiteError as exc:
        print(f"  {suite.name} {version}: not run: {exc}", flush=True)
        return Result(suite.name, version, {}, "not run (see the output)")
    _delete_leftovers(url, suite)
    results_dir.mkdir(parents=True, exist_ok=True)
    junit = results_dir / f"{suite.name}.xml"
    junit.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(suite.env(url, http_url))
    env.update(extra_env or {})
    env.update(PYTHONPATH=str(cache.plugin_dir()), LEVERET_SUITE_URL=url,
               LEVERET_SUITES_NA=json.dumps(suite.not_applicable if not_applicable is None
                                            else not_applicable),
               LEVERET_SUITES_ONLY=json.dumps(only or []))
    cmd = [str(venv / "bin/python"), "-m", "pytest", *suite.tests, "-p", PLUGIN_NAME,
           "-p", "no:cacheprovider", f"--junitxml={junit}", "-o", "junit_family=xunit1",
           "--timeout=120", "-q", "-rN",
           # native tracebacks: pytest 9 on CPython 3.11.7 can crash re-parsing the source
           # of a deep one ("AST constructor recursion depth mismatch"), ending the run
           "--tb=native", *extra]
    log = results_dir / f"{suite.name}.log"
    started = time.monotonic()
    with open(log, "w") as out:
        try:
            subprocess.run(cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(suite.name, version, {}, f"not run: over {timeout} s (see {log})")
        finally:
            _delete_leftovers(url, suite)
    if not junit.exists():
        return Result(suite.name, version, {}, f"not run: pytest wrote no report (see {log})")
    result = Result(suite.name, version, parse_junit(junit))
    print(f"  {suite.name} {version}: " + ", ".join(
        f"{result.count(o)} {o}" for o in OUTCOMES) + f" ({time.monotonic() - started:.0f} s)",
          flush=True)
    return result


def _delete_leftovers(url: str, suite: Suite) -> None:
    if not suite.leftovers and not suite.leftover_exchanges:
        return
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        for name in suite.leftovers:
            channel.queue_delete(name)
        for name in suite.leftover_exchanges:
            channel.exchange_delete(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_amqp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return len(sock.recv(7)) == 7
    except OSError:
        return False


def _wait_for(proc: subprocess.Popen, port: int, what: str, log: Path, seconds: int) -> None:
    """Until the broker process answers AMQP on the port (SystemExit if it exits or not)."""
    for _ in range(seconds * 10):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}: see {log}")
        if _answers_amqp(port):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on port {port}: see {log}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class LeveretServer:
    """`python -m leveret serve` on free ports (AMQP, management API) with a temporary data
    directory; no Prometheus endpoint. With ``conf``, started from that rabbitmq.conf (whose
    plain listener is on ``port``)."""

    def __init__(self, log: Path, conf: Path | None = None, port: int | None = None):
        self.log = log
        self.conf = conf
        self.port = port or _free_port()
        self.management_port = _free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="leveret-suites-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def __enter__(self) -> "LeveretServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        where = ["--config", str(self.conf)] if self.conf else ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leveret", "serve", *where,
             "--management-port", str(self.management_port), "--no-prometheus",
             "--data-dir", self.tmp.name, "--log-level", "warning"],
            env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        _wait_for(self.proc, self.port, "Leveret", self.log, 30)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


class RabbitMQNode:
    """A private RabbitMQ node started from a rabbitmq.conf (plain listener on ``port``): its
    own node name, distribution port and data, no plugins. It shares nothing with another
    node on the machine but epmd; it is stopped (its process group) on exit."""

    def __init__(self, log: Path, conf: Path, port: int, server: str):
        self.log = log
        self.conf = conf
        self.port = port
        self.server = server
        self.tmp = tempfile.TemporaryDirectory(prefix="leveret-suites-rabbitmq-")
        self.proc: subprocess.Popen | None = None

    url = LeveretServer.url
    http_url = ""

    def __enter__(self) -> "RabbitMQNode":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(self.tmp.name)
        (tmp / "enabled_plugins").write_text("[].\n")
        env = dict(os.environ, RABBITMQ_NODENAME=f"leveret-suites-{os.getpid()}@localhost",
                   RABBITMQ_CONFIG_FILE=str(self.conf),
                   RABBITMQ_ADVANCED_CONFIG_FILE=str(tmp / "advanced.config"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(tmp / "enabled_plugins"),
                   RABBITMQ_MNESIA_BASE=str(tmp / "mnesia"), RABBITMQ_LOG_BASE=str(tmp / "log"),
                   RABBITMQ_PID_FILE=str(tmp / "pid"), RABBITMQ_DIST_PORT=str(_free_port()))
        self.proc = subprocess.Popen([self.server], env=env, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for(self.proc, self.port, "RabbitMQ", self.log, 120)
        except SystemExit:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.tmp.cleanup()


def rabbitmq_conf(suite: Suite, certs: dict[str, Path], port: int, tls_port: int) -> str:
    """The rabbitmq.conf that starts a broker as the suite's CI starts its own."""
    tls = suite.tls
    assert tls is not None
    return "\n".join([
        f"# {suite.name}: the broker its TLS tests expect (tools/client_suites.py --tls)",
        f"listeners.tcp.default = 127.0.0.1:{port}",
        f"listeners.ssl.default = 127.0.0.1:{tls_port}",
        *(f"ssl_options.{key} = {certs[key]}" for key in ("cacertfile", "certfile", "keyfile")),
        f"ssl_options.verify = {tls.verify}",
        f"ssl_options.fail_if_no_peer_cert = {str(tls.fail_if_no_peer_cert).lower()}", ""])


def run_tls_suite(cache: Cache, suite: Suite, version: str, broker: str, rabbitmq_server: str,
                  results_dir: Path, timeout: int, extra: list[str], tls_only: bool) -> Result:
    """The whole suite (or with ``tls_only`` its TLS tests) against a broker of its own,
    started from the rabbitmq.conf its TLS tests need: ``broker`` is "leveret" or "rabbitmq"."""
    assert suite.tls is not None
    try:
        src = cache.source(suite, version)
        cache.venv(suite, version)
        certs = suite.tls.certs(cache, suite, version, src)
    except (SuiteError, subprocess.CalledProcessError) as exc:
        print(f"  {suite.name} {version}: not run: {exc}", flush=True)
        return Result(suite.name, version, {}, "not run (see the output)")
    port = _free_port()
    tls_port = 5671 if _port_free(5671) else _free_port()
    na = [(p, r) for p, r in suite.not_applicable if r != TLS]
    if tls_port != 5671:
        na = [(p, f"connects to port 5671, which is taken here (TLS is on {tls_port})")
              for p in suite.tls.fixed_port] + na
    only = [p for p, r in suite.not_applicable if r == TLS] if tls_only else None
    results_dir.mkdir(parents=True, exist_ok=True)
    conf = results_dir / f"{suite.name}.rabbitmq.conf"
    conf.write_text(rabbitmq_conf(suite, certs, port, tls_port))
    log = results_dir / f"{suite.name}.broker.log"
    server = (LeveretServer(log, conf, port) if broker == "leveret"
              else RabbitMQNode(log, conf, port, rabbitmq_server))
    with server:
        print(f"  {suite.name}: {broker} from {conf} (amqp {port}, amqps {tls_port})", flush=True)
        return run_suite(cache, suite, version, server.url, server.http_url, results_dir,
                         timeout, extra, na, only, suite.tls.port_env(tls_port))


def run_all(cache: Cache, suites: list[Suite], versions: dict[str, str], url: str,
            http_url: str, results_dir: Path, timeout: int, extra: list[str]) -> list[Result]:
    return [run_suite(cache, s, s.version(versions), url, http_url, results_dir, timeout, extra)
            for s in suites]


def load_results(results_dir: Path, suites: list[Suite], versions: dict[str, str]
                 ) -> list[Result]:
    out = []
    for s in suites:
        junit = results_dir / f"{s.name}.xml"
        out.append(Result(s.name, s.version(versions),
                          parse_junit(junit) if junit.exists() else {},
                          "" if junit.exists() else f"no results in {results_dir}"))
    return out


def _counts(result: Result) -> str:
    if result.note:
        return result.note
    return " / ".join(str(result.count(o)) for o in ("passed", "failed", "error", "skipped"))


def table(columns: dict[str, list[Result]]) -> str:
    """Markdown: one row per library, one passed/failed/error/skipped column per broker."""
    labels = list(columns)
    lines = ["| library | version | tests | n/a | "
             + " | ".join(f"{label}: passed / failed / error / skipped" for label in labels)
             + " | differ |",
             "|---|---|---|---|" + "---|" * len(labels) + "---|"]
    details = []
    for row in zip(*columns.values()):
        first = row[0]
        ids = sorted(set().union(*(r.outcomes for r in row)))
        differ = [i for i in ids if len({r.outcomes.get(i, "absent") for r in row}) > 1]
        na = max(r.count("n/a") for r in row)
        lines.append(f"| {first.suite} | {first.version} | {len(ids)} | {na} | "
                     + " | ".join(_counts(r) for r in row) + f" | {len(differ)} |")
        for i in differ:
            details.append(f"- {first.suite}: `{i}`: " + ", ".join(
                f"{label} {r.outcomes.get(i, 'absent')}" for label, r in zip(labels, row)))
    text = "\n".join(lines)
    if len(labels) > 1:
        text += "\n\nTests whose outcome differs:\n\n" + ("\n".join(details) or "- none")
    not_passing = sorted({(r.suite, i, o) for rs in columns.values() for r in rs
                          for i, o in r.outcomes.items() if o in ("failed", "error")})
    if not_passing:
        text += "\n\nFailed or errored:\n\n" + "\n".join(
            f"- {s}: `{i}`: " + ", ".join(
                f"{label} {next(r for r in columns[label] if r.suite == s).outcomes.get(i)}"
                for label in labels) for s, i in sorted({(s, i) for s, i, _ in not_passing}))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="run against this broker instead of starting a Leveret")
    parser.add_argument("--label", default="broker",
                        help="the --url broker's name in the table (and its results folder)")
    parser.add_argument("--compare", action="store_true",
                        help="also run against RabbitMQ and print both side by side")
    parser.add_argument("--management-url",
                        help="the --url broker's management API (default http://HOST:15672)")
    parser.add_argument("--rabbitmq-url", default=DEFAULT_RABBITMQ_URL)
    parser.add_argument("--rabbitmq-management-url", default=DEFAULT_RABBITMQ_HTTP_URL)
    parser.add_argument("--suite", action="append", choices=[s.name for s in SUITES],
                        help="only this library (repeatable)")
    parser.add_argument("--version", action="append", default=[], metavar="NAME=VERSION",
                        help="a released version other than the project venv's")
    parser.add_argument("--git", action="append", default=[], metavar="NAME=URL",
                        help="where to clone a git-sourced suite (pika; py-amqp's certificates "
                             "for --tls) from (default GitHub, at the release's tag; URL#BRANCH "
                             "for a clone without the tag)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "LEVERET_SUITES_CACHE", Path.home() / ".cache" / "leveret-client-suites")))
    parser.add_argument("--timeout", type=int, default=2400, help="seconds per suite")
    parser.add_argument("--markdown", type=Path, help="write the table to this file")
    parser.add_argument("--from-results", action="store_true",
                        help="do not run: tabulate the last saved results")
    parser.add_argument("--tls", action="store_true",
                        help="run the TLS tests too: each suite that has them (aio-pika, aiormq, "
                             "py-amqp) gets a broker of its own started from a rabbitmq.conf with "
                             "its certificates (a Leveret; with --compare also a private RabbitMQ "
                             "node); results in results/<broker>-tls")
    parser.add_argument("--tls-only", action="store_true",
                        help="--tls, running only those suites' TLS tests")
    parser.add_argument("--rabbitmq-server", default=next(
        (p for p in ("/usr/lib/rabbitmq/bin/rabbitmq-server",) if Path(p).exists()),
        shutil.which("rabbitmq-server") or "rabbitmq-server"),
                        help="with --tls --compare: the rabbitmq-server that starts the private "
                             "nodes")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    args.tls = args.tls or args.tls_only
    if args.tls and args.url:
        parser.error("--tls starts its brokers itself from the rabbitmq.conf each suite needs "
                     "(a Leveret, and with --compare a RabbitMQ node): no --url")

    suites = [s for s in SUITES if (not args.suite or s.name in args.suite)
              and (s.tls or not args.tls_only)]
    versions = dict(v.split("=", 1) for v in args.version)
    cache = Cache(args.cache, dict(g.split("=", 1) for g in args.git))
    results = args.cache / "results"
    columns: dict[str, list[Result]] = {}
    targets: list[tuple[str, str | None, str]] = []
    if args.url:
        targets.append((args.label, args.url, args.management_url
                        or f"http://{urlsplit(args.url).hostname or '127.0.0.1'}:15672"))
    else:
        targets.append(("Leveret", None, ""))
    if args.compare:
        targets.append(("RabbitMQ 3.10.8", args.rabbitmq_url, args.rabbitmq_management_url))
    for label, url, http_url in targets:
        out = results / (label.split()[0].lower() + ("-tls" if args.tls else ""))
        if args.from_results:
            columns[label] = load_results(out, suites, versions)
            continue
        own_broker = [s for s in suites if args.tls and s.tls]
        shared = [s for s in suites if s not in own_broker]
        done: dict[str, Result] = {}
        if shared and url is None:
            with LeveretServer(out / "leveret.log") as server:
                print(f"== {label} at {server.url}", flush=True)
                done.update((r.suite, r) for r in run_all(
                    cache, shared, versions, server.url, server.http_url, out, args.timeout,
                    args.pytest_args))
        elif shared:
            if any(s.guest_only for s in shared) and not re.match(
                    r"amqp://(guest:guest@)?[^/]*(/|/%2[Ff])?$", url):
                print("note: the kombu and py-amqp suites always use guest/guest and vhost /",
                      file=sys.stderr)
            print(f"== {label} at {url}", flush=True)
            done.update((r.suite, r) for r in run_all(
                cache, shared, versions, url, http_url, out, args.timeout, args.pytest_args))
        if own_broker:
            print(f"== {label}, a broker per suite, with TLS", flush=True)
        for s in own_broker:
            done[s.name] = run_tls_suite(
                cache, s, s.version(versions), "leveret" if url is None else "rabbitmq",
                args.rabbitmq_server, out, args.timeout, args.pytest_args, args.tls_only)
        columns[label] = [done[s.name] for s in suites]
    text = table(columns)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
