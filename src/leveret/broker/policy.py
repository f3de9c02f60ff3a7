"""Policies: named, prioritised sets of queue/exchange settings matched by a name pattern.

A policy is RabbitMQ's: ``name``, ``pattern`` (a regular expression searched in
the entity name, unanchored, as Erlang's ``re:run``), ``apply-to`` (``all``,
``queues``, ``exchanges``, as RabbitMQ 3.10), ``priority`` and a
``definition``. At most one policy applies to an entity: the matching one with
the highest priority whose keys the entity's queue type supports (a policy
with ``delivery-limit`` does not apply to a classic queue at all).

Which keys exist, how their values are checked, which queue types support
them and how a policy's value combines with a queue's own x-argument
(RabbitMQ's precedence: for the numeric limits the lower value wins; for
everything else the queue's argument wins, except where the type lets the
policy win) is the queue argument table's (``broker/queue/arguments.py``);
this module matches and validates policies.

Operator policies (``rabbit_policy``'s ``operator_policy`` component) are policies an operator
sets to cap what users' policies may ask for: the same matching (the highest priority
applicable one), only the keys of :data:`OPERATOR_KEYS`, and they combine with the user policy
in force key by key (:func:`merge_operator`, ``rabbit_policy:merge_operator_definitions``): a
key in only one of them is taken from it, a key in both takes the lower value (every operator
key is a numeric limit; two booleans: the operator's). The merged definition then meets the
queue's own x-arguments by the argument table's precedence, as a user policy alone would.
"""
from __future__ import annotations

import re

from .queue.arguments import ARGUMENTS, effective_definition, merge_operator  # noqa: F401 (re-exported)

EXCHANGE_KEYS = ("alternate-exchange",)
# rabbit_policies: the keys registered as operator_policy_validator (all merged by min)
OPERATOR_KEYS = ("expires", "message-ttl", "max-length", "max-length-bytes", "max-in-memory-length",
                 "max-in-memory-bytes", "delivery-limit")
APPLY_TO = ("all", "queues", "exchanges")


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
            bad = entity.RULES.policy_unsupported
            if any(k in bad for k in self.definition):
                return False
        elif a == "queues":
            return False
        return self.regex.search(entity.name) is not None

    def as_dict(self) -> dict:
        return {"vhost": self.vhost, "name": self.name, "pattern": self.pattern, "apply-to": self.apply_to,
                "definition": dict(self.definition), "priority": self.priority}


def _string(v) -> bool:
    return isinstance(v, str)


# key -> (RabbitMQ's "is not a valid ..." noun, check): the queue keys' from the argument table
CHECKS = {a.policy: a.policy_check for a in ARGUMENTS if a.policy and a.policy_check}
CHECKS["alternate-exchange"] = ("alternate exchange name", _string)
# accepted for compatibility with existing RabbitMQ definitions, without effect on one node
ACCEPTED = tuple(a.policy for a in ARGUMENTS if a.policy and not a.policy_check)
# checks over a whole definition that plugin-like features add (``rabbit_policy_validator``s
# that see several keys at once, as federation's "cannot specify ... together")
VALIDATORS: list = []


REGISTERED: set = set()     # the keys register_keys added (federation's), beside the queue arguments


def register_keys(checks: dict, validator=None) -> None:
    """Make policy keys of a plugin-like feature valid: ``checks`` maps each key to its
    ``(noun, check)`` as :data:`CHECKS`; ``validator(definition)`` may refuse a combination
    (it returns RabbitMQ's message, or None)."""
    CHECKS.update(checks)
    REGISTERED.update(checks)
    if validator is not None and validator not in VALIDATORS:
        VALIDATORS.append(validator)


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


def _definition_error(definition, operator: bool = False) -> str | None:
    """``rabbit_policy:validation``: the first bad value, else the unknown keys."""
    if not isinstance(definition, dict) or not definition:
        return "no policy provided"
    for k, v in definition.items():
        check = CHECKS.get(k)
        if check is not None and not check[1](v):
            return f"{erl(v)} is not a valid {check[0]}"
    for validator in VALIDATORS:
        err = validator(definition)
        if err:
            return err
    known = OPERATOR_KEYS if operator else (*CHECKS, *ACCEPTED)
    unknown = {k: v for k, v in definition.items() if k not in known}
    if unknown:
        return f"{erl(unknown)} are not recognised policy settings"
    return None


def _pattern_error(pattern) -> str | None:
    if not isinstance(pattern, str):
        return f"pattern should be a binary but was {erl(pattern)}"
    try:
        re.compile(pattern)
    except re.error as e:
        what = "missing )" if "missing )" in e.msg else e.msg
        return f'pattern should be regular expression but is invalid: {{"{what}",{len(pattern)}}}'
    return None


def _apply_to_error(apply_to) -> str | None:
    if apply_to not in APPLY_TO:
        shown = apply_to if isinstance(apply_to, str) else erl(apply_to)
        return f"apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
    return None


def validate(name: str, pattern: str, definition: dict, priority, apply_to: str) -> None:
    """Raise ValueError with RabbitMQ's message for a policy it would refuse
    (``rabbit_policy:parse_set`` and ``rabbit_policies:validate_policy``)."""
    if not name:
        raise ValueError("policy name must not be empty")
    for err in (_definition_error(definition), _pattern_error(pattern), _apply_to_error(apply_to)):
        if err:
            raise ValueError(err)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ValueError(f"{erl(priority)} is not a valid priority")


def parameter_errors(pattern, definition, priority, apply_to, operator: bool = False) -> list[str]:
    """Every reason RabbitMQ's runtime-parameter validation (the management API's path,
    ``rabbit_policy:set``) gives for this policy, in its order: definition, apply-to, pattern,
    priority (any number is a priority there)."""
    prio = None
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        prio = f"priority should be a number, actually was {erl(priority)}"
    errs = [_definition_error(definition, operator), _apply_to_error(apply_to), _pattern_error(pattern), prio]
    return [e for e in errs if e]


def best(policies, entity) -> Policy | None:
    """The policy that applies to ``entity``: the highest priority among those that match."""
    found = None
    for p in policies:
        if p.applies(entity) and (found is None or p.priority > found.priority):
            found = p
    return found
