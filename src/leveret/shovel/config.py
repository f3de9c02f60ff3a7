"""A shovel parameter's validation and parsing, as RabbitMQ 3.10.8's ``rabbit_shovel_parameters``.

Validation gives RabbitMQ's error lines in RabbitMQ's order: the source checks
(``Must specify 'src-exchange' or 'src-queue'``, ``Cannot specify 'src-exchange' and
'src-queue'``, ``Cannot specify 'no-ack' and numerical 'delete-after'``), the destination's
(``Cannot specify 'dest-exchange' and 'dest-queue'``), then ``rabbit_parameter_validation:proplist``
over the keys: unrecognised keys first (sorted, as Erlang lists a map), then each key's
error in the reverse of the constraint list (``proplist`` accumulates by prepending).
Values in messages are printed as Erlang's ``~p`` prints the decoded JSON (``<<"x">>``
binaries, ``#{...}`` maps), without ``~p``'s line wrapping of very long terms.

``src-queue-args`` / ``dest-queue-args`` / ``src-consumer-args`` are checked for unknown keys
only: RabbitMQ runs its argument checkers with the wrong arity there and drops what they say.
A direct ``amqp://`` URI (no host) is checked against the user who sets the parameter (the
management API's; ``rabbitmqctl`` and definitions import check nothing): ``user "u" may not
connect to vhost "v"``. ``amqp10`` shovels are refused (Leveret speaks only AMQP 0-9-1).

Defaults (``parse``): ack-mode ``on-confirm``, reconnect-delay 5 s, prefetch 1000,
delete-after ``never``, src-exchange-key ``""``; the legacy keys ``prefetch-count``,
``delete-after``, ``add-forward-headers``, ``add-timestamp-header``, ``publish-properties``
are read when the ``src-``/``dest-`` ones are absent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DEFAULT_RECONNECT_DELAY = 5
DEFAULT_PREFETCH = 1000

DECLARE_ARGS = ("x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
                "x-dead-letter-strategy", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
                "x-max-in-memory-bytes", "x-max-priority", "x-overflow", "x-queue-mode", "x-queue-version",
                "x-single-active-consumer", "x-queue-type", "x-quorum-initial-group-size", "x-max-age",
                "x-stream-max-segment-size-bytes", "x-initial-cluster-size", "x-queue-leader-locator")
CONSUME_ARGS = ("x-priority", "x-cancel-on-ha-failover", "x-stream-offset")
PROPERTIES = (("content_type", "s"), ("content_encoding", "s"), ("delivery_mode", "n"), ("priority", "n"),
              ("correlation_id", "s"), ("reply_to", "s"), ("expiration", "s"), ("message_id", "s"),
              ("timestamp", "n"), ("type", "s"), ("user_id", "s"), ("app_id", "s"), ("cluster_id", "s"))


# ------------------------------------------------------------ Erlang's ~p of decoded JSON

def _bin(s: str) -> str:
    b = s.encode("utf-8")
    if all(32 <= c < 127 for c in b):
        return '<<"' + s.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(c) for c in b) + ">>"


def erl(v) -> str:
    """``io_lib:format("~p", [V])`` of a JSON value as RabbitMQ decodes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return _bin(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v).replace("e+", "e")
    if isinstance(v, tuple):
        return "{" + ",".join(erl(x) for x in v) + "}"
    if isinstance(v, list):
        if v and all(type(x) is int and (32 <= x < 127) for x in v):   # ~p prints a printable list as a string
            return '"' + "".join(map(chr, v)) + '"'
        return "[" + ",".join(erl(x) for x in v) + "]"
    if isinstance(v, dict):
        return "#{" + ",".join(f"{erl(k)} => {erl(x)}" for k, x in sorted(v.items(), key=_key)) + "}"
    return repr(v)


def _key(kv):
    return kv[0].encode("utf-8")


# ------------------------------------------------------------ rabbit_parameter_validation

def number(name, v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return []
    return [f"{name} should be a number, actually was {erl(v)}"]


def binary(name, v):
    return [] if isinstance(v, str) else [f"{name} should be binary, actually was {erl(v)}"]


def boolean(name, v):
    return [] if isinstance(v, bool) else [f"{name} should be boolean, actually was {erl(v)}"]


def is_list(name, v):
    return [] if isinstance(v, list) else [f"{name} should be list, actually was {erl(v)}"]


def queue_name(name, v):
    if not isinstance(v, str):
        return binary(name, v)
    n = len(v.encode("utf-8"))
    return [] if n <= 255 else [f"{name} should be less than 255 bytes, actually was {n}"]


def enum(options):
    def check(name, v):
        if not isinstance(v, str):
            return [f"{name} should be binary, actually was {erl(v)}"]
        return [] if v in options else [f"{name} should be one of {erl(list(options))}, actually was {erl(v)}"]
    return check


def proplist(name, constraints, term) -> list[str]:
    """``rabbit_parameter_validation:proplist/3``: each constraint ``(key, fun, mandatory)``."""
    if isinstance(term, list):
        present, unknown = {}, list(term)   # a JSON array holds no keys: all of it is unrecognised
    elif isinstance(term, dict):
        present, unknown = dict(term), None
    else:
        return [f"{name} not a list {erl(term)}"]
    results: list[list[str]] = []
    rest = dict(present)
    for key, fun, mandatory in constraints:
        if key in rest:
            results.append(fun(key, rest.pop(key)))
        elif mandatory:
            results.append([f'Key "{key}" not found in {name}'])
    out = [e for r in reversed(results) for e in r]
    if unknown is None:
        unknown = [(k, v) for k, v in sorted(rest.items(), key=_key)]
    if unknown:
        out.insert(0, f"Unrecognised terms {erl(unknown)} in {name}")
    return out


def _keys_only(keys):
    def check(name, v):
        return proplist(name, [(k, lambda n, x: [], False) for k in keys], v)
    return check


def _properties(name, v):
    checks = {"s": binary, "n": number}
    return proplist(name, [(k, checks[t], False) for k, t in PROPERTIES], v)


def delete_after(name, v):
    if v in ("never", "queue-length") or (type(v) is int and v >= 0):
        return []
    return [f'{name} should be a number greater than or equal to 0, "never" or "queue-length", '
            f"actually was {erl(v)}"]


# ------------------------------------------------------------ URIs (amqp_uri:parse)

class URIError(ValueError):
    pass


@dataclass
class URI:
    text: str
    host: str | None
    port: int | None
    vhost: str
    user: str
    password: str
    tls: bool

    @property
    def direct(self) -> bool:
        return self.host is None

    def without_credentials(self) -> str:
        """``amqp_uri:remove_credentials``: what status and ``x-shovelled`` headers show."""
        parts = urlsplit(self.text)
        netloc = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=netloc).geturl() if netloc or parts.netloc else self.text


def parse_uri(text: str) -> URI:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise URIError(f"{{{{unexpected_uri_scheme,{erl([ord(c) for c in scheme]) if scheme else '[]'}}},"
                       f"{erl([ord(c) for c in text]) if text else '[]'}}}")
    try:
        port = parts.port
    except ValueError:
        port_text = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise URIError(f"{{{{port_out_of_range,{port_text}}},{erl([ord(c) for c in text])}}}") from None
    host = parts.hostname or None
    if host is None and port is not None:
        raise URIError(f"{{port_requires_host,{erl([ord(c) for c in text])}}}")
    path = parts.path
    if not path:
        vhost = "/"
    else:
        rest = path[1:]
        if "/" in rest:
            raise URIError(f"{{{{invalid_vhost,{erl([ord(c) for c in rest])}}},{erl([ord(c) for c in text])}}}")
        vhost = unquote(rest)
    return URI(text, host, port if port is not None else (5671 if scheme == "amqps" else 5672) if host else None,
               vhost, unquote(parts.username or "guest"), unquote(parts.password or "guest"), scheme == "amqps")


def uri_check(broker, user):
    def check(name, v):
        if isinstance(v, str):
            try:
                u = parse_uri(v)
            except URIError as e:
                return [f'"{v}" not a valid URI: {e}']
            if u.direct and user is not None:
                if u.vhost not in broker.vhosts or not broker.access.vhost_access(user, u.vhost):
                    return [f'user "{user.name}" may not connect to vhost "{u.vhost}"']
            return []
        if not isinstance(v, list):
            return is_list(name, v)
        for x in v:
            e = check(name, x)
            if e:
                return e
        return []
    return check


# ------------------------------------------------------------ validate/5

def _protocols(d: dict) -> tuple:
    return d.get("src-protocol", "amqp091"), d.get("dest-protocol", "amqp091")


def _pget2(d, a, b):
    return (a in d) + (b in d)


def validate(broker, vhost: str, name: str, value, user=None) -> list[str]:
    """RabbitMQ's error lines for a shovel parameter (empty: it is valid)."""
    if not isinstance(value, dict):
        return [f"{name} not a list {erl(value)}"]
    src_p, dest_p = _protocols(value)
    if "amqp10" in (src_p, dest_p):
        return ["amqp10 shovels are not supported by Leveret (src-protocol and dest-protocol must be amqp091)"]
    errors = []
    n = _pget2(value, "src-exchange", "src-queue")
    if n == 0:
        errors.append("Must specify 'src-exchange' or 'src-queue'")
    elif n == 2:
        errors.append("Cannot specify 'src-exchange' and 'src-queue'")
    da = value.get("src-delete-after", value.get("delete-after"))
    if type(da) is int and value.get("ack-mode") == "no-ack":
        errors.append("Cannot specify 'no-ack' and numerical 'delete-after'")
    if _pget2(value, "dest-exchange", "dest-queue") == 2:
        errors.append("Cannot specify 'dest-exchange' and 'dest-queue'")
    uri = uri_check(broker, user)
    constraints = [
        ("reconnect-delay", number, False),
        ("ack-mode", enum(("no-ack", "on-publish", "on-confirm")), False),
        ("src-protocol", enum(("amqp10", "amqp091")), False),
        ("dest-protocol", enum(("amqp10", "amqp091")), False),
        ("src-uri", uri, True),
        ("src-exchange", binary, False),
        ("src-exchange-key", binary, False),
        ("src-queue", binary, False),
        ("src-queue-args", _keys_only(DECLARE_ARGS), False),
        ("src-consumer-args", _keys_only(CONSUME_ARGS), False),
        ("prefetch-count", number, False),
        ("src-prefetch-count", number, False),
        ("delete-after", delete_after, False),
        ("src-delete-after", delete_after, False),
        ("dest-uri", uri, True),
        ("dest-exchange", binary, False),
        ("dest-exchange-key", binary, False),
        ("dest-queue", queue_name, False),
        ("dest-queue-args", _keys_only(DECLARE_ARGS), False),
        ("add-forward-headers", boolean, False),
        ("add-timestamp-header", boolean, False),
        ("dest-add-forward-headers", boolean, False),
        ("dest-add-timestamp-header", boolean, False),
        ("publish-properties", _properties, False),
        ("dest-publish-properties", _properties, False),
    ]
    return errors + proplist(name, constraints, value)


# ------------------------------------------------------------ parse/3

@dataclass
class ShovelConfig:
    vhost: str
    name: str
    src_uris: list[str]
    dest_uris: list[str]
    src_queue: str | None = None
    src_exchange: str | None = None
    src_exchange_key: str = ""
    src_queue_args: dict = field(default_factory=dict)
    src_consumer_args: dict = field(default_factory=dict)
    prefetch_count: int = DEFAULT_PREFETCH
    delete_after: object = "never"
    dest_queue: str | None = None
    dest_exchange: str | None = None
    dest_exchange_key: str | None = None
    dest_queue_args: dict = field(default_factory=dict)
    publish_properties: dict = field(default_factory=dict)
    add_forward_headers: bool = False
    add_timestamp_header: bool = False
    ack_mode: str = "on-confirm"
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY

    def source_endpoint(self) -> dict:
        """``rabbit_amqp091_shovel:source_endpoint`` as the status shows it."""
        if self.src_queue is None:
            return {"src_exchange": self.src_exchange, "src_exchange_key": self.src_exchange_key}
        return {"src_queue": self.src_queue}

    def dest_endpoint(self) -> dict:
        d = {"dest_exchange": self.dest_exchange, "dest_exchange_key": self.dest_exchange_key,
             "dest_queue": self.dest_queue}
        return {k: v for k, v in sorted(d.items()) if v is not None}

    def header_suffix(self) -> list[tuple[str, str]]:
        """What ``x-shovelled`` names after the URIs: the source's endpoint, then the
        destination's (``Table2``)."""
        src = ([("src-queue", self.src_queue)] if self.src_queue is not None else
               [("src-exchange", self.src_exchange), ("src-exchange-key", self.src_exchange_key)])
        dest = [(k, v) for k, v in (("dest-exchange", self.dest_exchange),
                                    ("dest-exchange-key", self.dest_exchange_key),
                                    ("dest-queue", self.dest_queue)) if v is not None]
        return src + dest


def _uris(v) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def parse(vhost: str, name: str, d: dict) -> ShovelConfig:
    """A valid parameter's value as the worker runs it."""
    return ShovelConfig(
        vhost=vhost, name=name,
        src_uris=_uris(d["src-uri"]), dest_uris=_uris(d["dest-uri"]),
        src_queue=d.get("src-queue"), src_exchange=d.get("src-exchange"),
        src_exchange_key=d.get("src-exchange-key", ""),
        src_queue_args=dict(d.get("src-queue-args") or {}),
        src_consumer_args=dict(d.get("src-consumer-args") or {}),
        prefetch_count=int(d.get("src-prefetch-count", d.get("prefetch-count", DEFAULT_PREFETCH))),
        delete_after=d.get("src-delete-after", d.get("delete-after", "never")),
        dest_queue=d.get("dest-queue"), dest_exchange=d.get("dest-exchange"),
        dest_exchange_key=d.get("dest-exchange-key"),
        dest_queue_args=dict(d.get("dest-queue-args") or {}),
        publish_properties=dict(d.get("dest-publish-properties", d.get("publish-properties")) or {}),
        add_forward_headers=d.get("dest-add-forward-headers", d.get("add-forward-headers", False)),
        add_timestamp_header=d.get("dest-add-timestamp-header", d.get("add-timestamp-header", False)),
        ack_mode=d.get("ack-mode", "on-confirm"),
        reconnect_delay=d.get("reconnect-delay", DEFAULT_RECONNECT_DELAY))
