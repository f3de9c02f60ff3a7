"""Command line: ``leveret serve`` (the broker), ``leveret ctl`` (administration, as
``rabbitmqctl``; docs/ctl.md) and ``leveret perf`` (a load tester, see docs/perf.md).

``leveret serve`` builds one :class:`leveret.settings.Settings` in four layers, each
overriding the one before (docs/configuration.md):

1. the defaults (``Settings``), with the data directory ``$XDG_DATA_HOME/leveret``;
2. a RabbitMQ ``rabbitmq.conf`` file (:mod:`leveret.config`): ``--config FILE``, else
   ``$LEVERET_CONFIG_FILE``, else ``$RABBITMQ_CONFIG_FILE`` (RabbitMQ's own variable; a
   name without an extension gets ``.conf``, as RabbitMQ does), else
   ``$XDG_CONFIG_HOME/leveret/rabbitmq.conf`` when that file exists;
3. environment variables (``LEVERET_HOST``, ``LEVERET_PORT``, ``LEVERET_DATA_DIR``, ...);
4. flags, each only when given.

A bad file, variable or flag value prints ``leveret serve: <file>:<line>: <message>``
(``leveret serve: <VARIABLE or --flag>: <message>``) and exits 2; keys RabbitMQ knows but
Leveret does not use are logged as warnings. ``log.*`` settings configure Python logging
(console level and stream, a log file). The broker logs one line when it is ready, with the
address it listens on, and shuts down cleanly on SIGINT/SIGTERM (connection.close 320
CONNECTION_FORCED to every client).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys

from .broker.alarms import parse_disk_limit, parse_watermark
from .broker.definitions_file import DefinitionsError
from .config import LOG_LEVELS, ConfigError, load
from .ctl import run as ctl_run
from .ctl.main import diagnostics_main
from .node import Node
from .server.tls import TLSConfigError
from .settings import DEFAULTS, RABBITMQ4, Settings, default_data_dir
from .store.disk import DataDirInUse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _watermark(text: str) -> str:
    parse_watermark(text)
    return text


def _disk_limit(text: str) -> str:
    parse_disk_limit(text)
    return text


def _consumer_timeout(text: str) -> int | None:
    return _int(text) or None


def _level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return text.lower()


def _path(text: str) -> str:
    return text


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _verify(text: str) -> str:
    return "verify_peer" if _bool(text) else "verify_none"


def _negated(text: str) -> bool:
    return not _bool(text)


def _csv(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


# converters of flags that take no value (given: "true")
SWITCHES = (_bool, _verify, _negated)


# (flag, environment variable or None, Settings field, converter, help)
OPTIONS = (
    ("--host", "LEVERET_HOST", "host", _path, f"address to listen on (default {DEFAULTS.host})"),
    ("--port", "LEVERET_PORT", "port", _int, f"AMQP port (default {DEFAULTS.port})"),
    ("--data-dir", "LEVERET_DATA_DIR", "data_dir", _path, "data directory (default a per-user data folder)"),
    ("--heartbeat", None, "heartbeat", _int, f"heartbeat interval offered to clients (s, default {DEFAULTS.heartbeat})"),
    ("--vm-memory-high-watermark", "LEVERET_VM_MEMORY_HIGH_WATERMARK", "memory_high_watermark", _watermark,
     "memory alarm threshold: a fraction of RAM (0.4) or a size (512MB, 2GiB); queues page to disk above half of it"),
    ("--disk-free-limit", "LEVERET_DISK_FREE_LIMIT", "disk_free_limit", _disk_limit,
     f"disk alarm when the data directory's filesystem has less free space (default {DEFAULTS.disk_free_limit} bytes)"),
    ("--definitions", "LEVERET_DEFINITIONS", "definitions_file", _path,
     "RabbitMQ definitions JSON (vhosts, users, permissions, policies, exchanges, queues, bindings) loaded at "
     "start, like RabbitMQ's load_definitions"),
    ("--consumer-timeout", "LEVERET_CONSUMER_TIMEOUT", "consumer_timeout", _consumer_timeout,
     f"ms a delivery may stay unacknowledged before its channel is closed (RabbitMQ's consumer_timeout; "
     f"default {DEFAULTS.consumer_timeout}; 0 disables)"),
    ("--log-level", "LEVERET_LOG_LEVEL", "log_console_level", _level,
     f"console log level ({', '.join(LOG_LEVELS)}; default {DEFAULTS.log_console_level})"),
    # TLS (docs/tls.md); rabbitmq.conf's listeners.ssl.* and ssl_options.* hold the rest
    ("--ssl-port", "LEVERET_SSL_PORT", "ssl_port", _int,
     "AMQPS (TLS) port, conventionally 5671 (default: no TLS listener)"),
    ("--ssl-certfile", "LEVERET_SSL_CERTFILE", "ssl_certfile", _path,
     "server certificate chain, PEM (ssl_options.certfile)"),
    ("--ssl-keyfile", "LEVERET_SSL_KEYFILE", "ssl_keyfile", _path,
     "server private key, PEM (ssl_options.keyfile; its passphrase: env LEVERET_SSL_PASSWORD)"),
    (None, "LEVERET_SSL_PASSWORD", "ssl_password", _path, None),
    ("--ssl-cacertfile", "LEVERET_SSL_CACERTFILE", "ssl_cacertfile", _path,
     "CA bundle client certificates are verified against (ssl_options.cacertfile)"),
    ("--ssl-verify-peer", None, "ssl_verify", _verify,
     "ask clients for a certificate and verify it (ssl_options.verify = verify_peer)"),
    ("--ssl-fail-if-no-peer-cert", None, "ssl_fail_if_no_peer_cert", _bool,
     "refuse clients without a certificate (ssl_options.fail_if_no_peer_cert = true)"),
    ("--ssl-versions", None, "ssl_versions", _csv,
     "comma-separated TLS versions allowed, e.g. tlsv1.3,tlsv1.2 (ssl_options.versions)"),
    ("--auth-mechanisms", None, "auth_mechanisms", _csv,
     f"comma-separated SASL mechanisms offered (default {','.join(DEFAULTS.auth_mechanisms)}; "
     "add EXTERNAL for client-certificate login)"),
    ("--ssl-cert-login-from", None, "ssl_cert_login_from", _path,
     "where EXTERNAL takes the user name: distinguished_name, common_name or subject_alternative_name "
     f"(default {DEFAULTS.ssl_cert_login_from})"),
    ("--no-tcp-listener", None, "tcp_listener", _negated, "no plain AMQP listener (listeners.tcp = none): TLS only"),
    ("--management-port", "LEVERET_MANAGEMENT_PORT", "management_port", _int,
     f"management HTTP API port (management.tcp.port; default {DEFAULTS.management_port}; 0: a free port)"),
    ("--no-management", None, "management_enabled", _negated, "do not serve the management HTTP API"),
    ("--prometheus-port", "LEVERET_PROMETHEUS_PORT", "prometheus_port", _int,
     f"Prometheus metrics port (prometheus.tcp.port; default {DEFAULTS.prometheus_port}; 0: a free port)"),
    ("--no-prometheus", None, "prometheus_enabled", _negated, "do not serve Prometheus metrics"),
    (None, "LEVERET_GC_THRESHOLD", "gc_threshold", _int, None),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leveret", description="Leveret AMQP 0-9-1 broker")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the broker",
                       description="Run the broker. Settings: defaults < rabbitmq.conf < environment < flags.")
    s.add_argument("--config", default=None, metavar="FILE",
                   help="a RabbitMQ rabbitmq.conf file (env LEVERET_CONFIG_FILE or RABBITMQ_CONFIG_FILE; "
                        "default $XDG_CONFIG_HOME/leveret/rabbitmq.conf when it exists)")
    for flag, env, field, convert, help_text in OPTIONS:
        if flag is not None:
            extra = {"action": "store_const", "const": "true"} if convert in SWITCHES else {}
            s.add_argument(flag, dest=field, default=None, help=f"{help_text} (env {env})" if env else help_text,
                           **extra)
    s.add_argument("--rabbitmq4", action="store_true",
                   help="RabbitMQ 4.x defaults: ignore global qos, refuse transient non-exclusive queues, "
                        "x-last-death-* headers, an unknown exchange type a channel error")
    s.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    # perf parses its own options (leveret.perf, imported only when used): pass everything through
    pf = sub.add_parser("perf", help="AMQP throughput/latency tester against any broker (perf --help)",
                        add_help=False, prefix_chars="\x00")
    pf.add_argument("perf_args", nargs="*")
    # ctl parses rabbitmqctl-style options itself (leveret.ctl; docs/ctl.md)
    ct = sub.add_parser("ctl", help="administer a running broker as rabbitmqctl does (ctl help)",
                        add_help=False, prefix_chars="\x00")
    ct.add_argument("ctl_args", nargs="*")
    dg = sub.add_parser("diagnostics", help="check a running broker as rabbitmq-diagnostics does",
                        add_help=False, prefix_chars="\x00")
    dg.add_argument("ctl_args", nargs="*")
    return p


def config_file(flag: str | None, environ) -> str | None:
    """The rabbitmq.conf to read: the flag, the variables, or the default location if it exists."""
    if flag:
        return flag
    if environ.get("LEVERET_CONFIG_FILE"):
        return environ["LEVERET_CONFIG_FILE"]
    rabbit = environ.get("RABBITMQ_CONFIG_FILE")
    if rabbit:
        # RabbitMQ: "/etc/rabbitmq/rabbitmq" means /etc/rabbitmq/rabbitmq.conf
        return rabbit if os.path.splitext(rabbit)[1] else rabbit + ".conf"
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    default = os.path.join(base, "leveret", "rabbitmq.conf")
    return default if os.path.isfile(default) else None


def build_settings(args, environ) -> tuple[Settings, list[str]]:
    """defaults < rabbitmq.conf < environment < flags. Raises ConfigError or ValueError (with the
    variable or flag name) for a bad value."""
    # ``leveret serve`` is a RabbitMQ with the management and prometheus plugins enabled; an
    # embedded broker runs them only when asked
    settings = Settings(data_dir=default_data_dir(), management_enabled=True, prometheus_enabled=True)
    warnings: list[str] = []
    path = config_file(args.config, environ)
    if path is not None:
        settings, warnings = load(path, settings)
    changes = {}
    for flag, env, field, convert, _ in OPTIONS:
        for source, text in ((env, environ.get(env) if env else None),
                             (flag, getattr(args, field, None) if flag else None)):
            if text is not None and text != "":
                try:
                    changes[field] = convert(text)
                except ValueError as e:
                    raise ValueError(f"{source}: {e}") from None
    if args.rabbitmq4:
        changes.update(RABBITMQ4)
    return dataclasses.replace(settings, **changes), warnings


def _tune_gc(threshold: int) -> None:
    """A broker allocates many short-lived container objects per message (messages, tuples) and
    makes few reference cycles: move everything alive at start out of the collector's sight
    (``gc.freeze``) and collect the youngest generation every 50,000 allocations instead of 700.
    ``LEVERET_GC_THRESHOLD`` overrides it (0 keeps Python's defaults). Only ``leveret serve``
    does this: an embedding program keeps its own collector settings."""
    import gc
    if threshold:
        gc.freeze()
        gc.set_threshold(threshold, 20, 20)


async def _serve(settings: Settings) -> int:
    try:
        broker = Node(settings)
    except DataDirInUse as e:
        logging.getLogger("leveret").error("%s", e)
        return 1
    except DefinitionsError as e:
        logging.getLogger("leveret").error("definitions file: %s", e)
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # pragma: no cover (Windows)
            pass
    try:
        await broker.start()
    except TLSConfigError as e:
        logging.getLogger("leveret").error("TLS listener: %s", e)
        return 1
    except OSError as e:
        logging.getLogger("leveret").error("cannot listen on %s:%s: %s", settings.host, settings.port, e)
        return 1
    _tune_gc(settings.gc_threshold)
    await stop.wait()
    logging.getLogger("leveret").info("shutting down")
    await broker.stop()
    return 0


# RabbitMQ's log levels as Python's (notice sits between info and warning; alert and emergency
# are Python's critical; none silences an output)
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": 25, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL, "alert": logging.CRITICAL,
          "emergency": logging.CRITICAL, "none": logging.CRITICAL + 10}
# log.file.level's selectors: =LEVEL only that level, !=LEVEL all but it, <=LEVEL / <LEVEL at most / below
SELECTORS = {"=": lambda n, lv: n == lv, "!=": lambda n, lv: n != lv,
             "<=": lambda n, lv: n <= lv, "<": lambda n, lv: n < lv}


def _handler(handler: logging.Handler, level: str) -> logging.Handler:
    op = next((o for o in ("!=", "<=", "=", "<") if level.startswith(o)), None)
    if op is None:
        handler.setLevel(LEVELS[level])
    else:
        lv, test = LEVELS[level[len(op):]], SELECTORS[op]
        handler.addFilter(lambda record: test(record.levelno, lv))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def setup_logging(s: Settings) -> None:
    """Python logging from the log.* settings: the console (stderr or stdout) and a log file."""
    logging.addLevelName(25, "NOTICE")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(LEVELS[s.log_level])
    if s.log_console:
        stream = sys.stdout if s.log_console_stdio == "stdout" else sys.stderr
        root.addHandler(_handler(logging.StreamHandler(stream), s.log_console_level))
    if s.log_file:
        path = os.path.join(s.log_dir, s.log_file) if s.log_dir else s.log_file
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as e:
            raise ValueError(f"log.file: cannot open {path}: {e.strerror}") from None
        root.addHandler(_handler(handler, s.log_file_level))


def _fail(message: str) -> int:
    print(f"leveret serve: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "perf":
        from .perf import main as perf_main
        return perf_main(args.perf_args)
    if args.command == "ctl":
        return ctl_run(args.ctl_args, prog="leveret ctl")
    if args.command == "diagnostics":
        return diagnostics_main(args.ctl_args, prog="leveret diagnostics")
    try:
        settings, warnings = build_settings(args, os.environ)
        setup_logging(settings)
    except (ConfigError, ValueError) as e:
        return _fail(str(e))
    for w in warnings:
        logging.getLogger("leveret.config").warning("%s", w)
    if settings.definitions_file and not os.path.isfile(settings.definitions_file):
        return _fail(f"definitions file {settings.definitions_file} not found")
    os.makedirs(settings.data_dir, exist_ok=True)
    if not args.no_uvloop:
        try:
            import uvloop
            return uvloop.run(_serve(settings))
        except ImportError:
            pass
    return asyncio.run(_serve(settings))
