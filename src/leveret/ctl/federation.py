"""Federation: federation_status [--only-down], restart_federation_link -- the commands RabbitMQ
3.10.8's federation plugin adds to ``rabbitmqctl``. ``federation_status`` streams one row per
link: the status row with ``queue``, ``exchange``, ``upstream_queue``, ``upstream_exchange``,
``local_connection`` and ``error`` defaulting to empty, ``last_changed`` (the timestamp,
hour padded) instead of ``timestamp``, no ``node``; columns in the sorted order of an Erlang map's keys.
``--only-down`` keeps the links not ``running`` or ``starting``."""
from __future__ import annotations

from .framework import EX_UNAVAILABLE, Rows, command

NOT_FOUND = {"not_found": (EX_UNAVAILABLE, "Error:\n{message}")}
EMPTY = ("queue", "exchange", "upstream_queue", "upstream_exchange", "local_connection", "error")


def _row(s: dict) -> dict:
    day, _, hms = s["timestamp"].partition(" ")
    h, _, rest = hms.partition(":")
    row = {k: "" for k in EMPTY}
    row.update({k: v for k, v in s.items() if k not in ("timestamp", "node")})
    row["last_changed"] = f"{day} {int(h):02}:{rest}"
    return row


@command("federation_status", group="Federation plugin", usage="federation_status [--only-down]", args=(0, 0),
         flags=("--only-down",), help="Displays federation link status")
def federation_status(ctx):
    status = ctx.call("federation_status")
    node = status[0]["node"] if status else ctx.call("status")["node"]
    down = bool(ctx.opts.own.get("only-down") or ctx.opts.own.get("only_down"))
    if down:
        status = [s for s in status if s["status"] not in ("running", "starting")]
    ctx.info(f"Listing federation links {'which are down ' if down else ''}on node {node}...")
    rows = [_row(s) for s in status]
    columns = sorted({k for r in rows for k in r}) or sorted([*EMPTY, "id", "last_changed", "status", "type",
                                                             "upstream", "uri", "vhost"])
    return Rows(columns, rows, stream=True)


@command("restart_federation_link", group="Federation plugin", usage="restart_federation_link <link_id>",
         args=(1, 1), help="Restarts a running federation link")
def restart_federation_link(ctx, link_id):
    node = ctx.call("status")["node"]
    ctx.info(f"Restarting federation link {link_id} on node {node}")
    ctx.call("restart_federation_link", {"not_found": (EX_UNAVAILABLE, "Error:\nLink with the given ID was not found")},
             link_id=link_id)
