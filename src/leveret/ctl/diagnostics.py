"""``leveret diagnostics`` (``leveret-diagnostics``): ``rabbitmq-diagnostics`` 3.10's ping,
check_running, check_local_alarms, check_port_connectivity, status and memory_breakdown, with
its wording and exit codes (``tests/data/rabbitmqctl/node.json``).

A check that fails exits 69 (``EX_UNAVAILABLE``), as ``rabbitmq-diagnostics`` does; an
unreachable broker is the one-line error and 69 of every command. ``check_port_connectivity``
connects to every listener the broker reports (AMQP, AMQPS, the management API) from this
process; RabbitMQ's inter-node ``clustering`` and Prometheus listeners do not exist here.
``memory_breakdown`` lists Leveret's own categories (``server/control_ops.py``), not Erlang's.
"""
from __future__ import annotations

import json
import socket

from .framework import DIAGNOSTICS, EX_UNAVAILABLE, Exit, command
from .node import PURPOSES, amount, memory_lines, show_status, unit_of


def diagnostic(name: str, **kw):
    return command(name, group="Diagnostics", registry=DIAGNOSTICS, args=(0, 0), **kw)


@diagnostic("ping", usage="ping [--timeout <timeout>]",
            help="Checks that the broker process is up and answers on its control socket")
def ping(ctx):
    node = ctx.call("status")["node"]
    if ctx.opts.formatter == "json":
        return json.dumps({"message": "Ping succeeded"}, separators=(",", ":"))
    timeout = int(float(ctx.opts.timeout) * 1000) if ctx.opts.timeout is not None else 60000
    ctx.info(f"Will ping {node}. This only checks if the OS process is running and answers on its control "
             f"socket. Timeout: {timeout} ms.")
    return "Ping succeeded"


@diagnostic("check_running", usage="check_running [--timeout <timeout>]",
            help="Health check that exits with a non-zero code if the broker on the target node is not running")
def check_running(ctx):
    node = ctx.call("status")["node"]
    message = f"RabbitMQ on node {node} is fully booted and running"
    if ctx.opts.formatter == "json":
        return json.dumps({"message": message}, separators=(",", ":"))
    ctx.info(f"Checking if RabbitMQ is running on node {node} ...")
    return message


@diagnostic("check_local_alarms", usage="check_local_alarms [--timeout <timeout>]",
            help="Health check that exits with a non-zero code if the target node reports any local alarms")
def check_local_alarms(ctx):
    s = ctx.call("node_status")
    node = s["node"]
    if ctx.opts.formatter != "json":
        ctx.info(f"Asking node {node} to report any local resource alarms ...")
    if not s["alarms"]:
        return json.dumps({"result": "ok"}, separators=(",", ":")) if ctx.opts.formatter == "json" else \
            f"Node {node} reported no local alarms"
    if ctx.opts.formatter == "json":
        ctx.print(json.dumps({"result": "error", "local": [a["resource"] for a in s["alarms"]]},
                             separators=(",", ":")))
        raise Exit(EX_UNAVAILABLE)
    raise Exit(EX_UNAVAILABLE, f"Error:\nNode {node} reported local alarms: "
                               + ", ".join(f"{a['resource']} resource limit alarm" for a in s["alarms"]))


def _reachable(host: str, port: int) -> bool:
    host = host.strip("[]")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


@diagnostic("check_port_connectivity", usage="check_port_connectivity [--timeout <timeout>]",
            help="Basic TCP connectivity health check for each listener's port on the target node")
def check_port_connectivity(ctx):
    s = ctx.call("node_status")
    node = s["node"]
    listeners = [{"interface": x["interface"], "node": node, "port": x["port"], "protocol": x["protocol"],
                  "purpose": PURPOSES.get(x["protocol"], x["protocol"])} for x in s["listeners"]]
    failed = [x for x in listeners if not _reachable(x["interface"], x["port"])]
    if ctx.opts.formatter == "json":
        body = {"listeners": failed or listeners, "node": node, "result": "error" if failed else "ok"}
        ctx.print(json.dumps(body, separators=(",", ":")))
        if failed:
            raise Exit(EX_UNAVAILABLE)
        return None
    ctx.info(f"Testing TCP connections to all active listeners on node {node} ...")
    if failed:
        raise Exit(EX_UNAVAILABLE, f"Error:\nConnection to ports of the following listeners on node {node} failed: "
                   + ", ".join(f"{x['port']} ({x['protocol']})" for x in failed))
    ports = ", ".join(str(p) for p in sorted(x["port"] for x in listeners))
    return f"Successfully connected to ports {ports} on node {node}."


@diagnostic("status", options=("--unit",), usage="status [--unit <unit>] [--timeout <timeout>]",
            help="Displays status of a node")
def status(ctx):
    return show_status(ctx)


@diagnostic("memory_breakdown", options=("--unit",), usage="memory_breakdown [--unit <unit>] [--timeout <timeout>]",
            help="Provides a memory usage breakdown on the target node.")
def memory_breakdown(ctx):
    unit = unit_of(ctx)
    s = ctx.call("node_status")
    mem = s["memory"]
    if ctx.opts.formatter == "json":
        total = mem["total"] or 1
        return json.dumps({k: {"bytes": n, "percentage": round(100 * n / total, 2)}
                           for k, n in sorted(mem["parts"].items(), key=lambda kv: -kv[1])}, separators=(",", ":"))
    ctx.info(f"Reporting memory breakdown on node {s['node']}...")
    return "\n".join(memory_lines(mem, unit, spaced=False)) + f"\n\nTotal memory used: {amount(mem['total'], unit)}"
