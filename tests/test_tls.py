"""TLS (the AMQPS listener) and the EXTERNAL mechanism, with certificates made by the tests.

Real clients (pika, aio-pika, kombu/py-amqp) and raw TLS sockets talk to an in-process Leveret
configured through ``Settings.ssl_*``; ``leveret serve``'s TLS flags run in a subprocess. The
expected EXTERNAL user names (the DN format above all) are what a RabbitMQ 3.10.8 node with
rabbitmq_auth_mechanism_ssl logged for the same certificate subjects (docs/tls.md).
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
import subprocess
import sys

import aio_pika
import kombu
import pika
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pamqp import commands as C

from leveret import Broker, Settings
from leveret.server.tls import TLSConfigError

from conftest import _free_port, _wait_port
from inproc import ThreadedBroker
from rawamqp import ConnectionClosedError, RawConnection

pytestmark = pytest.mark.leveret_only

A = x509.NameAttribute
RDN = x509.RelativeDistinguishedName
# a subject with everything RabbitMQ's DN formatting treats specially
TRICKY_SUBJECT = x509.Name([
    RDN([A(NameOID.COUNTRY_NAME, "GB")]),
    RDN([A(NameOID.DOMAIN_COMPONENT, "example")]),
    RDN([A(NameOID.ORGANIZATION_NAME, "Acme, Inc. <x>"), A(NameOID.ORGANIZATIONAL_UNIT_NAME, "ops+dev")]),
    RDN([A(NameOID.EMAIL_ADDRESS, "a@b.example")]),
    RDN([A(NameOID.USER_ID, "uid1")]),
    RDN([A(x509.ObjectIdentifier("1.2.3.4.5"), "odd")]),
    RDN([A(NameOID.LOCALITY_NAME, 'Zürich ~ "q"; back\\slash')]),
    RDN([A(NameOID.SERIAL_NUMBER, "1234")]),
    RDN([A(NameOID.COMMON_NAME, "#lead and trail ")]),
    RDN([A(NameOID.COMMON_NAME, " second cn")]),
])
TRICKY_SANS = [
    x509.DNSName("one.example"), x509.RFC822Name("me@x.example"), x509.DNSName("two.example"),
    x509.UniformResourceIdentifier("urn:x:client"), x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
    x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x09other@x.y"),
]
# RabbitMQ 3.10.8's user names for that certificate, one per ssl_cert_login_from mode
TRICKY_NAMES = [
    ({"ssl_cert_login_from": "distinguished_name"},
     'CN=\\ second cn,CN=\\#lead and trail\\ ,SERIALNUMBER=1234,L=Z\\C3\\BCrich \\7E \\"q\\"\\; back\\\\slash,'
     '1.2.3.4.5=odd,UID=uid1,EMAILADDRESS=a@b.example,OU=ops\\+dev+O=Acme\\, Inc. \\<x\\>,DC=example,C=GB'),
    ({"ssl_cert_login_from": "common_name"}, "#lead and trail , second cn"),
    ({"ssl_cert_login_from": "subject_alternative_name"}, "one.example"),
    ({"ssl_cert_login_from": "subject_alternative_name", "ssl_cert_login_san_index": 1}, "two.example"),
    ({"ssl_cert_login_from": "subject_alt_name", "ssl_cert_login_san_type": "email"}, "me@x.example"),
    ({"ssl_cert_login_from": "subject_alternative_name", "ssl_cert_login_san_type": "uri"}, "urn:x:client"),
    ({"ssl_cert_login_from": "subject_alternative_name", "ssl_cert_login_san_type": "ip"}, "\n\x01\x02\x03"),
    ({"ssl_cert_login_from": "subject_alternative_name", "ssl_cert_login_san_type": "other_name"}, "other@x.y"),
]
REFUSED = "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile."
EXTERNAL = ("PLAIN", "AMQPLAIN", "EXTERNAL")


class PKI:
    def __init__(self, root):
        self.root = root
        self.ca = trustme.CA()
        self.cafile = self._write("ca.pem", self.ca.cert_pem.bytes())
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.certfile = self._write("server.pem", server.cert_chain_pems[0].bytes())
        self.keyfile = self._write("server.key", server.private_key_pem.bytes())
        key = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
        self.encrypted_keyfile = self._write("server-encrypted.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret")))
        self.simple = self.client("simple", x509.Name([A(NameOID.ORGANIZATION_NAME, "client"),
                                                       A(NameOID.COMMON_NAME, "client")]))
        self.tricky = self.client("tricky", TRICKY_SUBJECT, TRICKY_SANS)
        self.no_cn = self.client("nocn", x509.Name([A(NameOID.ORGANIZATION_NAME, "only-o")]))
        other = trustme.CA()
        stranger = other.issue_cert("client.example", common_name="client")
        self.stranger = (self._write("stranger.pem", stranger.cert_chain_pems[0].bytes()),
                         self._write("stranger.key", stranger.private_key_pem.bytes()))

    def _write(self, name, data):
        p = self.root / name
        p.write_bytes(data)
        return str(p)

    def client(self, name, subject, sans=()):
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30)))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        return (self._write(f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{name}.key", key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption())))

    def settings(self, **kw):
        s = dict(ssl_port=0, ssl_certfile=self.certfile, ssl_keyfile=self.keyfile, ssl_cacertfile=self.cafile)
        s.update(kw)
        return s

    def context(self, cert=None, **kw) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_broker():
    started = []

    def make(**settings):
        b = ThreadedBroker(**settings)
        started.append(b)
        return b
    yield make
    for b in started:
        b.stop()


def raw_tls(pki, port, cert=None, **ctx) -> RawConnection:
    c = RawConnection("127.0.0.1", port)
    c.sock = pki.context(cert, **ctx).wrap_socket(c.sock, server_hostname="localhost")
    return c


def external_params(pki, port, cert):
    return pika.ConnectionParameters("localhost", port, ssl_options=pika.SSLOptions(pki.context(cert), "localhost"),
                                     credentials=pika.credentials.ExternalCredentials())


# --------------------------------------------------------------------------- clients over TLS
def test_pika_publishes_and_consumes_over_tls(pki, make_broker):
    b = make_broker(**pki.settings())
    params = pika.URLParameters(b.broker.ssl_url.replace("127.0.0.1", "localhost"))
    params.ssl_options = pika.SSLOptions(pki.context(), "localhost")
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(100):
        ch.basic_publish("", q, b"m%d" % i + b"x" * 200_000 * (i == 50))
    got = []
    for _, _, body in ch.consume(q, auto_ack=True, inactivity_timeout=10):
        got.append(body)
        if len(got) == 100:
            break
    assert got[0] == b"m0" and got[99] == b"m99" and len(got[50]) == 200_003
    conn.close()


async def aio_round_trip(url: str, ctx: ssl.SSLContext) -> bytes:
    """Connect with aio-pika over TLS, send one message through a queue, return what came back."""
    async with await aio_pika.connect(url, ssl_context=ctx) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"over tls"), routing_key=q.name)
        msg = await q.get(timeout=10)
        await msg.ack()
        return msg.body


async def test_aio_pika_publishes_and_consumes_over_tls(pki, make_broker):
    b = make_broker(**pki.settings())
    assert await aio_round_trip(b.broker.ssl_url.replace("127.0.0.1", "localhost"), pki.context()) == b"over tls"


def test_kombu_publishes_and_consumes_over_tls(pki, make_broker):
    b = make_broker(**pki.settings())
    url = f"amqp://guest:guest@localhost:{b.broker.ssl_port}//"
    with kombu.Connection(url, ssl={"ca_certs": pki.cafile, "cert_reqs": ssl.CERT_REQUIRED,
                                    "server_hostname": "localhost"}) as conn:
        q = kombu.Queue("tls-kombu", exchange=kombu.Exchange("tls-kombu", "direct"), routing_key="k")
        with conn.Producer() as p:
            p.publish({"n": 1}, exchange=q.exchange, routing_key="k", declare=[q], serializer="json")
        sq = q(conn.default_channel)
        m = sq.get(no_ack=True)
        assert m is not None and m.payload == {"n": 1}


# --------------------------------------------------------------------------- mechanisms
def test_external_is_offered_on_tls_only_and_only_when_configured(pki, make_broker):
    """RabbitMQ lists its registry's order ("EXTERNAL PLAIN AMQPLAIN", whatever the order of
    auth_mechanisms), and EXTERNAL only on a TLS socket."""
    b = make_broker(**pki.settings(auth_mechanisms=("AMQPLAIN", "EXTERNAL", "PLAIN")))
    assert raw_tls(pki, b.broker.ssl_port).start().mechanisms == "EXTERNAL PLAIN AMQPLAIN"
    assert RawConnection("127.0.0.1", b.broker.port).start().mechanisms == "PLAIN AMQPLAIN"
    b2 = make_broker(**pki.settings())
    assert raw_tls(pki, b2.broker.ssl_port, pki.simple).start().mechanisms == "PLAIN AMQPLAIN"
    b3 = make_broker(**pki.settings(auth_mechanisms=("EXTERNAL",), ssl_verify="verify_peer"))
    assert raw_tls(pki, b3.broker.ssl_port, pki.simple).start().mechanisms == "EXTERNAL"


def test_a_mechanism_not_offered_is_refused_silently(pki, make_broker):
    """EXTERNAL on the plain listener, or PLAIN when only EXTERNAL is configured: rabbit_reader's
    "invalid authentication mechanism", closed without a frame (as every error before tune)."""
    b = make_broker(**pki.settings(auth_mechanisms=("EXTERNAL",), ssl_verify="verify_peer"))
    c = RawConnection("127.0.0.1", b.broker.port)
    c.start()
    c.start_ok(mechanism="EXTERNAL")
    assert c.wait_closed(10) and c.received == []
    c = raw_tls(pki, b.broker.ssl_port, pki.simple)
    c.start()
    c.start_ok(mechanism="PLAIN")
    assert c.wait_closed(10) and c.received == []


# --------------------------------------------------------------------------- EXTERNAL
@pytest.mark.parametrize("login,name", TRICKY_NAMES, ids=[f"{k['ssl_cert_login_from']}-{n[:12]!r}" for k, n in TRICKY_NAMES])
def test_external_login_takes_the_name_as_rabbitmq_does(pki, make_broker, login, name):
    b = make_broker(**pki.settings(ssl_verify="verify_peer", auth_mechanisms=EXTERNAL, **login))
    b.call(b.broker.add_user, name, None)
    b.call(b.broker.set_permissions, name, "/", ".*", ".*", ".*")
    conn = pika.BlockingConnection(external_params(pki, b.broker.ssl_port, pki.tricky))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    assert ch.basic_get(q, auto_ack=True)[2] == b"x"
    assert [c.user.name for c in b.broker.connections] == [name]
    conn.close()


def test_external_with_aio_pika_and_kombu(pki, make_broker):
    b = make_broker(**pki.settings(ssl_verify="verify_peer", ssl_fail_if_no_peer_cert=True,
                                   auth_mechanisms=EXTERNAL))
    b.call(b.broker.add_user, "CN=client,O=client", None)
    b.call(b.broker.set_permissions, "CN=client,O=client", "/", ".*", ".*", ".*")

    async def aio():
        conn = await aio_pika.connect(f"amqps://localhost:{b.broker.ssl_port}/?auth=external",
                                      ssl_context=pki.context(pki.simple))
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("", exclusive=True)
    asyncio.run(aio())
    tls = {"ca_certs": pki.cafile, "certfile": pki.simple[0], "keyfile": pki.simple[1],
           "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"}
    with kombu.Connection(f"amqp://localhost:{b.broker.ssl_port}//", ssl=tls, login_method="EXTERNAL") as conn:
        conn.connect()
        conn.default_channel.queue_declare("tls-kombu-external", auto_delete=True)


def _refused(pki, b, cert, caplog):
    with caplog.at_level(logging.WARNING, logger="leveret.connection"):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as ei:
            pika.BlockingConnection(external_params(pki, b.broker.ssl_port, cert))
    assert REFUSED in str(ei.value)
    return [r.getMessage() for r in caplog.records if "login refused" in r.getMessage()]


def test_external_refuses_an_unknown_user(pki, make_broker, caplog):
    b = make_broker(**pki.settings(ssl_verify="verify_peer", auth_mechanisms=EXTERNAL))
    logs = _refused(pki, b, pki.simple, caplog)
    assert logs and logs[0].startswith("EXTERNAL login refused: user 'CN=client,O=client' - invalid credentials")


def test_external_refuses_a_client_without_certificate(pki, make_broker, caplog):
    b = make_broker(**pki.settings(ssl_verify="verify_peer", auth_mechanisms=EXTERNAL))
    logs = _refused(pki, b, None, caplog)
    assert logs and logs[0].startswith(
        "EXTERNAL login refused: connection peer presented no TLS (x.509) certificate")


def test_external_without_verify_peer_never_sees_a_certificate(pki, make_broker, caplog):
    """verify_none asks for no client certificate, so none is there to log in with."""
    b = make_broker(**pki.settings(auth_mechanisms=EXTERNAL))
    b.call(b.broker.add_user, "CN=client,O=client", None)
    logs = _refused(pki, b, pki.simple, caplog)
    assert logs and "connection peer presented no TLS (x.509) certificate" in logs[0]


def test_external_refuses_when_the_certificate_has_no_such_name(pki, make_broker, caplog):
    b = make_broker(**pki.settings(ssl_verify="verify_peer", auth_mechanisms=EXTERNAL,
                                   ssl_cert_login_from="common_name"))
    logs = _refused(pki, b, pki.no_cn, caplog)
    assert logs and logs[0].startswith("EXTERNAL login refused: no name found")


def test_external_keeps_loopback_users_on_loopback(pki, make_broker, caplog):
    """check_user_loopback applies to every mechanism: guest named by a certificate is still guest."""
    b = make_broker(**pki.settings(ssl_verify="verify_peer", auth_mechanisms=EXTERNAL,
                                   ssl_cert_login_from="common_name", loopback_users=("client",),
                                   ssl_host="127.0.0.1"))
    b.call(b.broker.add_user, "client", None)
    b.call(b.broker.set_permissions, "client", "/", ".*", ".*", ".*")
    conn = pika.BlockingConnection(external_params(pki, b.broker.ssl_port, pki.simple))   # from 127.0.0.1
    conn.close()
    user, reason = b.call(b.broker.access.login_external, "client", "192.0.2.1")
    assert user is None and reason == "user 'client' can only connect via localhost"


def test_a_user_without_password_cannot_log_in_with_a_password(pki, make_broker):
    b = make_broker(**pki.settings())
    b.call(b.broker.add_user, "certonly", None)
    b.call(b.broker.set_permissions, "certonly", "/", ".*", ".*", ".*")
    for pw in ("", "guest", "x"):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", b.broker.port, credentials=pika.PlainCredentials("certonly", pw)))


# --------------------------------------------------------------------------- handshake refusals
def _handshake_fails(pki, port, cert=None, **ctx):
    """The TLS handshake (or, with TLS 1.3, the first read after it) fails: no connection.start."""
    with pytest.raises((ssl.SSLError, ConnectionClosedError, ConnectionResetError, BrokenPipeError)):
        c = raw_tls(pki, port, cert, **ctx)
        c.start()


def test_fail_if_no_peer_cert_refuses_a_client_without_certificate(pki, make_broker):
    b = make_broker(**pki.settings(ssl_verify="verify_peer", ssl_fail_if_no_peer_cert=True))
    _handshake_fails(pki, b.broker.ssl_port)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        params = pika.ConnectionParameters("localhost", b.broker.ssl_port,
                                           ssl_options=pika.SSLOptions(pki.context(), "localhost"),
                                           connection_attempts=1)
        pika.BlockingConnection(params)
    assert not b.broker.connections
    # with a certificate from the CA it works
    assert raw_tls(pki, b.broker.ssl_port, pki.simple).start().mechanisms == "PLAIN AMQPLAIN"


def test_verify_peer_refuses_a_certificate_from_an_unknown_ca(pki, make_broker):
    b = make_broker(**pki.settings(ssl_verify="verify_peer"))
    _handshake_fails(pki, b.broker.ssl_port, pki.stranger)
    # without verify_peer no certificate is asked for, so the stranger's is never looked at
    b2 = make_broker(**pki.settings())
    assert raw_tls(pki, b2.broker.ssl_port, pki.stranger).start().mechanisms == "PLAIN AMQPLAIN"


def test_a_tls_version_the_listener_does_not_allow_is_refused(pki, make_broker):
    b = make_broker(**pki.settings(ssl_versions=("tlsv1.3",)))
    _handshake_fails(pki, b.broker.ssl_port, maximum_version=ssl.TLSVersion.TLSv1_2)
    c = raw_tls(pki, b.broker.ssl_port)
    assert c.start().mechanisms == "PLAIN AMQPLAIN" and c.sock.version() == "TLSv1.3"
    b2 = make_broker(**pki.settings(ssl_versions=("tlsv1.2",), ssl_ciphers=("ECDHE-ECDSA-AES128-GCM-SHA256",)))
    c = raw_tls(pki, b2.broker.ssl_port)
    c.start()
    assert c.sock.version() == "TLSv1.2" and c.sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


# --------------------------------------------------------------------------- listeners, embedding
def test_the_plain_listener_can_be_switched_off(pki, make_broker):
    port = _free_port()
    b = make_broker(**pki.settings(tcp_listener=False, port=port))
    assert b.broker.port is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    c = raw_tls(pki, b.broker.ssl_port)
    c.handshake()
    c.close()


async def test_embedded_broker_with_ssl_settings(pki):
    """The embedding API: Settings with ssl_* fields; ssl_port and ssl_url once started."""
    s = Settings(port=0, ssl_port=0, ssl_certfile=pki.certfile, ssl_keyfile=pki.encrypted_keyfile,
                 ssl_password="s3cret", ssl_cacertfile=pki.cafile, ssl_host="localhost")
    async with Broker(s) as broker:
        assert broker.ssl_url == f"amqps://guest:guest@localhost:{broker.ssl_port}/%2F"
        assert await aio_round_trip(broker.ssl_url, pki.context()) == b"over tls"


@pytest.mark.parametrize("change,text", [
    ({"ssl_certfile": None}, "needs ssl_certfile"),
    ({"ssl_certfile": "/nonexistent/cert.pem"}, "/nonexistent/cert.pem"),
    ({"ssl_keyfile": "ENCRYPTED", "ssl_password": "wrong"}, "wrong ssl_password"),
    ({"ssl_cacertfile": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"),
    ({"ssl_verify": "verify_always"}, "verify_none or verify_peer"),
    ({"ssl_versions": ("tlsv9",)}, "ssl_versions"),
    ({"ssl_ciphers": ("NO-SUCH-CIPHER",)}, "ssl_ciphers"),
    ({"ssl_cert_login_from": "serial"}, "ssl_cert_login_from"),
    ({"ssl_cert_login_san_type": "dirName"}, "ssl_cert_login_san_type"),
])
async def test_bad_tls_settings_are_clear_errors_at_start(pki, change, text):
    s = pki.settings(port=0, **change)
    if s.get("ssl_keyfile") == "ENCRYPTED":
        s["ssl_keyfile"] = pki.encrypted_keyfile
    broker = Broker(Settings(**s))
    with pytest.raises(TLSConfigError, match=text.replace("(", r"\(")):
        await broker.start()


def test_serve_with_tls_flags(pki, tmp_path):
    """`leveret serve --ssl-port ... --no-tcp-listener`: TLS only, EXTERNAL offered when asked."""
    port, ssl_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(port), "--data-dir", str(tmp_path),
                             "--ssl-port", str(ssl_port), "--ssl-certfile", pki.certfile, "--ssl-keyfile", pki.keyfile,
                             "--ssl-cacertfile", pki.cafile, "--ssl-verify-peer", "--ssl-fail-if-no-peer-cert",
                             "--auth-mechanisms", "PLAIN,AMQPLAIN,EXTERNAL", "--no-tcp-listener"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert f"amqps://127.0.0.1:{ssl_port}" in line and "listening" in line and f":{port}" not in line
        _wait_port("127.0.0.1", ssl_port, proc)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        c = raw_tls(pki, ssl_port, pki.simple)
        assert c.start().mechanisms == "EXTERNAL PLAIN AMQPLAIN"
        c.start_ok()
        c.expect(C.Connection.Tune)
        _handshake_fails(pki, ssl_port)
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_with_a_missing_certificate_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-m", "leveret", "serve", "--port", str(_free_port()), "--data-dir",
                        str(tmp_path), "--ssl-port", str(_free_port()), "--ssl-certfile", "/nonexistent.pem"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "TLS listener: cannot read ssl_certfile /nonexistent.pem: no such file" in r.stderr


def test_a_tls_only_broker_from_rabbitmq_conf(pki, tmp_path):
    """What the TLS test suites of the client libraries need: ``leveret serve --config`` with
    RabbitMQ's own keys -- TLS on a port, the plain listener off, verify_peer, EXTERNAL."""
    port = _free_port()
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(f"listeners.tcp = none\n"
                    f"listeners.ssl.default = 127.0.0.1:{port}\n"
                    f"ssl_options.cacertfile = {pki.cafile}\n"
                    f"ssl_options.certfile = {pki.certfile}\n"
                    f"ssl_options.keyfile = {pki.keyfile}\n"
                    f"ssl_options.verify = verify_peer\n"
                    f"ssl_options.fail_if_no_peer_cert = true\n"
                    f"auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = EXTERNAL\n"
                    f"ssl_cert_login_from = common_name\n"
                    f"default_user = client\ndefault_pass = unused-password\n")
    (tmp_path / "data").mkdir()
    p = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--config", str(conf), "--data-dir",
                          str(tmp_path / "data")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = p.stdout.readline()
        while line and "listening on" not in line:
            line = p.stdout.readline()
        assert f"amqps://127.0.0.1:{port}" in line and "amqp://" not in line.replace("amqps://", ""), line
        conn = pika.BlockingConnection(external_params(pki, port, pki.simple))     # CN=client
        ch = conn.channel()
        ch.queue_declare("tls-from-conf", auto_delete=True)
        ch.basic_publish("", "tls-from-conf", b"over tls")
        assert ch.basic_get("tls-from-conf", auto_ack=True)[2] == b"over tls"
        conn.close()
    finally:
        p.terminate()
        p.wait(10)


def _client_suites():
    """tools/client_suites.py (not a package) as a module."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "tools" / "client_suites.py"
    spec = importlib.util.spec_from_file_location("client_suites", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("suite", ["aiormq", "py-amqp"])
def test_the_client_suites_tls_conf_starts_leveret_as_their_ci_starts_rabbitmq(pki, tmp_path, suite):
    """``scripts/client-suites --tls`` starts Leveret from the rabbitmq.conf a suite's TLS tests
    need (docs/tls.md): plain and TLS listeners, verify_peer, and fail_if_no_peer_cert as that
    suite's CI broker has it (aiormq's and aio-pika's: false, py-amqp's: true)."""
    cs = _client_suites()
    setup = next(s for s in cs.SUITES if s.name == suite)
    port, ssl_port = _free_port(), _free_port()
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(cs.rabbitmq_conf(setup, {"cacertfile": pki.cafile, "certfile": pki.certfile,
                                             "keyfile": pki.keyfile}, port, ssl_port))
    with cs.LeveretServer(tmp_path / "leveret.log", conf, port) as server:
        assert server.url == f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        pika.BlockingConnection(pika.URLParameters(server.url)).close()
        c = raw_tls(pki, ssl_port, pki.simple)       # aiormq's amqps-client, py-amqp's tls
        c.start()
        c.start_ok()
        c.expect(C.Connection.Tune)
        c.shutdown()
        if setup.tls.fail_if_no_peer_cert:
            _handshake_fails(pki, ssl_port)
        else:                                       # aiormq's amqps, aio-pika's test_amqps
            c = raw_tls(pki, ssl_port)
            c.start()
            c.shutdown()
        _handshake_fails(pki, ssl_port, pki.stranger)   # a certificate from another CA
