"""Virtual hosts: add_vhost, delete_vhost, list_vhosts -- worded as ``rabbitmqctl`` 3.10 words
them (``tests/data/rabbitmqctl/vhosts.json``)."""
from __future__ import annotations

from .framework import EX_DATAERR, Rows, command

NO_SUCH_VHOST = {"no_such_vhost": (EX_DATAERR, "Virtual host '{name}' does not exist")}

# list_vhosts columns: what a Leveret vhost has (no description, tags, default queue type or
# tracing of its own: RabbitMQ's values for a vhost without them)
VHOST_COLUMNS = ("cluster_state", "default_queue_type", "description", "name", "tags", "tracing")


@command("add_vhost", group="Virtual hosts", usage="add_vhost <vhost>", args=(1, 1),
         help="Creates a virtual host")
def add_vhost(ctx, vhost):
    ctx.info(f'Adding vhost "{vhost}" ...')
    ctx.call("add_vhost", name=vhost)


@command("delete_vhost", group="Virtual hosts", usage="delete_vhost <vhost>", args=(1, 1),
         help="Deletes a virtual host")
def delete_vhost(ctx, vhost):
    ctx.info(f'Deleting vhost "{vhost}" ...')
    ctx.call("delete_vhost", NO_SUCH_VHOST, name=vhost)


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
    rows = [{"name": v["name"], "tracing": False, "tags": [], "default_queue_type": "undefined",
             "description": "Default virtual host" if v["name"] == "/" else "",
             "cluster_state": f"[{{{node}, running}}]"} for v in ctx.call("list_vhosts")]
    return Rows(columns, rows)
