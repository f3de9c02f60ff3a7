"""Virtual hosts: add_vhost, delete_vhost, set_vhost_tags, list_vhosts -- worded as
``rabbitmqctl`` 3.10 words them (``tests/data/rabbitmqctl/vhosts.json``).

RabbitMQ 3.10.8's ``add_vhost`` takes ``--description`` (``-d``), ``--tags`` and
``--default-queue-type``; an existing vhost is left as it is (its metadata unchanged, the
options not even checked). Its quirk, copied: only with ``--default-queue-type`` are the tags
split at commas (trimmed, empty ones dropped); without it the ``--tags`` text is stored as one
string, which ``list_vhosts`` prints as it is (``a,b``, ``""`` in JSON) where a list prints as
``[a, b]``. An unknown queue type is ``Error: invalid_queue_type``, exit 69, and no vhost.
``set_vhost_tags`` replaces the tags with its arguments as given (no splitting).
RabbitMQ 3.10.8 has no ``update_vhost_metadata`` command.
"""
from __future__ import annotations

from .framework import EX_DATAERR, EX_UNAVAILABLE, Rows, command

NO_SUCH_VHOST = {"no_such_vhost": (EX_DATAERR, "Virtual host '{name}' does not exist")}

# list_vhosts columns (Leveret has no tracing: false, as a RabbitMQ vhost without it)
VHOST_COLUMNS = ("cluster_state", "default_queue_type", "description", "name", "tags", "tracing")


def split_tags(text: str) -> list[str]:
    """``--tags`` with ``--default-queue-type`` (RabbitMQ's ``parse_tags``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


@command("add_vhost", group="Virtual hosts",
         usage='add_vhost <vhost> [--description <description> --tags "<tag1>,<tag2>,<...>" '
               '--default-queue-type <quorum|classic|stream>]',
         args=(1, 1), options=("--description", "-d", "--tags", "--default-queue-type"),
         help="Creates a virtual host")
def add_vhost(ctx, vhost):
    own = ctx.opts.own
    description = own.get("description", own.get("d", ""))
    tags = own.get("tags", "")
    queue_type = own.get("default-queue-type")
    ctx.info(f'Adding vhost "{vhost}" ...')
    ctx.call("add_vhost", {"invalid_queue_type": (EX_UNAVAILABLE, "Error:\ninvalid_queue_type")},
             name=vhost, description=description,
             tags=tags if queue_type is None else split_tags(tags), default_queue_type=queue_type)


@command("delete_vhost", group="Virtual hosts", usage="delete_vhost <vhost>", args=(1, 1),
         help="Deletes a virtual host")
def delete_vhost(ctx, vhost):
    ctx.info(f'Deleting vhost "{vhost}" ...')
    ctx.call("delete_vhost", NO_SUCH_VHOST, name=vhost)


@command("set_vhost_tags", group="Virtual hosts", usage="set_vhost_tags <vhost> <tag> [...]", args=(1, None),
         help="Sets virtual host tags")
def set_vhost_tags(ctx, vhost, *tags):
    ctx.info(f'Setting tags for virtual host "{vhost}" to [{", ".join(tags)}] ...')
    ctx.call("set_vhost_tags", {"no_such_vhost": (EX_DATAERR, 'Error:\nVirtual host "{name}" does not exist')},
             name=vhost, tags=list(tags))


def cluster_state(nodes: dict) -> str:
    """``{node: state}`` as rabbitmqctl's table prints it: ``[{rabbit@host, running}]``."""
    return "[" + ", ".join(f"{{{n}, {s}}}" for n, s in nodes.items()) + "]"


@command("list_vhosts", group="Access Control",
         usage="list_vhosts [--no-table-headers] [<column> ...] [--timeout <timeout>]", args=(0, None),
         help="Lists virtual hosts")
def list_vhosts(ctx, *columns):
    columns = list(columns) or ["name"]
    bad = [c for c in columns if c not in VHOST_COLUMNS]
    if bad:
        raise ctx.usage(f"Info key(s) {','.join(bad)} are not supported")
    ctx.info("Listing vhosts ...")
    node = ctx.call("status")["node"]
    rows = [{"name": v["name"], "description": v["description"], "tags": v["tags"],
             "default_queue_type": v["default_queue_type"] or "undefined", "tracing": False,
             "cluster_state": {node: "running"}} for v in ctx.call("list_vhosts")]
    return Rows(columns, rows, render={"cluster_state": cluster_state})
