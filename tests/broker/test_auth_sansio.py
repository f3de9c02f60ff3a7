"""Authentication on the wire, without sockets: the sans-I/O BrokerConnection fed pamqp frames.

This is how the loopback-only rule for guest is tested from a non-loopback peer address, which a
test on this machine cannot otherwise produce.
"""
from __future__ import annotations

import pytest
from pamqp import commands as C
from pamqp import frame as F

from leveret import Broker
from leveret.amqp.connection import CLOSED, CLOSING, RUNNING
from leveret.broker.connection import BrokerConnection

from broker_harness import wire_frames as frames

CAPS = {"capabilities": {"authentication_failure_close": True}}


def handshake(peer, user="guest", password="guest", mechanism="PLAIN", props=CAPS):
    b = Broker()
    b.add_user("alice", "secret")
    b.set_permissions("alice", "/", ".*", ".*", ".*")
    c = BrokerConnection(b, peer)
    c.receive_data(b"AMQP\x00\x00\x09\x01")
    assert isinstance(frames(c.data_to_send())[0], C.Connection.Start)
    if mechanism == "PLAIN":
        resp = f"\0{user}\0{password}"
    else:
        from pamqp import encode
        resp = encode.field_table({"LOGIN": user, "PASSWORD": password})[4:].decode("ascii")
    c.receive_data(F.marshal(C.Connection.StartOk(client_properties=props, mechanism=mechanism,
                                                  response=resp), 0))
    return c, frames(c.data_to_send())


@pytest.mark.parametrize("peer", [("10.1.2.3", 40000), ("192.168.0.7", 1), ("2001:db8::1", 2, 0, 0)])
def test_guest_refused_from_remote_peer(peer):
    """guest/guest from a non-loopback address: 403 ACCESS_REFUSED, as RabbitMQ's loopback_users."""
    c, out = handshake(peer)
    assert isinstance(out[0], C.Connection.Close)
    assert out[0].reply_code == 403
    assert out[0].reply_text == ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                                 "For details see the broker logfile.")
    assert c.state in (CLOSING, CLOSED)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_other_users_allowed_from_remote_peer(mechanism):
    """A non-guest user logs in from anywhere, with PLAIN or AMQPLAIN."""
    c, out = handshake(("10.1.2.3", 40000), "alice", "secret", mechanism)
    assert isinstance(out[0], C.Connection.Tune)
    c.receive_data(F.marshal(C.Connection.TuneOk(channel_max=10, frame_max=131072, heartbeat=0), 0))
    c.receive_data(F.marshal(C.Connection.Open(virtual_host="/"), 0))
    assert isinstance(frames(c.data_to_send())[0], C.Connection.OpenOk)
    assert c.state == RUNNING


def test_guest_allowed_from_loopback():
    """guest/guest from 127.0.0.1 gets connection.tune."""
    _, out = handshake(("127.0.0.1", 5555))
    assert isinstance(out[0], C.Connection.Tune)


def test_bad_login_without_capability_drops_silently():
    """Without authentication_failure_close the socket is dropped with no frame, 3 s later
    (RabbitMQ's handle_exception sleeps SILENT_CLOSE_DELAY first)."""
    c, out = handshake(("127.0.0.1", 5555), password="nope", props={})
    assert out == [] and not c.close_socket
    c.tick(c.last_recv + 2.9)
    assert not c.close_socket
    c.tick(c.last_recv + 3.0)
    assert c.close_socket and c.data_to_send() == b""
