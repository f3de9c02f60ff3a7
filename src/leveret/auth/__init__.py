"""Authentication and authorisation: users, password hashes, permissions, topic permissions.

The broker owns one :class:`AccessControl`; the channel and connection call its checks.
Imports only ``leveret.amqp`` (for the reply errors) -- see ``access.py`` for the RabbitMQ
behaviour copied.
"""
from .access import PERMS, AccessControl, Permission, TopicPermission, User, compile_regexp  # noqa: F401
