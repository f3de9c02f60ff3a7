"""The node: ``status``, ``environment``, ``report`` and ``await_startup`` (``rabbitmqctl``
3.10's names and layout; ``tests/data/rabbitmqctl/node.json``).

``status`` prints RabbitMQ's sections in RabbitMQ's order, each with what Leveret has: Runtime
(the Python runtime in place of Erlang's: no processes, run queue or net_ticktime), Data
directory, Config files, Alarms, Memory (the resident set; the breakdown has Leveret's own two
categories, ``message_bodies`` and ``other``, not Erlang's), File Descriptors, Free Disk Space,
Totals and Listeners. Plugins and Log file(s) are not printed (Leveret has no plugins and logs
to standard error). ``--formatter json`` uses RabbitMQ's keys for the same facts and leaves out
the others (docs/ctl.md lists them). ``environment`` prints Leveret's settings as the
application environment of an application called ``leveret``. ``report`` is ``status``
followed by every listing, vhost by vhost, as RabbitMQ's.
"""
from __future__ import annotations

import json

from .framework import Options, Rows, command, format_rows
from .objects import list_bindings, list_channels, list_connections, list_exchanges, list_queues
from .permissions import list_permissions
from .policies import list_global_parameters, list_parameters, list_policies

UNITS = {"bytes": 1, "mb": 1_000_000, "gb": 1_000_000_000}
PURPOSES = {"amqp": "AMQP 0-9-1", "amqp/ssl": "AMQP 0-9-1 over TLS", "http": "HTTP API"}


def unit_of(ctx) -> str:
    unit = ctx.opts.own.get("unit", "gb")
    if unit not in UNITS:
        raise ctx.usage(f'"unit \'{unit}\' is not supported. Please use one of: bytes, mb, gb"')
    return unit


def amount(n: int, unit: str) -> str:
    return f"{n} bytes" if unit == "bytes" else f"{round(n / UNITS[unit], 4)} {unit}"


def memory_lines(memory: dict, unit: str, spaced: bool) -> list[str]:
    """The breakdown, largest first: ``name: 0.1 gb (12.5 %)`` (``status``) or ``(12.5%)``."""
    total = memory["total"] or 1
    out = []
    for name, n in sorted(memory["parts"].items(), key=lambda kv: -kv[1]):
        pct = round(100 * n / total, 2)
        out.append(f"{name}: {amount(n, unit)} ({pct}{' ' if spaced else ''}%)")
    return out


def bold(text: str) -> str:
    return f"\x1b[1m{text}\x1b[0m"


def watermark(s: dict, unit: str) -> str:
    setting = s.get("vm_memory_high_watermark_setting")
    limit = amount(s["vm_memory_high_watermark_limit"], unit)
    if isinstance(setting, float):
        return f"{setting} of available memory, computed to: {limit}"
    return limit


def status_text(s: dict, unit: str) -> str:
    lines = [bold("Runtime"), "", f"OS PID: {s['pid']}", f"OS: {s['os']}", f"Uptime (seconds): {s['uptime']}",
             "Is under maintenance?: false", f"RabbitMQ version: {s['rabbitmq_version']}",
             f"Product name: {s['product_name']}", f"Product version: {s['product_version']}",
             f"Node name: {s['node']}", f"Leveret version: {s.get('leveret_version', '')}",
             f"Python runtime: {s['python_implementation']} {s['python_version']}", "",
             bold("Data directory"), "", f"Node data directory: {s['data_directory']}", "",
             bold("Config files"), ""]
    lines += [f" * {f}" for f in s["config_files"]]
    lines += ["", bold("Alarms"), ""]
    lines += [f"{a['resource']} resource limit alarm" for a in s["alarms"]] or ["(none)"]
    mem = s["memory"]
    lines += ["", bold("Memory"), "", f"Total memory used: {amount(mem['total'], unit)}",
              f"Calculation strategy: {s['vm_memory_calculation_strategy']}",
              "Memory high watermark setting: " + watermark(s, unit), ""]
    lines += memory_lines(mem, unit, spaced=True)
    fd = s["file_descriptors"]
    lines += ["", bold("File Descriptors"), "", f"Total: {fd['total_used']}, limit: {fd['total_limit']}",
              f"Sockets: {fd['sockets_used']}", "", bold("Free Disk Space"), "",
              f"Low free disk space watermark: {amount(s['disk_free_limit'], unit)}"]
    if s["disk_free"] is not None:
        lines.append(f"Free disk space: {amount(s['disk_free'], unit)}")
    t = s["totals"]
    lines += ["", bold("Totals"), "", f"Connection count: {t['connection_count']}",
              f"Queue count: {t['queue_count']}", f"Virtual host count: {t['virtual_host_count']}", "",
              bold("Listeners"), ""]
    lines += [f"Interface: {x['interface']}, port: {x['port']}, protocol: {x['protocol']}, "
              f"purpose: {PURPOSES.get(x['protocol'], x['protocol'])}" for x in s["listeners"]]
    return "\n".join(lines)


def status_json(s: dict) -> str:
    """RabbitMQ's keys for what Leveret has (``python_*`` in place of ``erlang_version``)."""
    out = {k: s[k] for k in ("alarms", "config_files", "data_directory", "disk_free", "disk_free_limit",
                             "file_descriptors", "is_under_maintenance", "pid", "os", "product_name",
                             "product_version", "rabbitmq_version", "totals", "uptime",
                             "vm_memory_calculation_strategy", "vm_memory_high_watermark_limit",
                             "python_version", "python_implementation")}
    out["listeners"] = [{**x, "purpose": PURPOSES.get(x["protocol"], x["protocol"])} for x in s["listeners"]]
    out["memory"] = {**s["memory"]["parts"], "total": {"rss": s["memory"]["total"]}, "strategy": "rss"}
    out["alarms"] = [a["resource"] for a in s["alarms"]]
    out["active_plugins"] = []
    return json.dumps(dict(sorted(out.items())), separators=(",", ":"))


def show_status(ctx) -> str:
    unit = unit_of(ctx)
    s = ctx.call("node_status")
    if ctx.opts.formatter == "json":
        return status_json(s)
    ctx.info(f"Status of node {s['node']} ...")
    return status_text(s, unit)


@command("status", group="Nodes", args=(0, 0), options=("--unit",), help="Displays status of a node",
         usage="status [--unit <unit>] [--timeout <timeout>]")
def status(ctx):
    return show_status(ctx)


@command("await_startup", group="Nodes", args=(0, 0),
         help="Waits for the Leveret broker to start on the target node", usage="await_startup")
def await_startup(ctx):
    ctx.call("status")      # the control socket answers once the broker has started


def erlang_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "undefined"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(erlang_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "#{" + ",".join(f"{erlang_value(k)} => {erlang_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v), ensure_ascii=False)


@command("environment", group="Nodes", args=(0, 0), usage="environment",
         help="Displays the name and value of each setting of the running broker")
def environment(ctx):
    env = ctx.call("environment")
    node = ctx.call("status")["node"]
    ctx.info(f"Application environment of node {node} ...")
    if ctx.opts.formatter == "json":
        return json.dumps({"leveret": env}, separators=(",", ":"))
    items = [f"{{{k},{erlang_value(v)}}}" for k, v in env.items()]
    return "[{leveret,\n     [" + ",\n      ".join(items) + "]}]"


@command("report", group="Nodes", args=(0, 0), usage="report",
         help="Generate a server status report containing a concatenation of all server status information "
              "for support purposes")
def report(ctx):
    node = ctx.call("status")["node"]
    ctx.info(f"Reporting server status of node {node} ...\n")
    ctx.print(show_status(ctx))
    ctx.print("")
    opts = Options(**{**vars(ctx.opts), "own": {}})

    def section(fn, *args):
        listing = fn(ctx, *args)
        if isinstance(listing, Rows):
            ctx.print(format_rows(listing, opts))
    section(list_connections)
    section(list_channels)
    saved = ctx.opts.vhost
    try:
        for v in ctx.call("list_vhosts"):
            ctx.opts.vhost = v["name"]
            for fn in (list_queues, list_exchanges, list_bindings):
                section(fn)
            for fn in (list_permissions, list_policies, list_global_parameters, list_parameters):
                section(fn)
    finally:
        ctx.opts.vhost = saved
