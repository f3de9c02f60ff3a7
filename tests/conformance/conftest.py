"""Fixtures shared by the conformance tests (plain helpers are in ``helpers.py``).

Connections made through these fixtures are closed at teardown; names put in
``cleanup`` / ``cleanup_exchanges`` are deleted afterwards on a fresh connection.
``delayed_ok`` skips a test on an external broker without the delayed-message exchange type;
``timeout_broker`` is an in-process Leveret with a 300 ms broker-wide consumer timeout.
"""
from __future__ import annotations

import os
import uuid

import pika
import pika.exceptions
import pytest

import rawamqp
from rawamqp import RawConnection


def _tracked(make, close):
    """Yield a factory calling ``make``; after the test ``close`` everything it made."""
    made = []

    def factory(*args, **kw):
        made.append(make(*args, **kw))
        return made[-1]

    yield factory
    for x in made:
        close(x)


def _close_if_open(c: pika.BlockingConnection) -> None:
    if c.is_open:
        c.close()


@pytest.fixture
def raw(broker_addr):
    """Factory ``raw(timeout=5.0)`` for raw (not yet handshaken) connections."""
    yield from _tracked(lambda timeout=5.0: RawConnection(*broker_addr, timeout=timeout),
                        RawConnection.shutdown)


@pytest.fixture
def rawc(broker_url):
    """Factory ``rawc(**handshake_kwargs)`` for raw connections that completed the handshake."""
    yield from _tracked(lambda **kw: rawamqp.connect(broker_url, **kw), RawConnection.shutdown)


@pytest.fixture
def connect(broker_url):
    """Factory ``connect()`` for pika BlockingConnections."""
    yield from _tracked(lambda: pika.BlockingConnection(pika.URLParameters(broker_url)), _close_if_open)


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


def _delete_after(broker_url, delete):
    """Collect names during the test; afterwards call ``delete(channel, name)`` for each,
    every one on its own channel of a fresh connection."""
    names: list[str] = []
    yield names
    c = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        for n in names:
            chan = c.channel()
            delete(chan, n)
            chan.close()
    finally:
        c.close()


@pytest.fixture
def cleanup(broker_url):
    """Collects queue names; deletes them after the test."""
    yield from _delete_after(broker_url, lambda chan, n: chan.queue_delete(n))


@pytest.fixture
def cleanup_exchanges(broker_url):
    """Collects exchange names; deletes them after the test."""
    yield from _delete_after(broker_url, lambda chan, n: chan.exchange_delete(n))


@pytest.fixture(scope="session")
def _delayed_type_known(broker_url) -> bool:
    """Does the broker know the 'x-delayed-message' exchange type? Leveret does; an external broker
    is probed once (declaring an unknown exchange type closes the connection with 503)."""
    if not os.environ.get("LEVERET_TEST_URL"):
        return True
    c = pika.BlockingConnection(pika.URLParameters(broker_url))
    name = "t.delayed-probe." + uuid.uuid4().hex[:8]
    try:
        ch = c.channel()
        ch.exchange_declare(name, "x-delayed-message", auto_delete=True, arguments={"x-delayed-type": "direct"})
        ch.exchange_delete(name)
        return True
    except pika.exceptions.ConnectionClosedByBroker as e:
        # "unknown" on a node that never loaded the plugin; "invalid" once the type's atom exists
        # (the plugin was enabled and disabled again since the node started).
        assert e.reply_code == 503
        assert e.reply_text in ("COMMAND_INVALID - unknown exchange type 'x-delayed-message'",
                                "COMMAND_INVALID - invalid exchange type 'x-delayed-message'")
        return False
    finally:
        if c.is_open:
            c.close()


@pytest.fixture
def delayed_ok(_delayed_type_known):
    """Skip on an external broker that does not know 'x-delayed-message' (RabbitMQ without the plugin)."""
    if not _delayed_type_known:
        pytest.skip("broker has no x-delayed-message exchange type (rabbitmq_delayed_message_exchange)")


@pytest.fixture
def timeout_broker():
    """An in-process Leveret broker whose broker-wide consumer_timeout setting is 300 ms."""
    from inproc import ThreadedBroker
    b = ThreadedBroker(consumer_timeout=300)
    yield b
    b.stop()
