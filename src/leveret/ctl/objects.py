"""Queues, exchanges, bindings, connections, channels and consumers: the ``list_*`` commands,
``purge_queue``, ``delete_queue``, ``close_connection`` and ``close_all_connections``, worded as
``rabbitmqctl`` 3.10 words them (``tests/data/rabbitmqctl/queues.json``, ``connections.json``).

Columns are RabbitMQ's info keys, accepted as separate arguments or comma-separated; an item
Leveret has no value for (``memory``, ``disk_reads``, ``slave_pids``, ...; a classic queue's
``leader``; a quorum queue's ``exclusive``) prints empty, as ``rabbitmqctl`` prints an item a
queue type does not have. Field tables print as ``[{"name",value}]`` in a table and as
``[["name","type",value]]`` in JSON; pids as ``<leveret@host.N.CH>`` (``server/control_ops.py``).
"""
from __future__ import annotations

from .framework import EX_UNAVAILABLE, EX_USAGE, Exit, Rows, command, columns_of, erlang_term, field_table

QUEUE_KEYS = ("arguments", "auto_delete", "consumer_capacity", "consumer_utilisation", "consumers", "disk_reads",
              "disk_writes", "durable", "exclusive", "exclusive_consumer_pid", "exclusive_consumer_tag",
              "head_message_timestamp", "leader", "members", "memory", "message_bytes", "message_bytes_persistent",
              "message_bytes_ram", "message_bytes_ready", "message_bytes_unacknowledged", "messages",
              "messages_persistent", "messages_ram", "messages_ready", "messages_ready_ram",
              "messages_unacknowledged", "messages_unacknowledged_ram", "name", "online", "owner_pid", "pid",
              "policy", "slave_pids", "state", "synchronised_slave_pids", "type")
EXCHANGE_KEYS = ("arguments", "auto_delete", "durable", "internal", "name", "policy", "type")
BINDING_KEYS = ("arguments", "destination_kind", "destination_name", "routing_key", "source_kind", "source_name")
CONNECTION_KEYS = ("auth_mechanism", "channel_max", "channels", "client_properties", "connected_at", "frame_max",
                   "host", "name", "peer_cert_issuer", "peer_cert_subject", "peer_cert_validity", "peer_host",
                   "peer_port", "pid", "port", "protocol", "recv_cnt", "recv_oct", "send_cnt", "send_oct",
                   "send_pend", "ssl", "ssl_cipher", "ssl_hash", "ssl_key_exchange", "ssl_protocol", "state",
                   "timeout", "user", "vhost")
CHANNEL_KEYS = ("acks_uncommitted", "confirm", "connection", "consumer_count", "global_prefetch_count",
                "messages_unacknowledged", "messages_uncommitted", "messages_unconfirmed", "name", "number", "pid",
                "prefetch_count", "transactional", "user", "vhost")
CONSUMER_KEYS = ("ack_required", "active", "activity_status", "arguments", "channel_pid", "consumer_tag",
                 "prefetch_count", "queue_name")

RENDER = {"arguments": field_table, "client_properties": field_table,
          "protocol": lambda v: "{" + ",".join(str(x) for x in v) + "}",
          "online": erlang_term, "members": erlang_term}


def listing(columns, rows) -> Rows:
    return Rows(columns, rows, stream=True, render=RENDER)


def _timeout_line(ctx) -> None:
    ctx.info(f"Timeout: {float(ctx.opts.timeout) if ctx.opts.timeout is not None else 60.0} seconds ...")


@command("list_queues", group="Listing", args=(0, None), flags=("--online", "--offline", "--local"),
         help="Lists queues and their properties",
         usage="list_queues [--vhost <vhost>] [--online] [--offline] [--local] [--no-table-headers] "
               "[<column>, ...] [--timeout <timeout>]")
def list_queues(ctx, *columns):
    cols = columns_of(columns, QUEUE_KEYS, ("name", "messages"), ctx)
    _timeout_line(ctx)
    ctx.info(f"Listing queues for vhost {ctx.vhost} ...")
    rows = [] if ctx.opts.own.get("offline") else ctx.call("list_queues", vhost=ctx.vhost)
    return listing(cols, rows)


@command("list_exchanges", group="Listing", args=(0, None), help="Lists exchanges",
         usage="list_exchanges [--vhost <vhost>] [--no-table-headers] [<column> ...] [--timeout <timeout>]")
def list_exchanges(ctx, *columns):
    cols = columns_of(columns, EXCHANGE_KEYS, ("name", "type"), ctx)
    ctx.info(f"Listing exchanges for vhost {ctx.vhost} ...")
    return listing(cols, ctx.call("list_exchanges", vhost=ctx.vhost))


@command("list_bindings", group="Listing", args=(0, None), help="Lists all bindings on a vhost",
         usage="list_bindings [--vhost <vhost>] [--no-table-headers] [<column> ...] [--timeout <timeout>]")
def list_bindings(ctx, *columns):
    cols = columns_of(columns, BINDING_KEYS, ("source_name", "source_kind", "destination_name", "destination_kind",
                                              "routing_key", "arguments"), ctx)
    ctx.info(f"Listing bindings for vhost {ctx.vhost}...")
    return listing(cols, ctx.call("list_bindings", vhost=ctx.vhost))


@command("list_connections", group="Listing", args=(0, None), help="Lists AMQP 0.9.1 connections for the node",
         usage="list_connections [--no-table-headers] [<column> ...] [--timeout <timeout>]")
def list_connections(ctx, *columns):
    cols = columns_of(columns, CONNECTION_KEYS, ("user", "peer_host", "peer_port", "state"), ctx)
    ctx.info("Listing connections ...")
    return listing(cols, ctx.call("list_connections"))


@command("list_channels", group="Listing", args=(0, None), help="Lists all channels in the node",
         usage="list_channels [--no-table-headers] [<column> ...]")
def list_channels(ctx, *columns):
    cols = columns_of(columns, CHANNEL_KEYS, ("pid", "user", "consumer_count", "messages_unacknowledged"), ctx)
    ctx.info("Listing channels ...")
    return listing(cols, ctx.call("list_channels"))


@command("list_consumers", group="Listing", args=(0, None), help="Lists all consumers for a vhost",
         usage="list_consumers [--vhost <vhost>] [--no-table-headers] [<column> ...] [--timeout <timeout>]")
def list_consumers(ctx, *columns):
    cols = columns_of(columns, CONSUMER_KEYS, ("queue_name", "channel_pid", "consumer_tag", "ack_required",
                                               "prefetch_count", "active", "arguments"), ctx)
    ctx.info(f"Listing consumers in vhost {ctx.vhost} ...")
    return listing(cols, ctx.call("list_consumers", vhost=ctx.vhost))


@command("purge_queue", group="Queues", args=(1, 1), help="Purges a queue (removes all messages in it)",
         usage="purge_queue <queue> [--timeout <timeout>]")
def purge_queue(ctx, queue):
    ctx.info(f"Purging queue '{queue}' in vhost '{ctx.vhost}' ...")
    ctx.call("purge_queue", {"not_found": (EX_UNAVAILABLE, "Error:\nnot_found"),
                             "no_such_vhost": (EX_UNAVAILABLE, "Error:\nnot_found")}, vhost=ctx.vhost, name=queue)


@command("delete_queue", group="Queues", args=(1, 1), flags=("--if-empty", "-e", "--if-unused", "-u"),
         help="Deletes a queue",
         usage="delete_queue <queue_name> [--if-empty|-e] [--if-unused|-u] [--timeout <timeout>]")
def delete_queue(ctx, queue):
    own = ctx.opts.own
    if_empty, if_unused = bool(own.get("if-empty") or own.get("e")), bool(own.get("if-unused") or own.get("u"))
    cond = " if queue is empty and unused" if if_empty and if_unused else \
        " if queue is empty" if if_empty else " if queue is unused" if if_unused else ""
    ctx.info(f"Deleting queue '{queue}' on vhost '{ctx.vhost}'{cond} ...")
    try:
        n = ctx.call("delete_queue", {"not_found": (EX_USAGE, "Error:\nQueue not found"),
                                      "no_such_vhost": (EX_USAGE, "Error:\nQueue not found"),
                                      "in_use": (EX_USAGE, "Error:\nQueue is in use"),
                                      "not_empty": (EX_USAGE, "Error:\nQueue is not empty")},
                     vhost=ctx.vhost, name=queue, if_empty=if_empty, if_unused=if_unused)
    except Exit as e:
        if e.code != EX_UNAVAILABLE or "not supported by quorum queues" not in e.stderr:
            raise
        # rabbitmqctl prints the quorum queue's refusal as the term it got back, and exits 0
        text = e.stderr.split("\n", 1)[-1].replace(f"queue '{queue}' in vhost '{ctx.vhost}'", "~s")
        arg = f"queue \\'{queue}\\' in vhost \\'{ctx.vhost}\\'"
        return f"{{:protocol_error, :not_implemented, '{text}', ['{arg}']}}"
    return f"Queue was successfully deleted with {n} ready messages"


@command("close_connection", group="Connections", args=(2, 2),
         help="Instructs the broker to close the connection associated with the Erlang process id",
         usage="close_connection <connection pid> <explanation>")
def close_connection(ctx, connection, explanation):
    ctx.info(f"Closing connection {connection}, reason: {explanation}...")
    ctx.call("close_connection", {"invalid_pid_syntax": (EX_UNAVAILABLE,
                                                         'Error:\nError:\n{{:invalid_pid_syntax, "{connection}"}}')},
             connection=connection, reason=explanation)


@command("close_all_connections", group="Connections", args=(1, 1), flags=("--global",),
         options=("--limit", "--per-connection-delay", "-n", "--node"),
         help="Instructs the broker to close all connections for the specified vhost or entire node",
         usage="close_all_connections [--vhost <vhost> --limit <limit>] [-n <node> --global] "
               "[--per-connection-delay <delay>] <explanation>")
def close_all_connections(ctx, explanation):
    own = ctx.opts.own
    limit = own.get("limit")
    if limit is not None:
        try:
            limit = int(limit)
        except ValueError:
            raise ctx.usage(f"Invalid options for this command:\n--limit : {limit}") from None
    if own.get("global"):
        node = ctx.call("status")["node"]
        ctx.info(f"Closing all connections to node {node} (across all vhosts), reason: {explanation}...")
        n = ctx.call("close_all_connections", reason=explanation, limit=limit)
    else:
        ctx.info(f"Closing all connections in vhost {ctx.vhost}, reason: {explanation}...")
        n = ctx.call("close_all_connections", reason=explanation, vhost=ctx.vhost, limit=limit)
    return f"Closed {n} connections"
