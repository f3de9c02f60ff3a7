"""Policies: named, prioritised sets of queue/exchange settings matched by a name pattern.

A policy is RabbitMQ's: ``name``, ``pattern`` (a regular expression searched in
the entity name, unanchored, as Erlang's ``re:run``), ``apply-to`` (``all``,
``queues``, ``exchanges``, as RabbitMQ 3.10), ``priority`` and a
``definition``. At most one policy applies to an entity: the matching one with
the highest priority whose keys the entity's queue type supports (a policy
with ``delivery-limit`` does not apply to a classic queue at all).

Where a queue also has the matching x-argument, RabbitMQ's precedence holds
(``rabbit_amqqueue_process``, ``rabbit_quorum_queue``): for the numeric limits
the lower value wins; for everything else the queue's own argument wins,
except that a quorum queue takes ``expires`` and ``overflow`` from the policy.
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
APPLY_TO = ("all", "queues", "exchanges")
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
            if a == "exchanges":
                return False
            # rabbit_queue_type:is_policy_applicable: no key the queue type does not support
            bad = UNSUPPORTED.get(entity.queue_type, ())
            if any(k in bad for k in self.definition):
                return False
        elif a == "queues":
            return False
        return self.regex.search(entity.name) is not None

    def as_dict(self) -> dict:
        return {"vhost": self.vhost, "name": self.name, "pattern": self.pattern, "apply-to": self.apply_to,
                "definition": dict(self.definition), "priority": self.priority}


# key -> (RabbitMQ's "is not a valid ..." noun, check)
def _non_neg_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _pos_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _string(v) -> bool:
    return isinstance(v, str)


CHECKS = {
    "message-ttl": ("message TTL", _non_neg_int),
    "expires": ("queue expiry", _pos_int),
    "max-length": ("maximum length", _non_neg_int),
    "max-length-bytes": ("maximum length in bytes", _non_neg_int),
    "delivery-limit": ("delivery limit", _non_neg_int),
    "consumer-timeout": ("consumer timeout", _non_neg_int),
    "dead-letter-exchange": ("dead letter exchange name", _string),
    "dead-letter-routing-key": ("dead letter routing key", _string),
    "alternate-exchange": ("alternate exchange name", _string),
    "overflow": ("overflow value", lambda v: v in OVERFLOW),
    "queue-mode": ("queue-mode value", lambda v: v in ("default", "lazy")),
}
# accepted for compatibility with existing RabbitMQ definitions, without effect on one node
ACCEPTED = ("ha-mode", "ha-params", "ha-sync-mode", "ha-sync-batch-size", "ha-promote-on-shutdown",
            "ha-promote-on-failure", "queue-master-locator", "queue-leader-locator", "max-in-memory-length",
            "max-in-memory-bytes", "dead-letter-strategy", "queue-version")
# keys a queue type does not support: a policy holding one does not apply to such a queue
UNSUPPORTED = {
    "classic": frozenset(("delivery-limit", "dead-letter-strategy", "max-in-memory-length", "max-in-memory-bytes",
                          "queue-leader-locator")),
    "quorum": frozenset(("max-priority", "queue-mode", "queue-version", "queue-master-locator", "ha-mode",
                         "ha-params", "ha-sync-mode", "ha-sync-batch-size", "ha-promote-on-shutdown",
                         "ha-promote-on-failure")),
}


def erl(v) -> str:
    """A JSON value as RabbitMQ's messages print it (Erlang terms)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return '<<"' + v.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(v, list):
        return "[" + ",".join(erl(x) for x in v) + "]"
    if isinstance(v, dict):
        return "[" + ",".join("{" + erl(k) + "," + erl(x) + "}" for k, x in v.items()) + "]"
    return repr(v)


def validate(name: str, pattern: str, definition: dict, priority, apply_to: str) -> None:
    """Raise ValueError with RabbitMQ's message for a policy it would refuse
    (``rabbit_policy:parse_set`` and ``rabbit_policies:validate_policy``)."""
    if not name:
        raise ValueError("policy name must not be empty")
    if not isinstance(definition, dict) or not definition:
        raise ValueError("no policy provided")
    for k, v in definition.items():
        check = CHECKS.get(k)
        if check is not None and not check[1](v):
            raise ValueError(f"{erl(v)} is not a valid {check[0]}")
    unknown = {k: v for k, v in definition.items() if k not in CHECKS and k not in ACCEPTED}
    if unknown:
        raise ValueError(f"{erl(unknown)} are not recognised policy settings")
    try:
        re.compile(pattern)
    except re.error as e:
        what = "missing )" if "missing )" in e.msg else e.msg
        raise ValueError(f'pattern should be regular expression but is invalid: {{"{what}",{len(pattern)}}}') from None
    if apply_to not in APPLY_TO:
        raise ValueError(f"apply-to '{apply_to}' unrecognised; should be 'queues', 'exchanges' or 'all'")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ValueError(f"{erl(priority)} is not a valid priority")


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
