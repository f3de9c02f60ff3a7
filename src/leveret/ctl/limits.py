"""Vhost and user limits: set/clear/list_vhost_limits, set/clear/list_user_limits -- worded as
``rabbitmqctl`` 3.10 words them (``tests/data/rabbitmqctl/limits.json``). Limits print as
compact JSON with sorted keys, as RabbitMQ's JSON encoder writes an Erlang map."""
from __future__ import annotations

import json

from .framework import EX_DATAERR, EX_UNAVAILABLE, Rows, command, parse_json_argument

NO_SUCH_VHOST = {"no_such_vhost": (EX_DATAERR, "Virtual host '{name}' does not exist")}
NO_SUCH_USER_TERM = {"no_such_user": (EX_UNAVAILABLE, 'Error:\n{{:no_such_user, "{name}"}}')}


def _json(limits: dict) -> str:
    return json.dumps(limits, separators=(",", ":"), sort_keys=True)


@command("set_vhost_limits", group="Virtual hosts", args=(1, 1), help="Sets virtual host limits",
         usage="set_vhost_limits [--vhost <vhost>] <definition>")
def set_vhost_limits(ctx, definition):
    ctx.info(f'Setting vhost limits to "{definition}" for vhost "{ctx.vhost}" ...')
    ctx.call("set_vhost_limits", NO_SUCH_VHOST, name=ctx.vhost, limits=parse_json_argument(definition))


@command("clear_vhost_limits", group="Virtual hosts", args=(0, 0), help="Clears virtual host limits",
         usage="clear_vhost_limits [--vhost <vhost>]")
def clear_vhost_limits(ctx):
    ctx.info(f'Clearing vhost "{ctx.vhost}" limits ...')
    ctx.call("clear_vhost_limits", name=ctx.vhost)


@command("list_vhost_limits", group="Virtual hosts", args=(0, 0), flags=("--global",),
         help="Displays configured virtual host limits",
         usage="list_vhost_limits [--vhost <vhost>] [--global] [--no-table-headers]")
def list_vhost_limits(ctx):
    if ctx.opts.own.get("global"):
        ctx.info("Listing limits for all vhosts ...")
        rows = ctx.call("list_vhost_limits")
        return Rows(["vhost", "limits"], [{**r, "limits": _json(r["limits"])} for r in rows])
    ctx.info(f'Listing limits for vhost "{ctx.vhost}" ...')
    (row,) = ctx.call("list_vhost_limits", NO_SUCH_VHOST, name=ctx.vhost)
    value = _json(row["limits"]) if row["limits"] else ""
    if ctx.opts.formatter == "json":
        node = ctx.call("status")["node"]
        return json.dumps({"node": node, "result": "ok", "value": value}, separators=(",", ":"))
    return value


@command("set_user_limits", group="Users", args=(2, 2), help="Sets user limits",
         usage="set_user_limits <username> <definition>")
def set_user_limits(ctx, username, definition):
    ctx.info(f'Setting user limits to "{definition}" for user "{username}" ...')
    ctx.call("set_user_limits", NO_SUCH_USER_TERM, name=username, limits=parse_json_argument(definition))


@command("clear_user_limits", group="Users", args=(2, 2), help="Clears user connection/channel limits",
         usage="clear_user_limits <username> <limit_type> | all")
def clear_user_limits(ctx, username, limit):
    what = "all limits" if limit == "all" else f'"{limit}" limit'
    ctx.info(f'Clearing {what} for user "{username}" ...')
    ctx.call("clear_user_limits", NO_SUCH_USER_TERM, name=username, limit=limit)


@command("list_user_limits", group="Users", args=(0, 0), flags=("--global",), options=("--user",),
         help="Displays configured user limits",
         usage="list_user_limits [--user <username>] [--global]")
def list_user_limits(ctx):
    if ctx.opts.own.get("global"):
        ctx.info("Listing limits for all users ...")
        rows = ctx.call("list_user_limits")
        return Rows(["user", "limits"], [{**r, "limits": _json(r["limits"])} for r in rows])
    user = ctx.opts.own.get("user", "guest")
    ctx.info(f'Listing limits for user "{user}" ...')
    (row,) = ctx.call("list_user_limits", NO_SUCH_USER_TERM, name=user)
    if ctx.opts.formatter == "json":
        return json.dumps({"message": _json(row["limits"])}, separators=(",", ":"))
    return _json(row["limits"])
