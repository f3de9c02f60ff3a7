"""Password hashes as RabbitMQ's internal auth backend keeps them.

``rabbit_password``: a hash is a random 4-byte salt followed by ``H(salt + password)``,
where ``H`` is the user's hashing module -- ``rabbit_password_hashing_sha256`` (the
default), ``rabbit_password_hashing_sha512`` or ``rabbit_password_hashing_md5`` (also the
module of a user whose definitions entry names none, as ``rabbit_password:hashing_mod
(undefined)``). A definitions export carries ``base64(salt + hash)`` as ``password_hash``
and the module name as ``hashing_algorithm``. A user with an empty hash has no password:
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


def algorithm(name: str | None) -> str:
    """The hashing module a definitions entry names (none: md5, as RabbitMQ reads it)."""
    if name is None:
        return "rabbit_password_hashing_md5"
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
