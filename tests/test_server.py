"""Leveret's own process and embedding behaviour: `leveret serve`, env vars, signals, Broker API."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import aio_pika
import pika
import pytest

from leveret import Broker, Settings

from conftest import _free_port, _wait_port

pytestmark = pytest.mark.leveret_only


def test_serve_logs_ready_line_and_sigterm_closes_clients_with_320(tmp_path):
    """SIGTERM: every client gets connection.close 320 CONNECTION_FORCED, the process exits 0."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(port),
                             "--data-dir", str(tmp_path)], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert f"127.0.0.1:{port}" in line and "listening" in line
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F"))
        ch = conn.channel()
        ch.queue_declare("", exclusive=True)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.2)
        assert ei.value.reply_code == 320
        assert ei.value.reply_text == "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigint_stops_the_broker(tmp_path):
    """Ctrl-C (SIGINT) shuts the broker down cleanly with exit code 0."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(port),
                             "--data-dir", str(tmp_path)], stderr=subprocess.DEVNULL)
    try:
        _wait_port("127.0.0.1", port, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_env_vars_configure_host_port_and_data_dir(tmp_path):
    """LEVERET_HOST, LEVERET_PORT and LEVERET_DATA_DIR stand in for the flags."""
    port = _free_port()
    data = tmp_path / "data"
    env = dict(os.environ, LEVERET_HOST="127.0.0.1", LEVERET_PORT=str(port), LEVERET_DATA_DIR=str(data))
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_port("127.0.0.1", port, proc)
        assert data.is_dir()
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F"))
        assert conn.is_open
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_port_in_use_is_a_clear_error(tmp_path):
    """A taken port gives an error message and a non-zero exit, not a traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "leveret", "serve", "--port", str(port),
                            "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "cannot listen" in r.stderr and "Traceback" not in r.stderr


async def test_embedded_broker_serves_aio_pika():
    """leveret.Broker starts and stops inside a running asyncio program."""
    async with Broker(Settings(port=0)) as broker:
        assert broker.url == f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F"
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue("", exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(b"embedded"), routing_key=q.name)
            msg = await q.get(timeout=5)
            assert msg.body == b"embedded"
            await msg.ack()


async def test_handshake_timeout_closes_silent_sockets():
    """A client that connects and sends nothing is disconnected after the handshake timeout."""
    async with Broker(Settings(port=0, handshake_timeout=1.0)) as broker:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        try:
            with pytest.raises(ConnectionResetError):     # closed with RST, as RabbitMQ does
                await asyncio.wait_for(reader.read(100), timeout=5)
        finally:
            writer.close()


async def test_handshake_timeout_applies_after_the_protocol_header():
    """A client stuck after connection.start (never sends start-ok) is also dropped."""
    async with Broker(Settings(port=0, handshake_timeout=1.0)) as broker:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        try:
            writer.write(b"AMQP\x00\x00\x09\x01")
            start = await asyncio.wait_for(reader.read(4096), timeout=5)
            assert start[:1] == b"\x01"   # connection.start method frame
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(100), timeout=5)
        finally:
            writer.close()


def test_guest_refused_from_non_loopback_address():
    """guest/guest is a loopback-only user, as in RabbitMQ (checked on the broker's auth path)."""
    b = Broker(Settings())
    assert b.authenticate("guest", "guest", "127.0.0.1") is not None
    assert b.authenticate("guest", "guest", "::1") is not None
    assert b.authenticate("guest", "guest", "10.1.2.3") is None
    assert b.authenticate("guest", "wrong", "127.0.0.1") is None
    b.add_user("alice", "pw")
    assert b.authenticate("alice", "pw", "10.1.2.3") is not None


async def test_oversized_message_refused_before_its_body_is_buffered():
    """A content header announcing more than max_message_size closes the channel 406
    (RabbitMQ's text); the connection and its other channels keep working."""
    import aiormq
    async with Broker(Settings(port=0, max_message_size=1000)) as broker:
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F")
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue("", exclusive=True)
            bad = await conn.channel()
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as ei:
                await bad.default_exchange.publish(aio_pika.Message(b"x" * 1001), routing_key=q.name)
                await bad.declare_queue("", exclusive=True)     # a round trip to observe the close
            assert "message size 1001 is larger than configured max size 1000" in str(ei.value)
            await ch.default_exchange.publish(aio_pika.Message(b"y" * 1000), routing_key=q.name)
            msg = await q.get(timeout=5)
            assert msg.body == b"y" * 1000


async def test_peer_that_never_reads_cannot_grow_broker_buffers():
    """A client that floods requests but never reads replies stops being read once its replies
    back up (bounded buffers); other clients are served meanwhile."""
    async with Broker(Settings(port=0)) as broker:
        from pamqp import commands as C
        from pamqp import frame as F
        r, w = await asyncio.open_connection("127.0.0.1", broker.port)
        # (a small client-side buffer: asyncio 3.11's transport moves its whole buffer on every
        # send, so a 30 MB one would make this client, not the broker, the slow side)
        w.transport.set_write_buffer_limits(high=256 * 1024)
        w.write(b"AMQP\x00\x00\x09\x01")
        await r.read(4096)                                   # connection.start
        w.write(F.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                               response="\0guest\0guest"), 0))
        await r.read(4096)                                   # tune
        w.write(F.marshal(C.Connection.TuneOk(channel_max=10, frame_max=131072, heartbeat=0), 0))
        w.write(F.marshal(C.Connection.Open(virtual_host="/"), 0))
        w.write(F.marshal(C.Channel.Open(), 1))
        await asyncio.sleep(0.2)
        # 800k passive declares of amq.direct: each gets a 12-byte declare-ok we never read
        # (~9.6 MB of replies: more than the kernel's socket buffers plus the 4 MiB high mark)
        req = F.marshal(C.Exchange.Declare(exchange="amq.direct", passive=True), 1)
        proto = next(iter(broker.listener.protocols))
        for _ in range(160):
            w.write(req * 5000)
            try:
                await asyncio.wait_for(w.drain(), 3.0)
            except asyncio.TimeoutError:
                if not proto._reading:
                    break                                    # the broker stopped reading us
                # (a slow machine, not a full buffer: keep going)
        for _ in range(100):     # (a loaded machine may still be working through the requests)
            await asyncio.sleep(0.1)
            if not proto._reading:
                break
        buffered = proto.transport.get_write_buffer_size()
        assert buffered < 6 * 1024 * 1024, buffered          # stopped near the 4 MiB high mark
        assert not proto._reading                            # and the flooder is no longer read
        # another client is still served
        other = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F")
        await other.close()
        w.close()


def test_connection_max_holds_new_connections_until_one_closes():
    """RabbitMQ's ``connection_max`` (ranch's max_connections): a connection over the limit is
    not answered -- its protocol header gets no connection.start -- until another closes."""
    from inproc import ThreadedBroker
    from rawamqp import RawConnection
    b = ThreadedBroker(connection_max=2)
    try:
        first = pika.BlockingConnection(pika.URLParameters(b.url))
        second = pika.BlockingConnection(pika.URLParameters(b.url))
        waiting = RawConnection("127.0.0.1", b.broker.port, timeout=0.5)
        waiting.sock.sendall(b"AMQP\x00\x00\x09\x01")
        with pytest.raises(OSError):            # (socket.timeout): nothing comes
            waiting.sock.recv(1)
        first.close()
        waiting.sock.settimeout(10)
        assert waiting.sock.recv(1) == b"\x01"  # connection.start's method frame
        waiting.shutdown()
        second.close()
        pika.BlockingConnection(pika.URLParameters(b.url)).close()
    finally:
        b.stop()
