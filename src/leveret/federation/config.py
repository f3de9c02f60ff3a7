"""Federation upstreams: validation and resolution, as RabbitMQ 3.10.8's
``rabbit_federation_parameters`` and ``rabbit_federation_upstream``.

* ``federation-upstream``: a JSON object with the mandatory ``uri`` (one URI or a list) and
  the shared keys ``exchange``, ``queue``, ``consumer-tag`` (binaries), ``prefetch-count``,
  ``reconnect-delay``, ``max-hops``, ``expires``, ``message-ttl`` (numbers), ``trust-user-id``,
  ``bind-nowait`` (booleans), ``ack-mode`` (``no-ack``/``on-publish``/``on-confirm``),
  ``resource-cleanup-mode`` (``default``/``never``), ``ha-policy`` (binary),
  ``channel-use-mode`` (``multiple``/``single``). Errors are
  ``rabbit_parameter_validation:proplist``'s lines (the shovel's implementation of it). 3.10.8
  has no ``queue-type`` key (added in 3.13): it is an unrecognised term, as there.
* ``federation-upstream-set``: a list of objects, each with a mandatory ``upstream`` (a name)
  and any shared key overriding the upstream's; each element is validated on its own.
* policies: ``federation-upstream`` (an upstream name), ``federation-upstream-set`` (a set
  name; ``all``: every upstream of the vhost), ``federation-upstream-pattern`` (a regexp over
  upstream names); at most one of them (``validate_policy``).

Resolution (``from_upstream_or_set``): a set element's keys win over the upstream's; defaults
are exchange/queue = the downstream's own name, consumer-tag ``federation-link-<upstream>``,
prefetch 1000, reconnect-delay 5, max-hops 1, ack-mode ``on-confirm``, no expires or TTL.
An element naming an upstream that does not exist is skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..shovel.config import (URIError, binary, boolean, enum, erl, is_list, number, parse_uri,
                             proplist)

DEF_PREFETCH = 1000
KINDS = ("federation-upstream", "federation-upstream-set")
POLICY_KEYS = ("federation-upstream", "federation-upstream-set", "federation-upstream-pattern")


def _uri(name, v):
    """``validate_uri``: a binary that ``amqp_uri:parse`` takes, or a list of them."""
    if isinstance(v, str):
        try:
            parse_uri(v)
        except URIError as e:
            return [f'"{v}" not a valid URI: {e}']
        return []
    if not isinstance(v, list):
        return is_list(name, v)
    for u in v:
        e = _uri(name, u)
        if e:
            return e
    return []


SHARED = [
    ("exchange", binary, False),
    ("queue", binary, False),
    ("consumer-tag", binary, False),
    ("prefetch-count", number, False),
    ("reconnect-delay", number, False),
    ("max-hops", number, False),
    ("expires", number, False),
    ("message-ttl", number, False),
    ("trust-user-id", boolean, False),
    ("ack-mode", enum(("no-ack", "on-publish", "on-confirm")), False),
    ("resource-cleanup-mode", enum(("default", "never")), False),
    ("ha-policy", binary, False),
    ("bind-nowait", boolean, False),
    ("channel-use-mode", enum(("multiple", "single")), False),
]


def validate(component: str, name: str, value) -> list[str]:
    """RabbitMQ's error lines for a federation parameter (empty: valid)."""
    if component == "federation-upstream":
        return proplist(name, [("uri", _uri, True), *SHARED], value)
    if not isinstance(value, list):
        # rabbit_data_coercion:to_proplist over a non-list crashes there (a 500 / badarg);
        # Leveret says what is wrong
        return [f"{name} not a list {erl(value)}"]
    out = []
    for element in value:
        out += proplist(name, [("upstream", binary, True), *SHARED], element)
    return out


# ------------------------------------------------------------ policies (validate_policy)

def _policy_string(what: str):
    def check(v) -> bool:
        return isinstance(v, str)
    return (f"federation upstream {what}", check)


POLICY_CHECKS = {
    "federation-upstream": _policy_string("name"),
    "federation-upstream-set": _policy_string("set name"),
    "federation-upstream-pattern": _policy_string("pattern name"),
}


def policy_error(definition: dict) -> str | None:
    """``validate_policy`` over the federation keys together: not two of them, and a pattern
    that compiles (``re:compile``'s error as ``{Message, Position}``)."""
    keys = [k for k in POLICY_KEYS if k in definition]
    if len(keys) >= 2:
        return "cannot specify federation-upstream, federation-upstream-set or federation-upstream-pattern together"
    pattern = definition.get("federation-upstream-pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as e:
            what = "missing )" if "missing )" in e.msg else e.msg
            return (f"could not compile pattern {pattern} to a regular expression. "
                    f'Error: {{"{what}",{len(pattern)}}}')
    return None


# ------------------------------------------------------------ resolution

@dataclass(frozen=True)
class Upstream:
    """``#upstream{}``: one upstream as a link runs it."""
    name: str
    uris: tuple
    exchange: str
    queue: str
    consumer_tag: str
    prefetch_count: int = DEF_PREFETCH
    reconnect_delay: float = 5
    max_hops: int = 1
    expires: int | None = None
    message_ttl: int | None = None
    trust_user_id: bool = False
    ack_mode: str = "on-confirm"
    ha_policy: str | None = None
    bind_nowait: bool = False
    resource_cleanup_mode: str = "default"
    channel_use_mode: str = "multiple"


def _from(element: dict, name: str, up: dict, own: str) -> Upstream:
    def get(k, default=None):
        v = element.get(k)
        return up.get(k, default) if v is None else v
    uri = get("uri")
    return Upstream(
        name=name, uris=tuple([uri] if isinstance(uri, str) else uri),
        exchange=get("exchange", own), queue=get("queue", own),
        consumer_tag=get("consumer-tag", f"federation-link-{name}"),
        prefetch_count=int(get("prefetch-count", DEF_PREFETCH)),
        reconnect_delay=get("reconnect-delay", 5), max_hops=int(get("max-hops", 1)),
        expires=get("expires"), message_ttl=get("message-ttl"),
        trust_user_id=bool(get("trust-user-id", False)), ack_mode=get("ack-mode", "on-confirm"),
        ha_policy=get("ha-policy"), bind_nowait=bool(get("bind-nowait", False)),
        resource_cleanup_mode=get("resource-cleanup-mode", "default"),
        channel_use_mode=get("channel-use-mode", "multiple"))


def upstreams_for(params: dict, vhost: str, definition: dict, own: str) -> list[Upstream]:
    """The upstreams a policy definition names for the exchange or queue ``own`` of ``vhost``
    (``rabbit_federation_upstream:for/1``). ``params`` is the broker's runtime parameters."""
    def upstream(n):
        return params.get((vhost, "federation-upstream", n))
    if "federation-upstream" in definition:
        elements = [{"upstream": definition["federation-upstream"]}]
    elif "federation-upstream-set" in definition:
        s = definition["federation-upstream-set"]
        if s == "all":
            elements = [{"upstream": n} for (v, c, n) in sorted(params) if v == vhost and c == "federation-upstream"]
        else:
            elements = params.get((vhost, "federation-upstream-set", s)) or []
    elif "federation-upstream-pattern" in definition:
        rx = re.compile(definition["federation-upstream-pattern"])
        elements = [{"upstream": n} for (v, c, n) in sorted(params)
                    if v == vhost and c == "federation-upstream" and rx.search(n)]
    else:
        return []
    out = []
    for e in elements:
        if not isinstance(e, dict):
            continue
        n = e.get("upstream")
        up = upstream(n)
        if isinstance(up, dict):
            out.append(_from(e, n, up, own))
    return out
