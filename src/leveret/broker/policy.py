"""Policies: named, prioritised sets of queue/exchange settings matched by a name pattern.

A policy is RabbitMQ's: ``name``, ``pattern`` (a regular expression searched in
the entity name, unanchored, as Erlang's ``re:run``), ``apply-to`` (``all``,
``queues``, ``exchanges``, ``classic_queues``, ``quorum_queues``), ``priority``
and a ``definition``. At most one policy applies to an entity: the matching one
with the highest priority.

Where a queue also has the matching x-argument, RabbitMQ's precedence holds
(``rabbit_amqqueue_process``, ``rabbit_quorum_queue``): for the numeric limits
the lower value wins; for everything else the queue's own argument wins.
"""
from __future__ import annotations

import re

from ..amqp.codec import table_plain

# policy key -> (x-argument, rule); "min": the lower of the two; "arg": the argument wins
QUEUE_KEYS = {
    "message-ttl": ("x-message-ttl", "min"),
    "expires": ("x-expires", "min"),
    "max-length": ("x-max-length", "min"),
    "max-length-bytes": ("x-max-length-bytes", "min"),
    "overflow": ("x-overflow", "arg"),
    "dead-letter-exchange": ("x-dead-letter-exchange", "arg"),
    "dead-letter-routing-key": ("x-dead-letter-routing-key", "arg"),
    "delivery-limit": ("x-delivery-limit", "min"),
    "consumer-timeout": ("x-consumer-timeout", "min"),
}
EXCHANGE_KEYS = ("alternate-exchange",)
QUORUM_POLICY_WINS = ("expires", "overflow")     # rabbit_quorum_queue: the policy's value wins
OVERFLOW = ("drop-head", "reject-publish", "reject-publish-dlx")
APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues")
_NON_NEG = ("message-ttl", "max-length", "max-length-bytes", "delivery-limit", "consumer-timeout")


class Policy:
    __slots__ = ("vhost", "name", "pattern", "apply_to", "definition", "priority", "regex")

    def __init__(self, vhost: str, name: str, pattern: str, definition: dict, priority: int = 0,
                 apply_to: str = "all"):
        self.vhost = vhost
        self.name = name
        self.pattern = pattern
        self.definition = dict(definition)
        self.priority = priority
        self.apply_to = apply_to
        self.regex = re.compile(pattern)

    def applies(self, entity) -> bool:
        a = self.apply_to
        if entity.kind == "queue":
            if a == "exchanges" or (a == "classic_queues" and entity.queue_type != "classic") or \
                    (a == "quorum_queues" and entity.queue_type != "quorum"):
                return False
        elif a not in ("all", "exchanges"):
            return False
        return self.regex.search(entity.name) is not None

    def as_dict(self) -> dict:
        return {"vhost": self.vhost, "name": self.name, "pattern": self.pattern, "apply-to": self.apply_to,
                "definition": dict(self.definition), "priority": self.priority}


def validate(name: str, pattern: str, definition: dict, priority, apply_to: str) -> None:
    """Raise ValueError with a clear message for a policy RabbitMQ would refuse."""
    if not name:
        raise ValueError("policy name must not be empty")
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid pattern '{pattern}': {e}") from None
    if apply_to not in APPLY_TO:
        raise ValueError(f"'{apply_to}' is not a valid apply-to value (one of {', '.join(APPLY_TO)})")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ValueError(f"priority must be an integer, got {priority!r}")
    if not isinstance(definition, dict) or not definition:
        raise ValueError("a policy definition must be a non-empty JSON object")
    for k, v in definition.items():
        if k in _NON_NEG:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{k} must be a non-negative integer, got {v!r}")
        elif k == "expires":
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"expires must be a positive integer, got {v!r}")
        elif k == "overflow":
            if v not in OVERFLOW:
                raise ValueError(f"overflow must be one of {', '.join(OVERFLOW)}, got {v!r}")
        elif k in ("dead-letter-exchange", "dead-letter-routing-key", "alternate-exchange"):
            if not isinstance(v, str):
                raise ValueError(f"{k} must be a string, got {v!r}")
        else:
            raise ValueError(f"unrecognised policy key '{k}'")


def best(policies, entity) -> Policy | None:
    """The policy that applies to ``entity``: the highest priority among those that match."""
    found = None
    for p in policies:
        if p.applies(entity) and (found is None or p.priority > found.priority):
            found = p
    return found


def _arg(args: dict, key: str):
    v = table_plain(args.get(key))
    if isinstance(v, bytes):
        v = v.decode("utf-8", "surrogateescape")
    return v


def effective_queue_settings(args: dict, policy: Policy | None, queue_type: str = "classic") -> dict:
    """Each policy key's value for a queue with these x-arguments under ``policy``."""
    pdef = policy.definition if policy is not None else {}
    out = {}
    for key, (argname, rule) in QUEUE_KEYS.items():
        if queue_type == "quorum" and key in QUORUM_POLICY_WINS and key in pdef:
            out[key] = pdef[key]
            continue
        a = _arg(args, argname)
        p = pdef.get(key)
        if isinstance(a, bool) or (rule == "min" and not isinstance(a, int)):
            a = None
        elif key == "delivery-limit" and a < 0:
            a = 0           # RabbitMQ 3.10 takes -1 as 0
        if a is None:
            out[key] = p
        elif p is None or rule == "arg":
            out[key] = a
        else:
            out[key] = min(a, p)
    return out
