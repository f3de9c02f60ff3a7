"""Users: names, password hashes, tags.

A password is kept as RabbitMQ's default ``rabbit_password_hashing_sha256``
keeps it: a random 4-byte salt and ``sha256(salt + password)`` (a definitions
export carries ``base64(salt + hash)``). Checking compares in constant time.

A user may have no password (RabbitMQ's ``rabbitmqctl clear_password``, an empty
``password_hash`` in definitions): no password matches, and only a certificate login
(EXTERNAL) lets it in. It is kept as an empty salt and hash.
"""
from __future__ import annotations

import hashlib
import hmac
import os


class User:
    __slots__ = ("name", "salt", "hash", "tags")

    def __init__(self, name: str, password: str | None, tags=()):
        self.name = name
        if password is None:
            self.salt = self.hash = b""
        else:
            self.salt = os.urandom(4)
            self.hash = hashlib.sha256(self.salt + password.encode()).digest()
        self.tags = tuple(tags)

    @classmethod
    def restore(cls, name: str, salt: bytes, hash_: bytes, tags=()) -> "User":
        u = cls.__new__(cls)
        u.name, u.salt, u.hash, u.tags = name, salt, hash_, tuple(tags)
        return u

    def check(self, password: str) -> bool:
        if not self.hash:
            return False
        return hmac.compare_digest(hashlib.sha256(self.salt + password.encode()).digest(), self.hash)
