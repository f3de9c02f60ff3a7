"""Users: names, password hashes, tags.

A password is kept as RabbitMQ's default ``rabbit_password_hashing_sha256``
keeps it: a random 4-byte salt and ``sha256(salt + password)`` (a definitions
export carries ``base64(salt + hash)``). Checking compares in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import os


class User:
    __slots__ = ("name", "salt", "hash", "tags")

    def __init__(self, name: str, password: str, tags=()):
        self.name = name
        self.salt = os.urandom(4)
        self.hash = hashlib.sha256(self.salt + password.encode()).digest()
        self.tags = tuple(tags)

    @classmethod
    def restore(cls, name: str, salt: bytes, hash_: bytes, tags=()) -> "User":
        u = cls.__new__(cls)
        u.name, u.salt, u.hash, u.tags = name, salt, hash_, tuple(tags)
        return u

    def check(self, password: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(self.salt + password.encode()).digest(), self.hash)
