"""Fixtures shared by the conformance tests (plain helpers are in ``helpers.py``).

Connections made through these fixtures are closed at teardown; names put in
``cleanup`` / ``cleanup_exchanges`` are deleted afterwards on a fresh connection.
"""
from __future__ import annotations

import pika
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
