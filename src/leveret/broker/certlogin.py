"""The user name in a client certificate, for the EXTERNAL SASL mechanism.

RabbitMQ 3.10's ``rabbitmq_auth_mechanism_ssl`` plugin (``rabbit_auth_mechanism_ssl``,
``rabbit_ssl:peer_cert_auth_name``, ``rabbit_cert_info``), copied:

* Nothing is taken from a certificate unless ``ssl_options.verify`` is ``verify_peer``
  (``auth_config_sane``): otherwise the login is refused with "TLS configuration is unsafe".
  A TLS connection without a client certificate is refused with "connection peer presented
  no TLS (x.509) certificate"; no name of the configured kind: "no name found".
* ``distinguished_name``: the subject as RabbitMQ formats it (RFC 4514-like, *not*
  OpenSSL's): the RDNs in reverse certificate order joined by ``,``, the attributes of a
  multi-valued RDN joined by ``+`` in their DER order, type names from RabbitMQ's table
  (``CN``, ``O``, ``OU``, ``C``, ``L``, ``ST``, ``DC``, ``EMAILADDRESS``, ``UID``,
  ``SERIALNUMBER``, ...; unknown types as the dotted OID). Values are escaped byte by byte
  of their UTF-8: a leading space or ``#``, a trailing space and any of ``"+,;<>\\`` get a
  backslash; bytes below 32 or from 126 (``~``) up become ``\\XX`` (upper-case hex), so
  ``Zürich`` is ``Z\\C3\\BCrich``. E.g. ``CN=client,O=client``.
* ``common_name``: every CN value in certificate order, joined by ``,``, unescaped.
* ``subject_alternative_name`` (or ``subject_alt_name``): the ``ssl_cert_login_san_index``-th
  (0-based) SAN of ``ssl_cert_login_san_type`` (``dns``, ``email``, ``uri``, ``ip``,
  ``other_name``). An ``ip`` SAN gives the raw address octets (4 bytes for IPv4), as RabbitMQ
  does; an ``other_name`` its value decoded as an ASN.1 DirectoryString.

Checked against a RabbitMQ 3.10.8 node with the plugin (docs/tls.md, "Checked against
RabbitMQ"). Certificates are parsed with ``cryptography``; the broker never sees a socket:
the I/O layer hands the verified peer certificate (DER) to the connection.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

LOGIN_FROM = ("distinguished_name", "common_name", "subject_alternative_name", "subject_alt_name")
SAN_TYPES = ("dns", "email", "uri", "ip", "other_name")


@functools.cache
def _x509():
    """cryptography's x509 module and the tables built on it, imported at the first EXTERNAL
    login (it costs about 0.1 s of start-up that a broker without TLS never needs)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID, ObjectIdentifier
    san_types = {"dns": x509.DNSName, "email": x509.RFC822Name, "uri": x509.UniformResourceIdentifier,
                 "ip": x509.IPAddress, "other_name": x509.OtherName}
    names = {   # rabbit_cert_info:format_rdn/1
        NameOID.SURNAME: "SN",
        NameOID.GIVEN_NAME: "GIVENNAME",
        NameOID.INITIALS: "INITIALS",
        NameOID.GENERATION_QUALIFIER: "GENERATIONQUALIFIER",
        NameOID.COMMON_NAME: "CN",
        NameOID.LOCALITY_NAME: "L",
        NameOID.STATE_OR_PROVINCE_NAME: "ST",
        NameOID.ORGANIZATION_NAME: "O",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
        NameOID.TITLE: "TITLE",
        NameOID.COUNTRY_NAME: "C",
        NameOID.SERIAL_NUMBER: "SERIALNUMBER",
        NameOID.PSEUDONYM: "PSEUDONYM",
        NameOID.DOMAIN_COMPONENT: "DC",
        NameOID.EMAIL_ADDRESS: "EMAILADDRESS",
        NameOID.STREET_ADDRESS: "STREET",
        ObjectIdentifier("0.9.2342.19200300.100.1.1"): "UID",
    }
    return x509, NameOID, san_types, names


_SPECIAL = frozenset(b'"+,;<>\\')
# ASN.1 DirectoryString tags -> Python codec (rabbit_cert_info:format_directory_string/2)
_DIRECTORY_STRING = {0x0C: "utf-8", 0x13: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


class LoginRefused(Exception):
    """The EXTERNAL login is refused; the message is RabbitMQ's (it goes to the log)."""


def _text(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def escape_rdn_value(raw: bytes) -> str:
    """rabbit_cert_info:escape_rdn_value/1 on a value's UTF-8 bytes."""
    out = []
    last = len(raw) - 1
    for i, c in enumerate(raw):
        if i == 0 and c in (0x20, 0x23):            # leading space or '#'
            out.append("\\" + chr(c))
        elif i == last and c == 0x20:               # trailing space
            out.append("\\ ")
        elif c in _SPECIAL:
            out.append("\\" + chr(c))
        elif c < 32 or c >= 126:
            out.append(f"\\{c:02X}")
        else:
            out.append(chr(c))
    return "".join(out)


def distinguished_name(cert: x509.Certificate) -> str:
    """rabbit_cert_info:subject/1: the subject as RabbitMQ writes it."""
    names = _x509()[3]
    rdns = []
    for rdn in reversed(list(cert.subject.rdns)):
        rdns.append("+".join(f"{names.get(a.oid, a.oid.dotted_string)}={escape_rdn_value(_text(a.value))}"
                             for a in rdn))
    return ",".join(rdns)


def _directory_string(der: bytes) -> bytes:
    """The content of a DER DirectoryString (an otherName SAN's value), re-encoded as UTF-8;
    anything else is returned as it is."""
    try:
        tag, n = der[0], der[1]
        pos = 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(der[2:2 + k], "big")
            pos = 2 + k
        body = der[pos:pos + n]
        if len(body) == n and tag in _DIRECTORY_STRING:
            return body.decode(_DIRECTORY_STRING[tag]).encode("utf-8")
    except (IndexError, UnicodeDecodeError):
        pass
    return der


def _san_value(name) -> bytes:
    x509 = _x509()[0]
    if isinstance(name, x509.IPAddress):
        v = name.value
        if hasattr(v, "netmask"):                   # an IP network SAN: address and mask octets
            return v.network_address.packed + v.netmask.packed
        return v.packed
    if isinstance(name, x509.OtherName):
        return _directory_string(name.value)
    return _text(name.value)


def auth_name(der: bytes | None, settings) -> str:
    """The user name for an EXTERNAL login with peer certificate ``der`` (None: the client sent
    none), or :class:`LoginRefused` with RabbitMQ's reason."""
    if der is None:
        raise LoginRefused("connection peer presented no TLS (x.509) certificate")
    if settings.ssl_verify != "verify_peer":
        raise LoginRefused("TLS configuration is unsafe")
    x509, NameOID, san_types, _ = _x509()
    try:
        cert = x509.load_der_x509_certificate(der)
        mode = settings.ssl_cert_login_from
        if mode == "distinguished_name":
            return distinguished_name(cert)
        if mode == "common_name":
            cns = [_text(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if not cns:
                raise LoginRefused("no name found")
            return b",".join(cns).decode("utf-8", "surrogateescape")
        kind = san_types[settings.ssl_cert_login_san_type]
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = []
        of_type = [n for n in sans if isinstance(n, kind)]
        index = settings.ssl_cert_login_san_index
        if index >= len(of_type):
            raise LoginRefused("no name found")
        return _san_value(of_type[index]).decode("utf-8", "surrogateescape")
    except ValueError as e:                         # a certificate cryptography cannot read
        raise LoginRefused(f"cannot read the peer certificate: {e}") from None
