"""Plain helpers shared by the conformance tests (the fixtures are in ``conftest.py``).

Test modules import them with ``from .helpers import ...``. The raw-socket client is
``tests/rawamqp.py`` (``import rawamqp``: pytest puts ``tests/`` on ``sys.path``).
"""
from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest


# --------------------------------------------------------------------------- broker errors
def channel_error(fn, *args, **kw) -> tuple[int, str]:
    """Call ``fn``; it must fail with a channel error. Returns (reply_code, reply_text)."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        fn(*args, **kw)
    return ei.value.reply_code, ei.value.reply_text


def connection_error(fn, *args, **kw) -> tuple[int, str]:
    """Call ``fn``; it must fail with a connection error. Returns (reply_code, reply_text)."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        fn(*args, **kw)
    return ei.value.reply_code, ei.value.reply_text


def closed_with(excinfo, code: int, text: str) -> None:
    """The exception caught by ``pytest.raises`` carries exactly this reply code and text."""
    assert excinfo.value.reply_code == code
    assert excinfo.value.reply_text == text


# --------------------------------------------------------------------------- queue contents
def count(chan, q: str) -> int:
    """message_count of ``q`` from a passive queue.declare."""
    return chan.queue_declare(q, passive=True).method.message_count


def wait_count(chan, q: str, expected: int, timeout: float = 1.0) -> int:
    """Poll queue.declare(passive) until message_count == expected (publishes are async)."""
    deadline = time.monotonic() + timeout
    while True:
        n = count(chan, q)
        if n == expected or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def drain_get(chan, q: str) -> list[tuple[bytes, bool]]:
    """All messages in ``q`` as (body, redelivered), by basic.get with auto-ack, in order."""
    out = []
    while True:
        m, _, body = chan.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((body, m.redelivered))


# --------------------------------------------------------------------------- existence checks
def _exists(c: pika.BlockingConnection, passive_declare) -> bool:
    """True if ``passive_declare(channel)`` succeeds, False if it fails with 404; closes ``c``."""
    try:
        chan = c.channel()
        try:
            passive_declare(chan)
            return True
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            return False
    finally:
        c.close()


def queue_exists(connect, name: str) -> bool:
    """Does queue ``name`` exist? Checked on a new connection from the ``connect`` fixture."""
    return _exists(connect(), lambda chan: chan.queue_declare(name, passive=True))


def exchange_exists(broker_url, name: str) -> bool:
    """Does exchange ``name`` exist? Checked on a new connection."""
    return _exists(pika.BlockingConnection(pika.URLParameters(broker_url)),
                   lambda chan: chan.exchange_declare(name, passive=True))
