"""Validation of queue x-arguments at declare time, with RabbitMQ's texts.

Mirrors ``rabbit_amqqueue:declare_args/0``: each known argument present is
checked in that fixed order, and the first failure closes the channel with
``406 PRECONDITION_FAILED - invalid arg '<key>' for queue '<q>' in vhost
'<v>': <erlang term>`` (the term printed as Erlang's ``~p`` would print it).
Unknown arguments are accepted and ignored, as in RabbitMQ. Consumer
arguments (``x-priority``) are checked the same way.
"""
from __future__ import annotations

from ..amqp.codec import TYPE_NAMES, Typed
from ..amqp.errors import precondition_failed

INT_TAGS = frozenset("bBsuIilL")
MAX_EXPIRY = 315360000000      # ms: RabbitMQ's ?MAX_EXPIRY_TIMER (ten years)
MAX_PRIORITY = 255
OVERFLOW = (b"drop-head", b"reject-publish", b"reject-publish-dlx")


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


def _overflow(v: Typed, args):
    if v.tag != "S":
        return f"{{unacceptable_type,{_tname(v)}}}"
    return None if _bytes(v.value) in OVERFLOW else "invalid_overflow"


def _bool(v: Typed, args):
    return None if v.tag == "t" else f"{{unacceptable_type,{_tname(v)}}}"


def _queue_mode(v: Typed, args):
    if v.tag != "S":
        return f"{{unacceptable_type,{_tname(v)}}}"
    return None if _bytes(v.value) in (b"default", b"lazy") else "invalid_queue_mode"


def _bytes(v) -> bytes:
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)


VALIDATORS = (
    ("x-expires", _expires),
    ("x-message-ttl", _ttl),
    ("x-dead-letter-exchange", _longstr),
    ("x-dead-letter-routing-key", _dlrk),
    ("x-max-length", _non_neg),
    ("x-max-length-bytes", _non_neg),
    ("x-max-in-memory-length", _non_neg),
    ("x-max-in-memory-bytes", _non_neg),
    ("x-max-priority", _max_priority),
    ("x-overflow", _overflow),
    ("x-queue-mode", _queue_mode),
    ("x-single-active-consumer", _bool),
    ("x-consumer-timeout", _non_neg),
    ("x-message-deduplication", _bool),
    ("x-cache-size", _non_neg),
    ("x-cache-ttl", _non_neg),
)


def check_queue_args(args: dict, what: str) -> None:
    """Raise 406 for the first invalid argument (``what`` is "queue 'q' in vhost 'v'")."""
    dlx = args.get("x-dead-letter-exchange")
    if isinstance(dlx, Typed) and dlx.tag != "S":
        # checked first, with its own text (rabbit_amqqueue's dead-letter exchange check)
        raise precondition_failed(f"invalid type '{_tname(dlx)}' for arg 'x-dead-letter-exchange' in {what}", 50, 10)
    for key, fn in VALIDATORS:
        v = args.get(key)
        if v is None:
            continue
        if not isinstance(v, Typed):
            continue
        err = fn(v, args)
        if err:
            raise precondition_failed(f"invalid arg '{key}' for {what}: {err}", 50, 10)


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
