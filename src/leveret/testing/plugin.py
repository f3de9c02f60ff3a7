"""Leveret's pytest plugin: a real AMQP broker for a test suite, with nothing to install or run.

Registered through the ``pytest11`` entry point ``leveret`` (pyproject.toml), so installing
Leveret is enough; ``-p no:leveret`` switches it off. Fixtures (docs/testing.md):

``leveret_broker`` (session)
    The broker: an in-process Leveret on a free loopback port (a :class:`leveret.BackgroundBroker`,
    its own thread and event loop), started on first use, stopped at the end of the session with
    its thread joined and its sockets closed. With ``--leveret-url`` (or ``LEVERET_PYTEST_URL``)
    it is that external broker instead -- a real RabbitMQ in CI, with no change to the tests.
``leveret_vhost`` / ``leveret_url`` (function)
    A fresh vhost for the test (the default user has every permission on it) and its AMQP URL;
    the vhost is deleted after the test, closing its connections (320 CONNECTION_FORCED), so no
    test sees another's queues. On an external broker the vhost is made through the management
    API (``--leveret-mgmt-url`` / ``LEVERET_PYTEST_MGMT_URL``, default ``http://HOST:15672``
    with the AMQP URL's credentials); without a usable API every test shares the URL's vhost,
    with one warning.
``leveret_broker_factory`` (function)
    ``factory(settings=None, *, rabbitmq4=False, **fields)`` starts a private Leveret with custom
    settings (a data directory for durability tests, limits, RabbitMQ 4 defaults) and stops it
    after the test; a broker may be ``stop()``-ped and another started on the same data
    directory. It skips the test when the suite runs against an external broker.
``leveret_settings`` (session)
    The session broker's :class:`leveret.Settings` (``Settings(port=0)``); override it in a
    conftest.py to configure that broker.

Why a thread for every test, synchronous or asynchronous: a session-wide broker must outlive
every test's event loop (pytest-asyncio and anyio give each test its own loop by default), so it
cannot live in one of them; in a thread of its own it serves pika, aio-pika (any loop, any
pytest-asyncio mode, anyio) and kombu alike, over real sockets. pytest-xdist needs nothing
special: each worker is a process with its own session, hence its own broker.

This module imports nothing heavy at load time (pytest imports every installed plugin at start
and most runs never ask for a broker): ``leveret.testing.brokers`` -- the broker itself -- is
imported by the fixture that first needs it.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import warnings

import pytest

URL_ENV = "LEVERET_PYTEST_URL"
MGMT_ENV = "LEVERET_PYTEST_MGMT_URL"


def _rewrite_asserts_of_the_plugin_only() -> None:
    """pytest rewrites the asserts of every module of a distribution that registers a
    ``pytest11`` entry point -- here all of Leveret, the broker included, at a cost of about
    15-20 ms per session (every broker module passes through the rewriter) and with the broker's
    own asserts changed under test. Keep it to this package. (``_must_rewrite`` is the rewrite
    hook's private set of marked names: without it, as in another pytest, nothing changes.)"""
    import sys
    for hook in sys.meta_path:
        marked = getattr(hook, "_must_rewrite", None)
        if isinstance(marked, set) and "leveret" in marked:
            marked.discard("leveret")
            marked.add(__name__.rpartition(".")[0])


_rewrite_asserts_of_the_plugin_only()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leveret", "Leveret broker fixtures (docs/testing.md)")
    group.addoption("--leveret-url", default=None, metavar="AMQP_URL",
                    help=f"run the leveret_* fixtures against this broker instead of an in-process "
                         f"Leveret (env {URL_ENV})")
    group.addoption("--leveret-mgmt-url", default=None, metavar="HTTP_URL",
                    help=f"management API of that broker, for per-test vhosts (env {MGMT_ENV}; "
                         f"default http://HOST:15672 with the AMQP URL's credentials)")


def _brokers():
    # imported on first use, not with the plugin: see the module docstring
    return importlib.import_module("leveret.testing.brokers")


def _external_url(config: pytest.Config) -> str | None:
    return config.getoption("leveret_url") or os.environ.get(URL_ENV) or None


@pytest.fixture(scope="session")
def leveret_settings():
    """Settings of the session's in-process broker; override this fixture to change them."""
    return importlib.import_module("leveret.settings").Settings(port=0)


@pytest.fixture(scope="session")
def leveret_broker(request: pytest.FixtureRequest, leveret_settings):
    """The session's broker: in-process Leveret, or the external one ``--leveret-url`` names."""
    brokers = _brokers()
    url = _external_url(request.config)
    if url:
        mgmt = request.config.getoption("leveret_mgmt_url") or os.environ.get(MGMT_ENV) or None
        try:
            broker = brokers.ExternalBroker(url, mgmt).start()
        except ValueError as e:
            raise pytest.UsageError(f"--leveret-url / --leveret-mgmt-url: {e}") from None
        if not broker.isolated:
            warnings.warn(pytest.PytestWarning(
                f"leveret: no per-test vhosts on {broker.host}:{broker.port} ({broker.why_shared}); "
                f"every test shares vhost {broker.default_vhost!r}"))
    else:
        broker = brokers.InProcessBroker(leveret_settings).start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def leveret_vhost(request: pytest.FixtureRequest, leveret_broker) -> str:
    """A vhost of the test's own, deleted afterwards."""
    name = leveret_broker.new_vhost(request.node.name)
    try:
        yield name
    finally:
        leveret_broker.delete_vhost(name)


@pytest.fixture
def leveret_url(leveret_broker, leveret_vhost) -> str:
    """The AMQP URL of the test's own vhost (``amqp://guest:guest@127.0.0.1:PORT/test.NAME.HEX``)."""
    return leveret_broker.url_for(leveret_vhost)


@pytest.fixture
def leveret_broker_factory(request: pytest.FixtureRequest):
    """``factory(settings=None, *, rabbitmq4=False, **fields)`` -> a started
    :class:`leveret.BackgroundBroker`; every broker it made is stopped after the test."""
    if _external_url(request.config):
        pytest.skip("leveret_broker_factory needs an in-process Leveret (--leveret-url names an external broker)")
    made = []
    settings_module = importlib.import_module("leveret.settings")
    Settings, RABBITMQ4 = settings_module.Settings, settings_module.RABBITMQ4
    BackgroundBroker = importlib.import_module("leveret.embed").BackgroundBroker

    def factory(settings=None, *, rabbitmq4: bool = False, **fields):
        base = settings if settings is not None else Settings(port=0)
        if "data_dir" in fields and fields["data_dir"] is not None:
            fields["data_dir"] = os.fspath(fields["data_dir"])
            # no ctl socket unless asked: a tmp_path is often longer than a socket path may be
            fields.setdefault("control_socket", "")
        if rabbitmq4:       # ``leveret serve --rabbitmq4``
            fields.update(RABBITMQ4)
        b = BackgroundBroker(dataclasses.replace(base, **fields))
        made.append(b)
        return b.start()

    try:
        yield factory
    finally:
        errors = []
        for b in reversed(made):
            try:
                b.stop()
            except Exception as e:      # stop the others regardless; report after
                errors.append(e)
        if errors:
            raise errors[0]
