"""Policies, operator policies, runtime parameters and global parameters: ``set_policy``,
``clear_policy``, ``list_policies``, their ``operator_policy`` twins, ``set_parameter``,
``clear_parameter``, ``list_parameters``, ``set_global_parameter``,
``clear_global_parameter``, ``list_global_parameters`` -- worded as ``rabbitmqctl`` 3.10 words
them (``tests/data/rabbitmqctl/policies.json``). Definitions and values print as compact JSON
(sorted keys for a policy's definition, as RabbitMQ's encoder writes an Erlang map; a
parameter's value in the order RabbitMQ stores it)."""
from __future__ import annotations

import json

from .framework import EX_DATAERR, EX_UNAVAILABLE, Rows, command, parse_json_argument

NO_SUCH_VHOST = {"no_such_vhost": (EX_DATAERR, "Virtual host '{vhost}' does not exist")}
INVALID = {"invalid_policy": (EX_UNAVAILABLE, "Error:\nValidation failed\n\n{message}\n"),
           "invalid_parameter": (EX_UNAVAILABLE, "Error:\n{message}"),
           "invalid_limit": (EX_UNAVAILABLE, "Error:\n{message}"),
           "no_such_vhost": (EX_DATAERR, "Virtual host '{vhost}' does not exist")}
POLICY_COLUMNS = ["vhost", "name", "pattern", "apply-to", "definition", "priority"]


def _compact(value, sort: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=sort, ensure_ascii=False)


def _set_policy(ctx, name, pattern, definition, operator: bool):
    own = ctx.opts.own
    priority, apply_to = own.get("priority", "0"), own.get("apply-to", "all")
    try:
        priority_value = int(priority)
    except ValueError:
        raise ctx.usage(f"Invalid options for this command:\n--priority : {priority}") from None
    what = "operator policy override" if operator else "policy"
    ctx.info(f'Setting {what} "{name}" for pattern "{pattern}" to "{definition}" with priority "{priority}" '
             f'for vhost "{ctx.vhost}" ...')
    ctx.call("set_policy", INVALID, vhost=ctx.vhost, name=name, pattern=pattern,
             definition=parse_json_argument(definition), priority=priority_value, apply_to=apply_to,
             operator=operator)


def _clear_policy(ctx, name, operator: bool):
    ctx.info(f'Clearing {"operator policy" if operator else "policy"} "{name}" on vhost "{ctx.vhost}" ...')
    ctx.call("clear_policy", vhost=ctx.vhost, name=name, operator=operator)


def _list_policies(ctx, operator: bool):
    what = "operator policy overrides" if operator else "policies"
    ctx.info(f'Listing {what} for vhost "{ctx.vhost}" ...')
    rows = ctx.call("list_policies", NO_SUCH_VHOST, vhost=ctx.vhost, operator=operator)
    return Rows(POLICY_COLUMNS, [{**r, "definition": _compact(r["definition"], sort=True)} for r in rows])


SET_USAGE = "[--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>"


@command("set_policy", group="Policies", args=(3, 3), options=("--priority", "--apply-to"),
         help="Sets or updates a policy", usage=f"set_policy {SET_USAGE}")
def set_policy(ctx, name, pattern, definition):
    _set_policy(ctx, name, pattern, definition, operator=False)


@command("clear_policy", group="Policies", args=(1, 1), help="Clears (removes) a policy",
         usage="clear_policy [--vhost <vhost>] <name>")
def clear_policy(ctx, name):
    _clear_policy(ctx, name, operator=False)


@command("list_policies", group="Policies", args=(0, 0), help="Lists all policies in a virtual host",
         usage="list_policies [--vhost <vhost>] [--no-table-headers] [--timeout <timeout>]")
def list_policies(ctx):
    return _list_policies(ctx, operator=False)


@command("set_operator_policy", group="Policies", args=(3, 3), options=("--priority", "--apply-to"),
         help="Sets an operator policy that overrides a subset of arguments in user policies",
         usage=f"set_operator_policy {SET_USAGE}")
def set_operator_policy(ctx, name, pattern, definition):
    _set_policy(ctx, name, pattern, definition, operator=True)


@command("clear_operator_policy", group="Policies", args=(1, 1), help="Clears an operator policy",
         usage="clear_operator_policy [--vhost <vhost>] <name>")
def clear_operator_policy(ctx, name):
    _clear_policy(ctx, name, operator=True)


@command("list_operator_policies", group="Policies", args=(0, 0),
         help="Lists operator policy overrides for a virtual host",
         usage="list_operator_policies [--vhost <vhost>] [--no-table-headers] [--timeout <timeout>]")
def list_operator_policies(ctx):
    return _list_policies(ctx, operator=True)


@command("set_parameter", group="Runtime Parameters", args=(3, 3), help="Sets a runtime parameter.",
         usage="set_parameter [--vhost <vhost>] <component_name> <name> <value>")
def set_parameter(ctx, component, name, value):
    ctx.info(f'Setting runtime parameter "{name}" for component "{component}" to "{value}" '
             f'in vhost "{ctx.vhost}" ...')
    ctx.call("set_parameter", INVALID, vhost=ctx.vhost, component=component, name=name,
             value=parse_json_argument(value))


@command("clear_parameter", group="Runtime Parameters", args=(2, 2), help="Clears a runtime parameter.",
         usage="clear_parameter [--vhost <vhost>] <component_name> <name>")
def clear_parameter(ctx, component, name):
    ctx.info(f'Clearing runtime parameter "{name}" for component "{component}" on vhost "{ctx.vhost}" ...')
    ctx.call("clear_parameter", vhost=ctx.vhost, component=component, name=name)


@command("list_parameters", group="Runtime Parameters", args=(0, 0),
         help="Lists runtime parameters for a virtual host",
         usage="list_parameters [--vhost <vhost>] [--no-table-headers] [--timeout <timeout>]")
def list_parameters(ctx):
    ctx.info(f'Listing runtime parameters for vhost "{ctx.vhost}" ...')
    rows = ctx.call("list_parameters", NO_SUCH_VHOST, vhost=ctx.vhost)
    return Rows(["component", "name", "value"],
                [{**r, "value": _compact(_value(r))} for r in rows])


def _value(parameter: dict):
    """A parameter's value as RabbitMQ keeps it: maps (a policy's definition, limits) with
    sorted keys, a policy parameter's own keys in its order."""
    v = parameter["value"]
    if parameter["component"] in ("policy", "operator_policy") and isinstance(v, dict):
        return {**v, "definition": dict(sorted(v["definition"].items()))}
    return dict(sorted(v.items())) if isinstance(v, dict) else v


@command("set_global_parameter", group="Runtime Parameters", args=(2, 2), help="Sets a global runtime parameter.",
         usage="set_global_parameter <name> <value>")
def set_global_parameter(ctx, name, value):
    ctx.info(f'Setting global runtime parameter "{name}" to "{value}" ...')
    ctx.call("set_global_parameter", name=name, value=parse_json_argument(value))


@command("clear_global_parameter", group="Runtime Parameters", args=(1, 1),
         help="Clears a global runtime parameter", usage="clear_global_parameter <name>")
def clear_global_parameter(ctx, name):
    ctx.info(f'Clearing global runtime parameter "{name}" ...')
    ctx.call("clear_global_parameter", name=name)


@command("list_global_parameters", group="Runtime Parameters", args=(0, 0),
         help="Lists global runtime parameters",
         usage="list_global_parameters [--no-table-headers] [--timeout <timeout>]")
def list_global_parameters(ctx):
    ctx.info("Listing global runtime parameters ...")
    rows = ctx.call("list_global_parameters")
    return Rows(["name", "value"], [{**r, "value": _compact(r["value"])} for r in rows])
