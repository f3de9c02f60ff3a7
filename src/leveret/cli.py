"""Command line: ``leveret serve`` (the broker), ``leveret ctl`` (administration, as
``rabbitmqctl``; docs/ctl.md) and ``leveret perf`` (a load tester, see docs/perf.md).

``serve`` flags have environment equivalents (``LEVERET_HOST``,
``LEVERET_PORT``, ``LEVERET_DATA_DIR``, ...); flags win, and every default comes
from :class:`leveret.settings.Settings`. The broker logs one line
when it is ready, with the address it listens on, and shuts down cleanly on
SIGINT/SIGTERM (connection.close 320 CONNECTION_FORCED to every client).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .broker.alarms import parse_size, parse_watermark
from .broker.definitions_file import DefinitionsError
from .ctl import run as ctl_run
from .node import Node
from .settings import DEFAULTS, Settings, default_data_dir
from .store.disk import DataDirInUse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leveret", description="Leveret AMQP 0-9-1 broker")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the broker")
    d = DEFAULTS
    s.add_argument("--host", default=os.environ.get("LEVERET_HOST", d.host),
                   help=f"address to listen on (env LEVERET_HOST, default {d.host})")
    s.add_argument("--port", type=int, default=int(os.environ.get("LEVERET_PORT", d.port)),
                   help=f"AMQP port (env LEVERET_PORT, default {d.port})")
    s.add_argument("--data-dir", default=os.environ.get("LEVERET_DATA_DIR") or default_data_dir(),
                   help="data directory (env LEVERET_DATA_DIR, default a per-user data folder)")
    s.add_argument("--heartbeat", type=int, default=d.heartbeat,
                   help=f"heartbeat interval offered to clients (s, default {d.heartbeat})")
    s.add_argument("--vm-memory-high-watermark",
                   default=os.environ.get("LEVERET_VM_MEMORY_HIGH_WATERMARK", str(d.memory_high_watermark)),
                   help="memory alarm threshold: a fraction of RAM (0.4) or a size (512MB, 2GiB); "
                        "queues page to disk above half of it")
    s.add_argument("--disk-free-limit", default=os.environ.get("LEVERET_DISK_FREE_LIMIT", str(d.disk_free_limit)),
                   help="disk alarm when the data directory's filesystem has less free space "
                        f"(default {d.disk_free_limit} bytes)")
    s.add_argument("--definitions", default=os.environ.get("LEVERET_DEFINITIONS"),
                   help="RabbitMQ definitions JSON (vhosts, users, permissions, policies, exchanges, "
                        "queues, bindings) loaded at start, like RabbitMQ's load_definitions")
    s.add_argument("--consumer-timeout", type=int,
                   default=int(os.environ.get("LEVERET_CONSUMER_TIMEOUT", d.consumer_timeout)),
                   help="ms a delivery may stay unacknowledged before its channel is closed "
                        f"(RabbitMQ's consumer_timeout; default {d.consumer_timeout}; 0 disables)")
    s.add_argument("--log-level", default=os.environ.get("LEVERET_LOG_LEVEL", "INFO"))
    s.add_argument("--rabbitmq4", action="store_true",
                   help="RabbitMQ 4.x defaults: ignore global qos, refuse transient non-exclusive queues")
    s.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    # perf parses its own options (leveret.perf, imported only when used): pass everything through
    pf = sub.add_parser("perf", help="AMQP throughput/latency tester against any broker (perf --help)",
                        add_help=False, prefix_chars="\x00")
    pf.add_argument("perf_args", nargs="*")
    # ctl parses rabbitmqctl-style options itself (leveret.ctl; docs/ctl.md)
    ct = sub.add_parser("ctl", help="administer a running broker as rabbitmqctl does (ctl help)",
                        add_help=False, prefix_chars="\x00")
    ct.add_argument("ctl_args", nargs="*")
    return p


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
    except OSError as e:
        logging.getLogger("leveret").error("cannot listen on %s:%s: %s", settings.host, settings.port, e)
        return 1
    _tune_gc(settings.gc_threshold)
    await stop.wait()
    logging.getLogger("leveret").info("shutting down")
    await broker.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "perf":
        from .perf import main as perf_main
        return perf_main(args.perf_args)
    if args.command == "ctl":
        return ctl_run(args.ctl_args, prog="leveret ctl")
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "serve":
        os.makedirs(args.data_dir, exist_ok=True)
        try:
            parse_size(args.disk_free_limit)
            parse_watermark(args.vm_memory_high_watermark)
        except ValueError as e:
            print(f"leveret serve: {e}", file=sys.stderr)
            return 2
        if args.definitions and not os.path.isfile(args.definitions):
            print(f"leveret serve: definitions file {args.definitions} not found", file=sys.stderr)
            return 2
        settings = Settings(host=args.host, port=args.port, data_dir=args.data_dir, heartbeat=args.heartbeat,
                            memory_high_watermark=args.vm_memory_high_watermark,
                            disk_free_limit=args.disk_free_limit,
                            ignore_global_qos=args.rabbitmq4, refuse_transient_queues=args.rabbitmq4,
                            definitions_file=args.definitions,
                            consumer_timeout=args.consumer_timeout or None,
                            gc_threshold=int(os.environ.get("LEVERET_GC_THRESHOLD", DEFAULTS.gc_threshold)))
        if not args.no_uvloop:
            try:
                import uvloop
                return uvloop.run(_serve(settings))
            except ImportError:
                pass
        return asyncio.run(_serve(settings))
    return 2
