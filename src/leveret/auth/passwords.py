"""Password hashes as RabbitMQ's internal auth backend keeps them.

``rabbit_password``: a hash is a random 4-byte salt followed by ``H(salt + password)``,
where ``H`` is the user's hashing module -- ``rabbit_password_hashing_sha256`` (the
default), ``rabbit_password_hashing_sha512`` or ``rabbit_password_hashing_md5``. A
definitions export carries ``base64(salt + hash)`` as ``password_hash`` and the module name
as ``hashing_algorithm``. An entry that names no module gets, as in
``rabbit_auth_backend_internal:hashing_algorithm/2`` (3.10), md5 when the definitions say
they come from RabbitMQ 3.0-3.5 (``rabbitmq_version``, else ``rabbit_version``), and the
node's default module, sha256, otherwise -- also when they name no version (checked
against RabbitMQ 3.10.8's ``POST /api/definitions``: an md5 hash then does not log in). A user with an empty hash has no password:
it can log in only with a certificate (EXTERNAL). Checking compares in constant time.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

DEFAULT_ALGORITHM = "rabbit_password_hashing_sha256"
ALGORITHMS = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}


PRE_3_6 = ("3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5.")


def algorithm(name: str | None, version: str | None = None) -> str:
    """The hashing module of a definitions entry naming ``name`` (None: by the definitions'
    RabbitMQ ``version``, as the module docstring says)."""
    if name is None:
        if isinstance(version, str) and version.startswith(PRE_3_6):
            return "rabbit_password_hashing_md5"
        return DEFAULT_ALGORITHM
    if name not in ALGORITHMS:
        raise ValueError(f"unknown password hashing algorithm '{name}'")
    return name


def hash_password(password: str, algo: str = DEFAULT_ALGORITHM) -> bytes:
    salt = os.urandom(4)
    return salt + ALGORITHMS[algo](salt + password.encode("utf-8")).digest()


def check_password(password: str, password_hash: bytes, algo: str) -> bool:
    if len(password_hash) <= 4:
        return False
    salt = password_hash[:4]
    digest = ALGORITHMS[algo](salt + password.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(digest, password_hash[4:])


def encode_hash(password_hash: bytes) -> str:
    return base64.b64encode(password_hash).decode("ascii")


def decode_hash(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"invalid password_hash '{text}'") from None
