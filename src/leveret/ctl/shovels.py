"""Shovels: shovel_status, delete_shovel, restart_shovel -- the commands RabbitMQ 3.10.8's shovel
plugin adds to ``rabbitmqctl``. ``shovel_status`` prints one row per shovel with the columns
``fmt_status`` builds (``state``; ``source``/``destination`` URIs and protocols and endpoints
when running, ``termination_reason`` when terminated; ``last_changed``, ``type``), in
the sorted order of an Erlang map's keys."""
from __future__ import annotations

from .framework import EX_UNAVAILABLE, Rows, command

NOT_FOUND = {"not_found": (EX_UNAVAILABLE, "Error:\n{message}")}
DETAILS = (("src_queue", "source_queue"), ("src_exchange", "source_exchange"),
           ("src_exchange_key", "source_exchange_key"), ("dest_queue", "destination_queue"),
           ("dest_exchange", "destination_exchange"), ("dest_exchange_key", "destination_exchange_key"))


def _row(s: dict) -> dict:
    t = s["timestamp"]             # "2026-12-07 2:00:13" -> rabbitmqctl pads the hour
    day, _, hms = t.partition(" ")
    h, _, rest = hms.partition(":")
    row = {"name": s["name"], "vhost": s["vhost"], "type": s["type"], "state": s["state"],
           "last_changed": f"{day} {int(h):02}:{rest}", "source": "", "destination": "", "termination_reason": ""}
    if s["state"] == "running":
        row.update(source=s["src_uri"], destination=s["dest_uri"], source_protocol=s["src_protocol"],
                   destination_protocol=s["dest_protocol"])
        row.update({new: s[old] for old, new in DETAILS if old in s})
    elif s["state"] == "terminated":
        row["termination_reason"] = s.get("reason") or ""
    return row


@command("shovel_status", group="Shovel plugin", usage="shovel_status", args=(0, 0),
         help="Displays status of Shovel on a node")
def shovel_status(ctx):
    status = ctx.call("shovel_status")
    rows = [_row(s) for s in status]
    ctx.info(f"Shovel status on node {status[0]['node'] if status else ctx.call('status')['node']}")
    columns = sorted({k for r in rows for k in r}) or ["destination", "last_changed", "name", "source", "state",
                                                       "termination_reason", "type", "vhost"]
    return Rows(columns, rows, stream=True)


@command("delete_shovel", group="Shovel plugin", usage="delete_shovel [--vhost <vhost>] <name>", args=(1, 1),
         help="Deletes a Shovel")
def delete_shovel(ctx, name):
    ctx.info(f"Deleting shovel {name} in vhost {ctx.vhost}")
    ctx.call("delete_shovel", NOT_FOUND, vhost=ctx.vhost, name=name)


@command("restart_shovel", group="Shovel plugin", usage="restart_shovel [--vhost <vhost>] <name>", args=(1, 1),
         help="Restarts a dynamic Shovel")
def restart_shovel(ctx, name):
    ctx.info(f"Restarting dynamic Shovel {name} in virtual host {ctx.vhost}")
    ctx.call("restart_shovel", NOT_FOUND, vhost=ctx.vhost, name=name)
