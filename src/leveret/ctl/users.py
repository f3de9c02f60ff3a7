"""Users: add_user, delete_user, change_password, clear_password, authenticate_user,
set_user_tags, list_users -- worded as ``rabbitmqctl`` 3.10 words them (recorded in
``tests/data/rabbitmqctl/users.json``)."""
from __future__ import annotations

from .framework import EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_UNAVAILABLE, Rows, command

GROUP = "Users"
NO_SUCH_USER = {"no_such_user": (EX_NOUSER, 'Error:\nUser "{name}" does not exist')}
NO_SUCH_USER_TERM = {"no_such_user": (EX_UNAVAILABLE, 'Error:\n{{:no_such_user, "{name}"}}')}


@command("add_user", group=GROUP, usage="add_user <username> <password>", args=(1, 2),
         help="Creates a new user in the internal database. This user will have no permissions "
              "for any virtual hosts by default.")
def add_user(ctx, username, password=None):
    ctx.info(f'Adding user "{username}" ...')
    password = ctx.password(password, EX_DATAERR)
    ctx.call("add_user", {"user_already_exists": (EX_SOFTWARE, 'Error:\nUser "{name}" already exists')},
             name=username, password=password)
    ctx.info("Done. Don't forget to grant the user permissions to some virtual hosts! "
             f"See '{ctx.prog} help set_permissions' to learn more.")


@command("delete_user", group=GROUP, usage="delete_user <username>", args=(1, 1),
         help="Removes a user from the internal database.")
def delete_user(ctx, username):
    ctx.info(f'Deleting user "{username}" ...')
    ctx.call("delete_user", NO_SUCH_USER, name=username)


@command("change_password", group=GROUP, usage="change_password <username> <password>", args=(1, 2),
         help="Changes the user password")
def change_password(ctx, username, password=None):
    ctx.info(f'Changing password for user "{username}" ...')
    password = ctx.password(password, EX_SOFTWARE)
    ctx.call("change_password", NO_SUCH_USER, name=username, password=password)


@command("clear_password", group=GROUP, usage="clear_password <username>", args=(1, 1),
         help="Clears (resets) password and disables password login for a user")
def clear_password(ctx, username):
    ctx.info(f'Clearing password for user "{username}" ...')
    ctx.call("clear_password", NO_SUCH_USER_TERM, name=username)


@command("authenticate_user", group=GROUP, usage="authenticate_user <username> <password>", args=(1, 2),
         help="Attempts to authenticate a user. Exits with a non-zero code if authentication fails.")
def authenticate_user(ctx, username, password=None):
    ctx.info(f'Authenticating user "{username}" ...')
    password = ctx.password(password, EX_DATAERR)
    ctx.call("authenticate_user",
             {"refused": (EX_DATAERR, 'Error:\nError: failed to authenticate user "{name}"\n{message}')},
             name=username, password=password)
    ctx.print("Success")


@command("set_user_tags", group=GROUP, usage="set_user_tags <username> <tag> [...]", args=(1, None),
         help="Sets user tags")
def set_user_tags(ctx, username, *tags):
    ctx.info(f'Setting tags for user "{username}" to [{", ".join(tags)}] ...')
    ctx.call("set_user_tags", NO_SUCH_USER, name=username, tags=list(tags))


@command("list_users", group=GROUP, usage="list_users [--no-table-headers] [--timeout <timeout>]",
         args=(0, 0), help="List user names and tags")
def list_users(ctx):
    ctx.info("Listing users ...")
    return Rows(["user", "tags"], ctx.call("list_users"))
