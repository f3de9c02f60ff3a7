"""RabbitMQ's ``rabbitmq.conf`` (the "new" sysctl-like cuttlefish format), read into :class:`Settings`.

The syntax is cuttlefish 3.0.1's, the version RabbitMQ 3.10.8 ships (checked against it):

* one ``key = value`` per line; blank lines and lines of spaces/tabs are skipped;
* ``#`` starts a comment anywhere, even inside a value (``default_pass = a#b`` sets ``a``);
  there is no quoting (``'x'`` is the three characters ``'x'``), a value is the rest of the
  line with its surrounding spaces/tabs removed, and an empty value is a syntax error;
* a key is dot-separated words of ``A-Z a-z 0-9 _ -`` (``\\.`` is a dot inside a word) and is
  case-sensitive; a key set twice takes its last value;
* ``include PATTERN`` reads the files matching a glob, a relative pattern resolved against
  the including file's directory; a pattern matching nothing is skipped (RabbitMQ does so
  silently; here with a warning);
* the file is UTF-8 (RabbitMQ refuses anything else too).

Values are typed as RabbitMQ's schema (``deps/rabbit/priv/schema/rabbit.schema`` and the
management and prometheus plugins' schemas, 3.10.8) types them: an integer is ``[+-]digits``;
a float needs digits on both sides of its dot (``0.6``, not ``1`` nor ``.6``); a listener is a
port or ``IP:PORT`` (``::1:5672``; ``[::1]:5672`` is also accepted here); ``frame_max`` takes
``KB``/``MB``/``GB`` (powers of 1024); absolute memory and disk sizes take RabbitMQ's
information units (``k``/``kiB``/``KiB``... = 1024, ``kB``/``KB``... = 1000; ``M``, ``G`` alike);
files named by ``ssl_options.*file`` and ``load_definitions`` must exist and be readable when
the file is read (RabbitMQ's ``file_accessible`` validator). The cross-key rules are
RabbitMQ's translations: ``listeners.tcp = none`` wins over ``listeners.tcp.*``;
``*.relative`` wins over ``*.absolute`` for the memory watermark and the disk limit; setting
any ``loopback_users.NAME`` replaces the default list (only the names set to ``true`` stay
loopback-only); ``default_permissions`` needs all of ``configure``, ``read`` and ``write``.

Where Leveret is stricter than RabbitMQ (each refusal names the key and its line), the value
would break the broker or cannot be honoured: ports outside 0..65535, a negative heartbeat,
``frame_max`` below 4096, ``channel_max`` outside 1..65535, a relative limit below 0,
several ``listeners.tcp.*`` (or ``listeners.ssl.*``) addresses (Leveret listens on one),
``loopback_users.NAME`` / ``default_user_tags.NAME`` values other than ``true``/``false``,
``auth_backends.*`` other than ``internal`` (a user who asked for LDAP must not silently get
the internal database), a TLS version not in ``tlsv1``..``tlsv1.3``.

Every key Leveret applies is listed in :data:`HANDLERS`. A key RabbitMQ 3.10.8 knows (its own
schema or a plugin's, :mod:`leveret.config.rabbitmq_keys`) but Leveret has no use for
(``cluster_formation.*``, ``mqtt.*``, ``log.file.rotation.*``...) is ignored with a warning;
anything else is an error, with a suggestion when a known key is close. Only
:class:`ConfigError` ever leaves :func:`parse` (a fuzz test holds it to that).
"""
from __future__ import annotations

import dataclasses
import difflib
import glob
import ipaddress
import math
import os
import re
from typing import Callable

from ..settings import Settings
from .rabbitmq_keys import KEYS as RABBITMQ_KEYS

__all__ = ["ConfigError", "Entry", "HANDLERS", "LOG_LEVELS", "load", "parse", "read_entries"]

MAX_INCLUDE_DEPTH = 8


class ConfigError(ValueError):
    """A config file error: ``str()`` is ``<file>:<line>: <message>`` (``<file>: ...`` without a line)."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


@dataclasses.dataclass
class Entry:
    """One ``key = value`` line."""
    key: tuple[str, ...]
    value: str
    path: str
    line: int

    @property
    def name(self) -> str:
        return ".".join(self.key)

    def error(self, message: str) -> ConfigError:
        return ConfigError(self.path, self.line, f"{self.name}: {message}")


# ------------------------------------------------------------------ syntax

_WORD = r"(?:\\\.|[A-Za-z0-9_-])+"
_SETTING = re.compile(rf"[ \t]*({_WORD}(?:\.{_WORD})*)[ \t]*=[ \t]*([^#]*)(?:#.*)?")
_INCLUDE = re.compile(r"[ \t]*include[ \t]+([A-Za-z0-9\-_.*/]+)[ \t]*(?:#.*)?")
_BLANK = re.compile(r"[ \t]*(?:#.*)?")
_DOTS = re.compile(r"(?:\\\.|[^.])+")


def read_entries(data: str | bytes, path: str = "<string>", _depth: int = 0) -> tuple[list[Entry], list[str]]:
    """The ``key = value`` lines of a file (includes expanded), and warnings."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(path, bytes(data)[:e.start].count(b"\n") + 1, "not valid UTF-8") from None
    entries: list[Entry] = []
    warnings: list[str] = []
    lines = data.split("\n")
    for n, raw in enumerate(lines, 1):
        if raw.endswith("\r"):
            raw = raw[:-1]
        m = _SETTING.fullmatch(raw)
        if m is not None:
            value = m.group(2).rstrip(" \t")
            if not value:
                raise ConfigError(path, n, f"{m.group(1)}: no value after '='")
            key = tuple(w.replace("\\.", ".") for w in _DOTS.findall(m.group(1)))
            entries.append(Entry(key, value, path, n))
            continue
        m = _INCLUDE.fullmatch(raw)
        if m is not None:
            entries += _include(m.group(1), path, n, _depth, warnings)
            continue
        if _BLANK.fullmatch(raw) is None:
            raise ConfigError(path, n, "syntax error: expected 'key = value', 'include FILE' or a # comment")
    return entries, warnings


def _include(pattern: str, path: str, line: int, depth: int, warnings: list[str]) -> list[Entry]:
    if depth >= MAX_INCLUDE_DEPTH:
        raise ConfigError(path, line, f"include {pattern}: includes nested more than {MAX_INCLUDE_DEPTH} deep "
                                      "(a file including itself?)")
    if not os.path.isabs(pattern) and path != "<string>":
        pattern = os.path.join(os.path.dirname(os.path.abspath(path)), pattern)
    files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
    if not files:
        warnings.append(f"{path}:{line}: include {pattern}: no such file (skipped)")
    out: list[Entry] = []
    for f in files:
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise ConfigError(path, line, f"include {f}: {e.strerror}") from None
        entries, more = read_entries(data, f, depth + 1)
        out += entries
        warnings += more
    return out


# ------------------------------------------------------------------ value types

def integer(e: Entry, least: int | None = None, most: int | None = None) -> int:
    if re.fullmatch(r"[+-]?[0-9]+", e.value) is None:
        raise e.error(f"{e.value!r} is not an integer")
    v = int(e.value)
    if (least is not None and v < least) or (most is not None and v > most):
        bounds = f"at least {least}" if most is None else f"between {least} and {most}"
        raise e.error(f"{v} is out of range (must be {bounds})")
    return v


def floating(e: Entry) -> float:
    if re.fullmatch(r"[+-]?[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?", e.value) is None:
        raise e.error(f"{e.value!r} is not a float (write it with a decimal point, e.g. 0.6 or 1.0)")
    v = float(e.value)
    if v < 0 or not math.isfinite(v):
        raise e.error(f"{e.value} must not be negative")
    return v


def enum(e: Entry, *choices: str) -> str:
    if e.value not in choices:
        raise e.error(f"{e.value!r} is not one of {', '.join(choices)}")
    return e.value


def boolean(e: Entry) -> bool:
    return enum(e, "true", "false") == "true"


def port(e: Entry, text: str | None = None) -> int:
    text = e.value if text is None else text
    if re.fullmatch(r"[0-9]+", text) is None or int(text) > 65535:
        raise e.error(f"{text!r} is not a port number (0..65535)")
    return int(text)


def ip(e: Entry, text: str | None = None) -> str:
    text = e.value if text is None else text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise e.error(f"{text!r} is not an IP address (RabbitMQ takes addresses, not host names)") from None
    return text


def listener(e: Entry) -> tuple[str, int]:
    """``5672`` (every interface: host ``""``), ``127.0.0.1:5672``, ``::1:5672`` or ``[::1]:5672``."""
    if re.fullmatch(r"[0-9]+", e.value):
        return "", port(e)
    m = re.fullmatch(r"\[([^\]]*)\]:([^:]*)", e.value) or re.fullmatch(r"(.*):([^:]*)", e.value)
    if m is None:
        raise e.error(f"{e.value!r} is neither a port nor IP:PORT (e.g. 5672, 127.0.0.1:5672, ::1:5672)")
    return ip(e, m.group(1)), port(e, m.group(2))


_UNITS = {"k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2, "g": 1024**3, "gib": 1024**3,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_INFO_UNIT = re.compile(r"([0-9]+)(kB|KB|MB|GB|kb|mb|gb|Kb|Mb|Gb|kiB|KiB|MiB|GiB|kib|mib|gib|KIB|MIB|GIB|k|K|m|M|g|G)?")


def information_unit(e: Entry) -> int:
    """RabbitMQ's ``rabbit_resource_monitor_misc:parse_information_unit`` (its exact unit list)."""
    m = _INFO_UNIT.fullmatch(e.value)
    if m is None:
        raise e.error(f"{e.value!r} is not a size (examples: 1000000000, 2GB, 1GiB, 512MB)")
    return int(m.group(1)) * (_UNITS[m.group(2).lower()] if m.group(2) else 1)


def bytesize(e: Entry) -> int:
    """cuttlefish's ``bytesize`` (``frame_max``): a number of bytes, or KB/MB/GB as powers of 1024."""
    m = re.fullmatch(r"([0-9]+)([KkMmGg][Bb])?", e.value)
    if m is None:
        raise e.error(f"{e.value!r} is not a size in bytes (e.g. 131072 or 128KB)")
    return int(m.group(1)) * {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2) and m.group(2)[0].lower()]


def readable_file(e: Entry) -> str:
    path = e.value
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise e.error(f"{path}: file does not exist or cannot be read")
    return path


# ------------------------------------------------------------------ the keys Leveret applies

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency", "none")
FILE_LOG_LEVELS = LOG_LEVELS + ("=debug", "!=info", "<=notice", "<warning")
TLS_VERSIONS = ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3")


def _simple(field: str, convert: Callable[[Entry], object]):
    def apply(e: Entry, values: dict) -> None:
        values[field] = convert(e)
    return apply


def _collect(group: str, convert: Callable[[Entry], object]):
    """A numbered or named list (``auth_mechanisms.1``, ``ssl_options.versions.2``...)."""
    def apply(e: Entry, values: dict) -> None:
        values.setdefault(group, {})[e.key[-1]] = (e, convert(e))
    return apply


def _handshake_timeout(e: Entry) -> float:
    return math.inf if e.value == "infinity" else integer(e, 0) / 1000.0


def _connection_max(e: Entry) -> int | None:
    return None if e.value == "infinity" else integer(e, 0)


def _none_only(e: Entry) -> bool:
    enum(e, "none")
    return True


def _auth_backend(e: Entry) -> str:
    if e.value not in ("internal", "rabbit_auth_backend_internal"):
        raise e.error(f"{e.value!r}: Leveret has only the internal user database ('internal')")
    return e.value


def _mechanism(e: Entry) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]+", e.value) is None:
        raise e.error(f"{e.value!r} is not a SASL mechanism name (PLAIN, AMQPLAIN, EXTERNAL)")
    return e.value


def _login_from(e: Entry) -> str:
    v = enum(e, "distinguished_name", "common_name", "subject_alternative_name", "subject_alt_name")
    return "subject_alternative_name" if v == "subject_alt_name" else v


# key pattern -> handler(entry, values); ``$`` is any one segment. The handlers fill ``values``
# (raw, by Settings field or group); :func:`_settings` applies RabbitMQ's cross-key rules.
HANDLERS: dict[str, Callable[[Entry, dict], None]] = {
    "listeners.tcp": _simple("listeners.tcp=none", _none_only),
    "listeners.tcp.$": _collect("listeners.tcp", listener),
    "listeners.ssl": _simple("listeners.ssl=none", _none_only),
    "listeners.ssl.$": _collect("listeners.ssl", listener),
    "ssl_options": _simple("ssl_options=none", _none_only),
    "ssl_options.certfile": _simple("ssl_certfile", readable_file),
    "ssl_options.keyfile": _simple("ssl_keyfile", readable_file),
    "ssl_options.cacertfile": _simple("ssl_cacertfile", readable_file),
    "ssl_options.password": _simple("ssl_password", lambda e: e.value),
    "ssl_options.verify": _simple("ssl_verify", lambda e: enum(e, "verify_none", "verify_peer")),
    "ssl_options.fail_if_no_peer_cert": _simple("ssl_fail_if_no_peer_cert", boolean),
    "ssl_options.versions.$": _collect("ssl_versions", lambda e: enum(e, *TLS_VERSIONS)),
    "ssl_options.ciphers.$": _collect("ssl_ciphers", lambda e: e.value),
    "ssl_cert_login_from": _simple("ssl_cert_login_from", _login_from),
    "ssl_cert_login_san_type": _simple("ssl_cert_login_san_type",
                                       lambda e: enum(e, "dns", "ip", "email", "uri", "other_name")),
    "ssl_cert_login_san_index": _simple("ssl_cert_login_san_index", lambda e: integer(e, 0)),
    "auth_mechanisms.$": _collect("auth_mechanisms", _mechanism),
    "auth_backends.$": _collect("auth_backends", _auth_backend),
    "default_user": _simple("default_user", lambda e: e.value),
    "default_pass": _simple("default_pass", lambda e: e.value),
    "default_vhost": _simple("default_vhost", lambda e: e.value),
    "product.name": _simple("product_name", lambda e: e.value),
    "product.version": _simple("product_version", lambda e: e.value),
    "default_user_tags.$": _collect("default_user_tags", boolean),
    "default_permissions.configure": _collect("default_permissions", lambda e: e.value),
    "default_permissions.read": _collect("default_permissions", lambda e: e.value),
    "default_permissions.write": _collect("default_permissions", lambda e: e.value),
    "loopback_users": _simple("loopback_users=none", _none_only),
    "loopback_users.$": _collect("loopback_users", boolean),
    "heartbeat": _simple("heartbeat", lambda e: integer(e, 0, 65535)),
    "frame_max": _simple("frame_max", lambda e: _at_least(e, bytesize(e), 4096)),
    "channel_max": _simple("channel_max", lambda e: integer(e, 1, 65535)),
    "handshake_timeout": _simple("handshake_timeout", _handshake_timeout),
    "connection_max": _simple("connection_max", _connection_max),
    "max_message_size": _simple("max_message_size", lambda e: integer(e, 1, 536870912)),
    "consumer_timeout": _simple("consumer_timeout", lambda e: integer(e, 1)),
    "vm_memory_high_watermark.relative": _simple("memory.relative", floating),
    "vm_memory_high_watermark.absolute": _simple("memory.absolute", information_unit),
    "disk_free_limit.relative": _simple("disk.relative", floating),
    "disk_free_limit.absolute": _simple("disk.absolute", information_unit),
    "load_definitions": _simple("definitions_file", readable_file),
    "log.console": _simple("log_console", boolean),
    "log.console.level": _simple("log_console_level", lambda e: enum(e, *LOG_LEVELS)),
    "log.console.stdio": _simple("log_console_stdio", lambda e: enum(e, "stdout", "stderr")),
    "log.file": _simple("log_file", lambda e: None if e.value == "false" else e.value),
    "log.file.level": _simple("log_file_level", lambda e: enum(e, *FILE_LOG_LEVELS)),
    "log.dir": _simple("log_dir", lambda e: e.value),
    "log.default.level": _simple("log_level", lambda e: enum(e, *LOG_LEVELS)),
    "management.tcp.port": _simple("management_port", port),
    "management.tcp.ip": _simple("management_host", ip),
    "prometheus.tcp.port": _simple("prometheus_port", port),
    "prometheus.tcp.ip": _simple("prometheus_host", ip),
}


def _at_least(e: Entry, value: int, least: int) -> int:
    if value < least:
        raise e.error(f"{value} is below {least}, the smallest frame AMQP 0-9-1 allows")
    return value


def _match(key: tuple[str, ...], pattern: str) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(key) and all(p == k or p.startswith("$") for p, k in zip(parts, key))


def _handler(key: tuple[str, ...]):
    exact = HANDLERS.get(".".join(key))
    if exact is not None:
        return exact
    for pattern, handler in HANDLERS.items():
        if "$" in pattern and _match(key, pattern):
            return handler
    return None


def _known_to_rabbitmq(key: tuple[str, ...]) -> str | None:
    """The RabbitMQ schema (``rabbit``, ``rabbitmq_mqtt``...) that defines this key, if any."""
    name = ".".join(key)
    if name in RABBITMQ_KEYS:
        return RABBITMQ_KEYS[name]
    for pattern, schema in RABBITMQ_KEYS.items():
        if "$" in pattern and _match(key, pattern):
            return schema
    return None


_ALL_KEYS = sorted(set(HANDLERS) | set(RABBITMQ_KEYS))
_HEADS = sorted({k.split(".")[0] for k in _ALL_KEYS})


def _unknown(e: Entry) -> ConfigError:
    """Suggestions: the known keys under the same first segment closest to it; with an unknown
    first segment, the closest first segments (``clustr_formation.x`` -> ``cluster_formation.x``)."""
    same = [k for k in _ALL_KEYS if k.split(".")[0] == e.key[0]]
    if same:
        close = difflib.get_close_matches(e.name, same, n=3, cutoff=0.75)
    else:
        close = [".".join((head,) + e.key[1:]) for head in difflib.get_close_matches(e.key[0], _HEADS, n=3, cutoff=0.75)]
    close = [re.sub(r"\$\w*", "<name>", k) for k in close]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return e.error(f"unknown key: RabbitMQ 3.10.8 has no such setting{hint}")


# ------------------------------------------------------------------ entries -> Settings

def _single_listener(entries: dict | None) -> tuple[str, int] | None:
    if not entries:
        return None
    items = list(entries.values())
    if len(items) > 1:
        (first, _), (second, _) = items[0], items[1]
        raise second.error(f"Leveret listens on one address per protocol, and {first.name} "
                           f"(line {first.line}) already names one; remove one of them")
    return items[0][1]


def _settings(values: dict, base: Settings) -> Settings:
    s = dataclasses.replace(base)
    groups = {k: values.pop(k) for k in list(values) if k in (
        "listeners.tcp", "listeners.ssl", "ssl_versions", "ssl_ciphers", "auth_mechanisms", "auth_backends",
        "default_user_tags", "default_permissions", "loopback_users")}
    if values.pop("listeners.tcp=none", False):
        s.tcp_listener = False
    else:
        tcp = _single_listener(groups.get("listeners.tcp"))
        if tcp is not None:
            s.tcp_listener = True
            s.host, s.port = tcp
    if values.pop("listeners.ssl=none", False):
        s.ssl_host = s.ssl_port = None
    else:
        ssl = _single_listener(groups.get("listeners.ssl"))
        if ssl is not None:
            s.ssl_host, s.ssl_port = ssl
    values.pop("ssl_options=none", None)
    for field in ("ssl_versions", "ssl_ciphers", "auth_mechanisms"):
        if field in groups:
            setattr(s, field, tuple(v for _, v in groups[field].values()))
    groups.pop("auth_backends", None)  # only 'internal' passes: nothing to change
    if "default_user_tags" in groups:
        s.default_user_tags = tuple(tag for tag, (_, on) in groups["default_user_tags"].items() if on)
    if "default_permissions" in groups:
        perms = groups["default_permissions"]
        missing = [p for p in ("configure", "read", "write") if p not in perms]
        if missing:
            e = next(iter(perms.values()))[0]
            raise e.error(f"default_permissions needs configure, read and write; "
                          f"{', '.join('default_permissions.' + m for m in missing)} missing")
        s.default_permissions = (perms["configure"][1], perms["write"][1], perms["read"][1])
    if values.pop("loopback_users=none", False):
        s.loopback_users = ()
    elif "loopback_users" in groups:
        s.loopback_users = tuple(user for user, (_, on) in groups["loopback_users"].items() if on)
    memory = values.pop("memory.relative", None), values.pop("memory.absolute", None)
    if memory != (None, None):
        s.memory_high_watermark = memory[0] if memory[0] is not None else memory[1]
    disk = values.pop("disk.relative", None), values.pop("disk.absolute", None)
    if disk != (None, None):
        s.disk_free_limit = disk[0] if disk[0] is not None else disk[1]
    for field, value in values.items():
        setattr(s, field, value)
    return s


def parse(data: str | bytes, path: str = "<string>", base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a ``rabbitmq.conf`` text laid over ``base`` (default: the defaults), and
    warnings (``<file>:<line>: <key>: ignored ...``) for RabbitMQ keys Leveret does not use.
    Raises :class:`ConfigError` for anything it refuses."""
    entries, warnings = read_entries(data, path)
    values: dict = {}
    for e in entries:
        handler = _handler(e.key)
        if handler is not None:
            handler(e, values)
            continue
        schema = _known_to_rabbitmq(e.key)
        if schema is None:
            raise _unknown(e)
        warnings.append(f"{e.path}:{e.line}: {e.name}: ignored: does not apply to Leveret ({schema} setting)")
    return _settings(values, base if base is not None else Settings()), warnings


def load(path: str, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """:func:`parse` of a file; an unreadable file is a :class:`ConfigError` without a line."""
    if path.endswith(".config"):
        raise ConfigError(path, None, "this is RabbitMQ's Erlang-term format (advanced.config); "
                                      "Leveret reads only the rabbitmq.conf format")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the config file: {e.strerror}") from None
    return parse(data, path, base)
