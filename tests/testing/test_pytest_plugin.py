"""Leveret's pytest plugin (``leveret.testing.plugin``), run as a user's suite would run it: inner
pytest sessions (``pytester``) whose tests talk to the fixtures' broker with pika, aio-pika and
kombu over real sockets.

The in-process tests are Leveret-only; the external-URL tests point the inner session at the
broker under test (a private ``leveret serve`` with its management API, or RabbitMQ with
``LEVERET_TEST_URL`` / ``LEVERET_TEST_MGMT_URL`` as scripts/rabbitmq-conformance sets them).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.parse
from pathlib import Path

import pytest


from leveret.testing import plugin

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_URL = os.environ.get("LEVERET_TEST_URL")

# a sync test module: isolation between tests, the session broker shared, the URL's shape
SYNC_TESTS = '''
import json, os
import pika, pika.exceptions, pytest

OUT = os.environ["OUT"]

def record(**kw):
    with open(OUT, "a") as f:
        f.write(json.dumps(kw) + "\\n")

def test_first(leveret_broker, leveret_url, leveret_vhost):
    record(test="first", port=leveret_broker.port, url=leveret_url, vhost=leveret_vhost)
    c = pika.BlockingConnection(pika.URLParameters(leveret_url))
    ch = c.channel()
    ch.queue_declare("orders")
    ch.basic_publish("", "orders", b"one")
    c.close()          # (left open, the connection is closed when the vhost goes)

def test_second_sees_nothing_of_the_first(leveret_broker, leveret_url, leveret_vhost):
    record(test="second", port=leveret_broker.port, url=leveret_url, vhost=leveret_vhost)
    c = pika.BlockingConnection(pika.URLParameters(leveret_url))
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("orders", passive=True)
    assert e.value.reply_code == 404
    ch = c.channel()
    ch.queue_declare("orders")
    ch.basic_publish("", "orders", b"two")
    method, _, body = ch.basic_get("orders", auto_ack=True)
    assert body == b"two" and method.message_count == 0
    c.close()

def test_leaves_a_connection_open(leveret_url):
    c = pika.BlockingConnection(pika.URLParameters(leveret_url))
    c.channel().queue_declare("left")
'''


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.leveret_only
def test_sync_tests_get_a_vhost_each_and_the_broker_is_gone_afterwards(pytester, inner, monkeypatch):
    out = pytester.path / "out.jsonl"
    monkeypatch.setenv("OUT", str(out))
    pytester.makepyfile(test_sync=SYNC_TESTS)
    before = set(threading.enumerate())
    result = inner()      # in this process: what it leaves running would show here
    result.assert_outcomes(passed=3)
    first, second = _records(out)
    assert first["port"] == second["port"]                 # one broker for the session
    assert first["vhost"] != second["vhost"]
    assert first["vhost"].startswith("test.test_first.")
    assert first["url"] == f"amqp://guest:guest@127.0.0.1:{first['port']}/" + urllib.parse.quote(
        first["vhost"], safe="")
    # torn down: no thread of the broker's, its port closed
    assert [t.name for t in set(threading.enumerate()) - before] == []
    assert _refused("127.0.0.1", first["port"])


ASYNC_BODY = '''
async def _roundtrip(url):
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("jobs")
        await ch.default_exchange.publish(aio_pika.Message(b"hello"), routing_key="jobs")
        msg = await q.get(timeout=5)
        await msg.ack()
        assert msg.body == b"hello"
        return url
'''


@pytest.mark.leveret_only
def test_pytest_asyncio_auto_mode(pytester, inner):
    pytester.makepyfile(test_auto="import aio_pika, pytest\n" + ASYNC_BODY + '''
@pytest.fixture
async def connection(leveret_url):          # an async fixture on the test's loop
    conn = await aio_pika.connect(leveret_url)
    yield conn
    await conn.close()

async def test_one(leveret_url):
    await _roundtrip(leveret_url)

async def test_two(leveret_url, connection):
    await _roundtrip(leveret_url)
    ch = await connection.channel()
    await ch.declare_queue("jobs", passive=True)    # this test's vhost has it; no other has
''')
    inner(ini="asyncio_mode = auto\n").assert_outcomes(passed=2)


@pytest.mark.leveret_only
def test_pytest_asyncio_strict_mode_with_a_session_loop(pytester, inner):
    pytester.makepyfile(test_strict="import aio_pika, pytest\n" + ASYNC_BODY + '''
@pytest.mark.asyncio
async def test_function_loop(leveret_url):
    await _roundtrip(leveret_url)

@pytest.mark.asyncio(loop_scope="session")
async def test_session_loop(leveret_url):
    await _roundtrip(leveret_url)

def test_sync_alongside(leveret_url):
    import pika
    pika.BlockingConnection(pika.URLParameters(leveret_url)).close()
''')
    inner(ini="asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n").assert_outcomes(passed=3)


@pytest.mark.leveret_only
def test_anyio(pytester, inner):
    pytester.makepyfile(test_anyio="import aio_pika, pytest\n" + ASYNC_BODY + '''
@pytest.fixture
def anyio_backend():
    return "asyncio"          # aio-pika needs asyncio

@pytest.mark.anyio
async def test_with_anyio(leveret_url):
    await _roundtrip(leveret_url)
''')
    # pytest-asyncio loaded too, in strict mode (its default): anyio runs the marked test
    inner(ini="asyncio_default_fixture_loop_scope = function\n").assert_outcomes(passed=1)


@pytest.mark.leveret_only
def test_xdist_each_worker_its_own_broker(pytester, inner, monkeypatch):
    out = pytester.path / "out.jsonl"
    monkeypatch.setenv("OUT", str(out))
    pytester.makepyfile(test_x='''
import json, os, pika, pytest

@pytest.mark.parametrize("i", range(8))
def test_n(i, leveret_broker, leveret_url):
    c = pika.BlockingConnection(pika.URLParameters(leveret_url))
    c.channel().queue_declare("only-mine", exclusive=True)
    c.close()
    with open(os.environ["OUT"], "a") as f:
        f.write(json.dumps({"worker": os.environ["PYTEST_XDIST_WORKER"], "port": leveret_broker.port,
                            "pid": os.getpid()}) + "\\n")
''')
    inner("-n", "2", subprocess=True).assert_outcomes(passed=8)
    rows = _records(out)
    ports = {r["worker"]: r["port"] for r in rows}
    assert len(ports) == 2 and len(set(ports.values())) == 2, rows     # two workers, two brokers
    assert all(ports[r["worker"]] == r["port"] for r in rows)           # one broker per worker
    assert all(_refused("127.0.0.1", p) for p in ports.values())


@pytest.mark.leveret_only
def test_factory_data_dir_durability_limits_and_rabbitmq4(pytester, inner):
    pytester.makepyfile(test_factory='''
import pika, pika.exceptions, pytest

def test_restart_keeps_persistent_messages(leveret_broker_factory, tmp_path):
    b = leveret_broker_factory(data_dir=tmp_path / "data")
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = c.channel()
    ch.queue_declare("durable-q", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "durable-q", b"kept", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", "durable-q", b"dropped", pika.BasicProperties(delivery_mode=1))
    c.close()
    b.stop()
    b2 = leveret_broker_factory(data_dir=tmp_path / "data")
    c = pika.BlockingConnection(pika.URLParameters(b2.url))
    ch = c.channel()
    method, _, body = ch.basic_get("durable-q", auto_ack=True)
    assert body == b"kept" and method.message_count == 0
    assert ch.basic_get("durable-q")[0] is None
    c.close()

def test_limits(leveret_broker_factory):
    b = leveret_broker_factory(max_message_size=1000)
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = c.channel()
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"x" * 1001)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_get("q")
    assert e.value.reply_code == 406 and "larger than configured max size 1000" in e.value.reply_text
    c.close()

def test_rabbitmq4_refuses_transient_queues(leveret_broker_factory):
    b = leveret_broker_factory(rabbitmq4=True)
    assert b.settings.ignore_global_qos and b.settings.refuse_transient_queues
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c.channel().queue_declare("transient", durable=False)
    assert e.value.reply_code == 541

def test_a_bad_setting_is_a_clear_error(leveret_broker_factory):
    with pytest.raises(TypeError, match="no_such_setting"):
        leveret_broker_factory(no_such_setting=1)
''')
    inner().assert_outcomes(passed=4)


@pytest.mark.leveret_only
def test_session_settings_can_be_overridden(pytester, inner):
    pytester.makeconftest('''
import pytest
from leveret import Settings

@pytest.fixture(scope="session")
def leveret_settings():
    return Settings(port=0, default_user="app", default_pass="s3cret")
''')
    pytester.makepyfile(test_s='''
import pika, pika.exceptions, pytest

def test_user(leveret_url):
    assert leveret_url.startswith("amqp://app:s3cret@127.0.0.1:")
    c = pika.BlockingConnection(pika.URLParameters(leveret_url))
    c.channel().queue_declare("q")
    c.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(leveret_url.replace("app:s3cret", "guest:guest")))
''')
    inner().assert_outcomes(passed=1)


@pytest.mark.leveret_only
def test_a_session_that_turns_warnings_into_errors(pytester, inner):
    """``filterwarnings = error`` (a common pytest setting) applies to the broker's thread too:
    the embedded broker, its management API and its Prometheus endpoint start and answer
    without a warning (aiohttp warns on string application keys)."""
    pytester.makepyfile(test_w='''
import base64, urllib.request
import pika

def test_http_servers(leveret_broker_factory):
    b = leveret_broker_factory(management_enabled=True, management_port=0,
                               prometheus_enabled=True, prometheus_port=0)
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{b.management_port}/api/overview", headers=auth), timeout=30) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{b.prometheus_port}/metrics", timeout=30) as r:
        assert b"rabbitmq_" in r.read()
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    c.channel().queue_declare("q")
    c.close()
''')
    # (a process of its own: in this one, sockets and loops other tests left to the garbage
    # collector would surface as unraisable-exception warnings, errors under this setting)
    inner(ini="filterwarnings =\n    error\n", subprocess=True).assert_outcomes(passed=1)


# --------------------------------------------------------------------- an external broker


def _mgmt_url(server) -> str | None:
    if EXTERNAL_URL:
        return os.environ.get("LEVERET_TEST_MGMT_URL", "http://guest:guest@127.0.0.1:15672")
    return server.management_url


def _vhosts(mgmt: str, url: str) -> set[str]:
    from leveret.testing.brokers import ExternalBroker
    return {v["name"] for v in ExternalBroker(url, mgmt)._request("GET", "/vhosts")}


def test_external_url_gets_a_vhost_per_test_through_the_management_api(
        pytester, inner, monkeypatch, broker_url, leveret_session_server):
    mgmt = _mgmt_url(leveret_session_server)
    out = pytester.path / "out.jsonl"
    monkeypatch.setenv("OUT", str(out))
    pytester.makepyfile(test_sync=SYNC_TESTS + '''
def test_factory_skips(leveret_broker_factory):
    raise AssertionError("not reached")
''')
    result = inner(f"--leveret-url={broker_url}", f"--leveret-mgmt-url={mgmt}", subprocess=True)
    result.assert_outcomes(passed=3, skipped=1)
    rows = _records(out)
    assert {r["port"] for r in rows} == {urllib.parse.urlsplit(broker_url).port or 5672}
    made = {r["vhost"] for r in rows}
    assert len(made) == 2 and all(v.startswith("test.") for v in made)
    assert not made & _vhosts(mgmt, broker_url)         # deleted after each test


def test_external_url_from_the_environment_without_a_management_api_shares_the_vhost(
        pytester, inner, monkeypatch, broker_url):
    monkeypatch.setenv("OUT", str(pytester.path / "out.jsonl"))
    monkeypatch.setenv(plugin.URL_ENV, broker_url)
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv(plugin.MGMT_ENV, f"http://127.0.0.1:{closed}")
    pytester.makepyfile(test_shared='''
import uuid, pika

def test_shared(leveret_url, leveret_vhost):
    assert leveret_vhost == "/"
    c = pika.BlockingConnection(pika.URLParameters(leveret_url))
    ch = c.channel()
    q = "t.shared." + uuid.uuid4().hex[:8]      # isolation is the test's business now
    ch.queue_declare(q, exclusive=True)
    c.close()
''')
    result = inner(subprocess=True)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*leveret: no per-test vhosts on 127.0.0.1:*every test shares vhost '/'*"])


def test_bad_external_url_is_a_usage_error(pytester, inner):
    pytester.makepyfile(test_u="def test_u(leveret_url):\n    pass\n")
    result = inner("--leveret-url=http://localhost:5672/")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*not an AMQP URL*"])


# --------------------------------------------------------------------- packaging


def test_the_entry_point_names_the_plugin_and_no_repo_fixture_clashes():
    """pyproject's pytest11 entry point is the module with the fixtures, and no conftest of this
    repository defines a fixture of the same name (the plugin loads into this suite too)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"leveret": "leveret.testing.plugin"}
    names = {n for n in dir(plugin) if n.startswith("leveret_")}
    assert names == {"leveret_broker", "leveret_url", "leveret_vhost", "leveret_broker_factory",
                     "leveret_settings"}
    clashes = [(str(p.relative_to(ROOT)), n) for p in (ROOT / "tests").rglob("conftest.py")
               for n in names if f"def {n}(" in p.read_text()]
    assert clashes == []


def test_loading_the_plugin_imports_no_broker():
    """pytest imports the plugin in every run of every project that installed Leveret: loading it
    (and ``leveret``) must not import the broker, the node or aiohttp."""
    code = ("import sys, leveret, leveret.testing.plugin\n"
            "print(sorted(m for m in sys.modules if m.startswith(('leveret.node', 'leveret.broker', "
            "'leveret.embed', 'aiohttp'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
