"""Queue arguments: the one table that declare validation, equivalence checks and policies read.

Each row of :data:`ARGUMENTS` describes one queue argument as RabbitMQ treats it
(``rabbit_amqqueue:declare_args/0``, ``rabbit_policies``, ``rabbit_queue_type``):

* ``check`` -- its declare-time validator. Present arguments are checked in
  table order, and the first failure closes the channel with ``406
  PRECONDITION_FAILED - invalid arg '<key>' for queue '<q>' in vhost '<v>':
  <erlang term>`` (the term printed as Erlang's ``~p`` would print it).
  Unknown arguments are accepted and ignored, as in RabbitMQ.
* ``policy`` / ``precedence`` / ``policy_check`` -- the policy key that sets
  the same thing, which of the two wins where both are present (``min``: the
  lower value; ``arg``: the queue's own argument), and the policy value check
  with RabbitMQ's noun for it. A row with no x-argument (``ha-mode``...) is a
  policy key only.

Which arguments a queue *type* supports is the type's own list, next to the
type (``classic.py``, ``quorum.py``): an argument another type supports is
refused at declare (``invalid arg '<key>' for queue ... of queue type
rabbit_<type>_queue``) and a policy holding such a key does not apply to the
type at all (``rabbit_queue_type:is_policy_applicable``).

Equivalence on redeclare is the *existing* queue's type's too
(``rabbit_amqqueue:assert_args_equivalence``): exactly the arguments of that
type's RabbitMQ ``queue_arguments`` list are compared, in that list's order
(:attr:`TypeRules.equivalence`), the first difference is the one reported, and
any other argument of the redeclare is ignored (a redeclare is not validated).
"""
from __future__ import annotations

from ...amqp.codec import TYPE_NAMES, Typed, table_plain
from ...amqp.errors import precondition_failed

INT_TAGS = frozenset("bBsuIilL")
MAX_EXPIRY = 315360000000      # ms: RabbitMQ's ?MAX_EXPIRY_TIMER (ten years)
MAX_PRIORITY = 255
OVERFLOW = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_MODES = ("default", "lazy")


# ------------------------------------------------------------ declare-time validators

def _tname(v: Typed) -> str:
    return TYPE_NAMES.get(v.tag, v.tag)


def _int(v: Typed):
    if v.tag not in INT_TAGS:
        return f'"expected integer, got {_tname(v)}"'
    return None


def _non_neg(v: Typed, args):
    return _int(v) or (f"{{value_negative,{v.value}}}" if v.value < 0 else None)


def _expiry(n: int):
    if n < 0:
        return f"{{value_negative,{n}}}"
    if n > MAX_EXPIRY:
        return f"{{value_too_large,{n}}}"
    return None


def _expires(v: Typed, args):
    err = _int(v)
    if err:
        return err
    if v.value == 0:
        return "{value_zero,0}"
    return _expiry(v.value)


def _ttl(v: Typed, args):
    return _int(v) or _expiry(v.value)


def _max_priority(v: Typed, args):
    err = _non_neg(v, args)
    if err:
        return err
    return f"{{max_value_exceeded,{v.value}}}" if v.value > MAX_PRIORITY else None


def _longstr(v: Typed, args):
    return None if v.tag == "S" else f"{{unacceptable_type,{_tname(v)}}}"


def _dlrk(v: Typed, args):
    if v.tag != "S":
        return f"{{unacceptable_type,{_tname(v)}}}"
    return None if "x-dead-letter-exchange" in args else "routing_key_but_no_dlx_defined"


def _one_of(values: tuple, error: str):
    accepted = tuple(x.encode() for x in values)

    def check(v: Typed, args):
        if v.tag != "S":
            return f"{{unacceptable_type,{_tname(v)}}}"
        return None if _bytes(v.value) in accepted else error
    return check


def _bool(v: Typed, args):
    return None if v.tag == "t" else f"{{unacceptable_type,{_tname(v)}}}"


def _bytes(v) -> bytes:
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)


# ------------------------------------------------------------ policy value checks

def _p_non_neg_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _p_pos_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _p_string(v) -> bool:
    return isinstance(v, str)


# ------------------------------------------------------------ the table

class Arg:
    __slots__ = ("name", "check", "policy", "precedence", "policy_check")

    def __init__(self, name, check=None, policy=None, precedence=None, policy_check=None):
        self.name = name                    # the x-argument (None: a policy key only)
        self.check = check
        self.policy = policy
        self.precedence = precedence        # "min" | "arg" | None (the policy key has no effect here)
        self.policy_check = policy_check    # (RabbitMQ's noun, predicate) | None (accepted as is)

    @property
    def key(self) -> str:
        return self.name or self.policy


ARGUMENTS = (
    # name, declare check, policy key, precedence, policy check -- RabbitMQ's order
    Arg("x-expires", _expires, "expires", "min", ("queue expiry", _p_pos_int)),
    Arg("x-message-ttl", _ttl, "message-ttl", "min", ("message TTL", _p_non_neg_int)),
    Arg("x-dead-letter-exchange", _longstr, "dead-letter-exchange", "arg",
        ("dead letter exchange name", _p_string)),
    Arg("x-dead-letter-routing-key", _dlrk, "dead-letter-routing-key", "arg",
        ("dead letter routing key", _p_string)),
    Arg("x-max-length", _non_neg, "max-length", "min", ("maximum length", _p_non_neg_int)),
    Arg("x-max-length-bytes", _non_neg, "max-length-bytes", "min",
        ("maximum length in bytes", _p_non_neg_int)),
    # (RabbitMQ words both checks "maximum memory in bytes")
    Arg("x-max-in-memory-length", _non_neg, "max-in-memory-length", None,
        ("maximum memory in bytes", _p_non_neg_int)),
    Arg("x-max-in-memory-bytes", _non_neg, "max-in-memory-bytes", None,
        ("maximum memory in bytes", _p_non_neg_int)),
    Arg("x-max-priority", _max_priority),
    Arg("x-overflow", _one_of(OVERFLOW, "invalid_overflow"), "overflow", "arg",
        ("overflow value", lambda v: v in OVERFLOW)),
    Arg("x-queue-mode", _one_of(QUEUE_MODES, "invalid_queue_mode"), "queue-mode", None,
        ("queue-mode value", lambda v: v in QUEUE_MODES)),
    Arg("x-single-active-consumer", _bool),
    Arg("x-queue-type", None),            # checked first, by the broker (rabbit_queue_type)
    Arg("x-delivery-limit", None, "delivery-limit", "min", ("delivery limit", _p_non_neg_int)),
    Arg("x-queue-master-locator", None, "queue-master-locator"),
    Arg("x-queue-version", None, "queue-version"),
    Arg("x-consumer-timeout", _non_neg, "consumer-timeout", "min", ("consumer timeout", _p_non_neg_int)),
    Arg("x-message-deduplication", _bool),      # rabbitmq-message-deduplication plugin
    Arg("x-cache-size", _non_neg),
    Arg("x-cache-ttl", _non_neg),
    Arg("x-quorum-initial-group-size"),
    Arg("x-dead-letter-strategy", None, "dead-letter-strategy"),
    Arg("x-queue-leader-locator", None, "queue-leader-locator"),
    # policy keys without an x-argument (classic mirroring: accepted, no effect on one node)
    *(Arg(None, policy=k) for k in ("ha-mode", "ha-params", "ha-sync-mode", "ha-sync-batch-size",
                                    "ha-promote-on-shutdown", "ha-promote-on-failure")),
)
BY_KEY = {a.key: a for a in ARGUMENTS}
BY_NAME = {a.name: a for a in ARGUMENTS if a.name}
BY_POLICY = {a.policy: a for a in ARGUMENTS if a.policy}
VALIDATED = tuple(a for a in ARGUMENTS if a.check is not None)
PRECEDENCE = {a.policy: (a.name, a.precedence) for a in ARGUMENTS if a.precedence}


class TypeRules:
    """What one queue type supports, derived from the table and the type's own list."""

    __slots__ = ("name", "supported", "refused", "policy_unsupported", "policy_wins", "equivalence")

    def __init__(self, name: str, supported: tuple, equivalence: tuple, policy_wins: tuple = ()):
        unknown = [k for k in supported if k not in BY_KEY]
        assert not unknown, f"queue type {name}: arguments missing from the table: {unknown}"
        assert set(equivalence) <= set(supported), f"queue type {name}: compares arguments it does not support"
        self.name = name
        # RabbitMQ's queue_arguments list of the type, in its order: what a redeclare compares
        self.equivalence = equivalence
        self.supported = frozenset(supported)
        self.refused = frozenset(a.name for a in ARGUMENTS if a.name and a.key not in self.supported)
        self.policy_unsupported = frozenset(a.policy for a in ARGUMENTS
                                            if a.policy and a.key not in self.supported)
        self.policy_wins = policy_wins      # policy keys whose value beats the queue's argument


# ------------------------------------------------------------ what the table is read for

def check_queue_args(args: dict, what: str, rules: TypeRules) -> None:
    """Refuse, with RabbitMQ's 406 texts, the first argument the type does not support (in the
    declare's order) and then the first invalid value (in table order)."""
    for k in args:
        if k in rules.refused:
            raise precondition_failed(f"invalid arg '{k}' for {what} of queue type rabbit_{rules.name}_queue", 50, 10)
    dlx = args.get("x-dead-letter-exchange")
    if isinstance(dlx, Typed) and dlx.tag != "S":
        # checked first, with its own text (rabbit_amqqueue's dead-letter exchange check)
        raise precondition_failed(f"invalid type '{_tname(dlx)}' for arg 'x-dead-letter-exchange' in {what}", 50, 10)
    for a in VALIDATED:
        v = args.get(a.name)
        if v is None or not isinstance(v, Typed):
            continue
        err = a.check(v, args)
        if err:
            raise precondition_failed(f"invalid arg '{a.name}' for {what}: {err}", 50, 10)


def _plain_arg(args: dict, key: str):
    v = table_plain(args.get(key))
    if isinstance(v, bytes):
        v = v.decode("utf-8", "surrogateescape")
    return v


def effective_settings(args: dict, policy_definition: dict, rules: TypeRules) -> dict:
    """Each policy key's value for a queue with these x-arguments under a policy (RabbitMQ's
    precedence: ``min`` keys take the lower value, ``arg`` keys the queue's own argument,
    except the keys the type lets the policy win)."""
    pdef = policy_definition
    out = {}
    for key, (argname, rule) in PRECEDENCE.items():
        if key in rules.policy_wins and key in pdef:
            out[key] = pdef[key]
            continue
        a = _plain_arg(args, argname)
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


def merge_operator(definition: dict | None, op: dict | None) -> dict:
    """``rabbit_policy:merge_operator_definitions``: a user policy's and an operator policy's
    definitions as one (keys in both: the lower number; two booleans: the operator's)."""
    out = dict(definition or {})
    for k, ov in (op or {}).items():
        v = out.get(k)
        if v is None:
            out[k] = ov
        elif isinstance(v, bool) and isinstance(ov, bool):
            out[k] = ov
        elif isinstance(v, (int, float)) and isinstance(ov, (int, float)):
            out[k] = min(v, ov)
    return out


def effective_definition(entity) -> dict:
    """The definition in force on a queue or exchange: its policy's merged with its operator
    policy's."""
    p, op = entity.policy, entity.operator_policy
    if op is None:
        return p.definition if p is not None else {}
    return merge_operator(p.definition if p is not None else None, op.definition)


def consumer_priority(args: dict, what: str) -> int:
    """The ``x-priority`` of a basic.consume (0 if absent); 406 if not an integer."""
    v = args.get("x-priority") if args else None
    if v is None:
        return 0
    if not isinstance(v, Typed):
        return int(v) if isinstance(v, int) else 0
    if v.tag not in INT_TAGS:
        raise precondition_failed(f"invalid arg 'x-priority' for {what}: {_int(v)}", 60, 20)
    return v.value
