"""The AMQPS listener's TLS context, built from ``Settings.ssl_*`` (RabbitMQ's ``ssl_options``).

What RabbitMQ 3.10 does with ``listeners.ssl.default`` and ``ssl_options.*``, mapped onto
Python's ``ssl`` (OpenSSL):

* ``certfile``/``keyfile``/``password``: the server's certificate chain and key (the key
  may be encrypted; ``password`` is its passphrase). ``cacertfile``: the CAs client
  certificates are verified against.
* ``verify = verify_none`` (the default): no client certificate is asked for.
  ``verify = verify_peer``: one is asked for and, if sent, must verify against
  ``cacertfile`` (else the handshake fails); with ``fail_if_no_peer_cert = true`` a client
  that sends none is refused too (``CERT_REQUIRED``; without it ``CERT_OPTIONAL``).
* ``versions``: the TLS versions allowed ('tlsv1.3', 'tlsv1.2', 'tlsv1.1', 'tlsv1'); the
  lowest and highest listed bound what is negotiated. ``ciphers``: OpenSSL cipher names for
  TLS 1.2 and below. TLS 1.3 suites (``TLS_AES_...``) cannot be restricted through Python's
  ``ssl`` module: they are accepted in the list and OpenSSL's TLS 1.3 defaults apply.

A setting that cannot work (a missing file, a wrong passphrase, an unknown version or
cipher, an unknown ``ssl_cert_login_*`` value) is a :class:`TLSConfigError` when the broker
starts, never a failure at the first connection.
"""
from __future__ import annotations

import os
import ssl

from ..broker.certlogin import LOGIN_FROM, SAN_TYPES

VERSIONS = {
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1": ssl.TLSVersion.TLSv1,
}


class TLSConfigError(ValueError):
    """The TLS settings cannot make a working listener."""


def check_cert_login(settings) -> None:
    if settings.ssl_cert_login_from not in LOGIN_FROM:
        raise TLSConfigError(f"ssl_cert_login_from must be one of {', '.join(LOGIN_FROM)}, "
                             f"not {settings.ssl_cert_login_from!r}")
    if settings.ssl_cert_login_san_type not in SAN_TYPES:
        raise TLSConfigError(f"ssl_cert_login_san_type must be one of {', '.join(SAN_TYPES)}, "
                             f"not {settings.ssl_cert_login_san_type!r}")
    if not isinstance(settings.ssl_cert_login_san_index, int) or settings.ssl_cert_login_san_index < 0:
        raise TLSConfigError(f"ssl_cert_login_san_index must be an integer >= 0, "
                             f"not {settings.ssl_cert_login_san_index!r}")


def build_context(settings) -> ssl.SSLContext:
    """The server-side ``SSLContext`` for ``settings`` (TLSConfigError if it cannot be made)."""
    s = settings
    check_cert_login(s)
    if not s.ssl_certfile:
        raise TLSConfigError("a TLS listener (ssl_port) needs ssl_certfile (ssl_options.certfile)")
    if s.ssl_verify not in ("verify_none", "verify_peer"):
        raise TLSConfigError(f"ssl_verify must be verify_none or verify_peer, not {s.ssl_verify!r}")
    for what, path in (("ssl_certfile", s.ssl_certfile), ("ssl_keyfile", s.ssl_keyfile),
                       ("ssl_cacertfile", s.ssl_cacertfile)):
        if path and not os.path.isfile(path):
            raise TLSConfigError(f"cannot read {what} {path}: no such file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(s.ssl_certfile, s.ssl_keyfile or None, s.ssl_password)
    except (ssl.SSLError, OSError) as e:
        raise TLSConfigError(f"cannot load the certificate {s.ssl_certfile} and key {s.ssl_keyfile} "
                             f"(wrong file, or wrong ssl_password?): {e}") from None
    if s.ssl_cacertfile:
        try:
            ctx.load_verify_locations(cafile=s.ssl_cacertfile)
        except (ssl.SSLError, OSError) as e:
            raise TLSConfigError(f"cannot load ssl_cacertfile {s.ssl_cacertfile}: {e}") from None
    if s.ssl_verify == "verify_peer":
        ctx.verify_mode = ssl.CERT_REQUIRED if s.ssl_fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if s.ssl_versions:
        try:
            versions = [VERSIONS[v.lower()] for v in s.ssl_versions]
        except (KeyError, AttributeError):
            raise TLSConfigError(f"ssl_versions: each must be one of {', '.join(VERSIONS)}, "
                                 f"not {list(s.ssl_versions)!r}") from None
        ctx.minimum_version = min(versions)
        ctx.maximum_version = max(versions)
    legacy = [c for c in s.ssl_ciphers if not c.startswith("TLS_")]
    if legacy:
        try:
            ctx.set_ciphers(":".join(legacy))
        except ssl.SSLError:
            raise TLSConfigError(f"ssl_ciphers: OpenSSL knows none of {legacy!r}") from None
    return ctx


def peer_certificate(transport) -> bytes | None:
    """The client's certificate (DER) on a TLS transport -- verified, since only a verifying
    context asks for one -- or None."""
    obj = transport.get_extra_info("ssl_object")
    return obj.getpeercert(binary_form=True) if obj is not None else None
