"""Permissions and topic permissions: set/clear/list_permissions, list_user_permissions,
set/clear/list_topic_permissions, list_user_topic_permissions -- worded as ``rabbitmqctl``
3.10 words them (``tests/data/rabbitmqctl/permissions.json``).

An invalid regular expression is reported as RabbitMQ reports it: the broker's warning
(a timestamped log line RabbitMQ forwards to the CLI) and the Erlang error term with PCRE's
message and offset (``broker/admin.py`` maps Python's ``re`` messages to PCRE's)."""
from __future__ import annotations

import time

from .framework import EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, Rows, command

GROUP = "Access Control"
NO_SUCH_USER = {"no_such_user": (EX_NOUSER, "Error:\nUser {user} does not exist"),
                "no_such_vhost": (EX_UNAVAILABLE, "Error:\nVirtual host {vhost} does not exist")}
NO_SUCH_VHOST = {"no_such_vhost": (EX_DATAERR, "Virtual host '{vhost}' does not exist")}
NO_SUCH_USER_TERM = {"no_such_user": (EX_UNAVAILABLE, 'Error:\n{{:no_such_user, "{user}"}}')}


def _log_time() -> str:
    t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


@command("set_permissions", group=GROUP, args=(4, 4), help="Sets user permissions for a vhost",
         usage="set_permissions [--vhost <vhost>] <username> <conf> <write> <read>")
def set_permissions(ctx, user, configure, write, read):
    ctx.info(f'Setting permissions for user "{user}" in vhost "{ctx.vhost}" ...')
    ctx.call("set_permissions", {**NO_SUCH_USER, "invalid_regexp": (EX_UNAVAILABLE, (
        f"\n{_log_time()} [warning] Failed to set permissions for '{{user}}' in virtual host '{{vhost}}': "
        "regular expression '{regexp}' is invalid\nError:\n{{:invalid_regexp, '{regexp}', {{'{error}', {offset}}}}}"))},
        user=user, vhost=ctx.vhost, configure=configure, write=write, read=read)


@command("clear_permissions", group=GROUP, args=(1, 1), help="Revokes user permissions for a vhost",
         usage="clear_permissions [--vhost <vhost>] <username>")
def clear_permissions(ctx, user):
    ctx.info(f'Clearing permissions for user "{user}" in vhost "{ctx.vhost}" ...')
    ctx.call("clear_permissions", NO_SUCH_USER, user=user, vhost=ctx.vhost)


@command("list_permissions", group=GROUP, args=(0, 0), help="Lists user permissions in a virtual host",
         usage="list_permissions [--vhost <vhost>] [--no-table-headers] [--timeout <timeout>]")
def list_permissions(ctx):
    ctx.info(f'Listing permissions for vhost "{ctx.vhost}" ...')
    return Rows(["user", "configure", "write", "read"],
                ctx.call("list_permissions", NO_SUCH_VHOST, vhost=ctx.vhost))


@command("list_user_permissions", group=GROUP, args=(1, 1),
         help="Lists permissions of a user across all virtual hosts",
         usage="list_user_permissions [--no-table-headers] <username> [--timeout <timeout>]")
def list_user_permissions(ctx, user):
    ctx.info(f'Listing permissions for user "{user}" ...')
    return Rows(["vhost", "configure", "write", "read"],
                ctx.call("list_permissions", NO_SUCH_USER_TERM, user=user))


@command("set_topic_permissions", group=GROUP, args=(4, 4), help="Sets user topic permissions for an exchange",
         usage="set_topic_permissions [--vhost <vhost>] <username> <exchange> <write> <read>")
def set_topic_permissions(ctx, user, exchange, write, read):
    ctx.info(f'Setting topic permissions on "{exchange}" for user "{user}" in vhost "{ctx.vhost}" ...')
    ctx.call("set_topic_permissions", {**NO_SUCH_USER, "invalid_regexp": (EX_UNAVAILABLE, (
        f"\n{_log_time()} [warning] Failed to set topic permissions on exchange '{{exchange}}' for "
        "'{user}' in virtual host '{vhost}': regular expression '{regexp}' is invalid\nError:\n"
        '{{:invalid_regexp, "{regexp}", {{\'{error}\', {offset}}}}}'))},
        user=user, vhost=ctx.vhost, exchange=exchange, write=write, read=read)


@command("clear_topic_permissions", group=GROUP, args=(1, 2),
         help="Clears user topic permissions for a vhost or exchange",
         usage="clear_topic_permissions [--vhost <vhost>] <username> [<exchange>]")
def clear_topic_permissions(ctx, user, exchange=None):
    on = f'on "{exchange}" ' if exchange is not None else ""
    ctx.info(f'Clearing topic permissions {on}for user "{user}" in vhost "{ctx.vhost}" ...')
    args = {"exchange": exchange} if exchange is not None else {}
    ctx.call("clear_topic_permissions", NO_SUCH_USER, user=user, vhost=ctx.vhost, **args)


@command("list_topic_permissions", group=GROUP, args=(0, 0), help="Lists topic permissions in a virtual host",
         usage="list_topic_permissions [--vhost <vhost>] [--no-table-headers] [--timeout <timeout>]")
def list_topic_permissions(ctx):
    ctx.info(f'Listing topic permissions for vhost "{ctx.vhost}" ...')
    return Rows(["user", "exchange", "write", "read"],
                ctx.call("list_topic_permissions", NO_SUCH_VHOST, vhost=ctx.vhost))


@command("list_user_topic_permissions", group=GROUP, args=(1, 1), help="Lists user topic permissions",
         usage="list_user_topic_permissions [--no-table-headers] <username> [--timeout <timeout>]")
def list_user_topic_permissions(ctx, user):
    ctx.info(f'Listing topic permissions for user "{user}" ...')
    rows = ctx.call("list_topic_permissions", NO_SUCH_USER_TERM, user=user)
    # rabbitmqctl 3.10 prints this listing without its header row
    ctx.opts.no_table_headers = True
    return Rows(["vhost", "exchange", "write", "read"], rows)
