"""The control channel: a Unix socket through which ``leveret ctl`` administers a running broker.

``rabbitmqctl`` reaches a RabbitMQ node over Erlang distribution, authenticated by the Erlang
cookie, a file only the node's OS user can read. Leveret's equivalent is a Unix domain socket
in the broker's data directory (``<data_dir>/ctl.sock``, ``Settings.control_socket``):

* **Who may use it.** The socket file is created mode 0600 (``fchmod`` before ``bind``, so
  it never exists with a wider mode, and ``chmod`` after, for systems whose ``bind`` ignores
  the first) in a directory that only its owner may write; Linux requires write permission on
  a socket file to ``connect`` to it. So only the broker's OS user (and root) get in -- the
  cookie's guarantee, from file permissions alone, with no password to configure or leak.
  The broker refuses to open it in a directory others can write (anyone could replace the
  socket with their own and collect the passwords ``ctl add_user`` sends).
* **Why not the HTTP management API.** It may be switched off, and ``ctl`` must work before
  any user is set up, as ``rabbitmqctl`` does; both call the same ``Broker`` methods
  (``broker/admin.py``, ``introspect.py``, ``definitions.py``), the API with users and tags for
  authorisation.
* **Protocol.** JSON lines: the client sends ``{"command": NAME, "args": {...}}``; the
  broker answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"kind": ...,
  "message": ..., ...details}}`` -- ``kind`` is RabbitMQ's error term (``no_such_user``,
  ``user_already_exists``, ``invalid_regexp``, ...), from :class:`~leveret.broker.admin.AdminError`.
  A connection may send several requests; each is answered in order. Requests run in the
  broker's event loop, between AMQP frames, so an operation is atomic with respect to
  clients and its effects (closing a deleted user's connections) happen at once.
* A broker without a data directory (the embedded default) opens no control socket unless
  ``Settings.control_socket`` names a path. The socket is removed when the broker stops; a
  stale one left by a killed broker is replaced at start (the data directory's lock already
  guarantees no other broker uses it).

The commands are the :data:`COMMANDS` table below; the operations commands (``list_queues``,
``set_policy``, ``export_definitions``, ``node_status``, ...) are registered by
``control_ops.py``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat

from .. import __version__
from ..broker.admin import AdminError

log = logging.getLogger("leveret.control")

MAX_REQUEST = 1 << 20   # one request line (a definitions import would be the largest)

# Broker admin methods (broker/admin.py) the socket runs as they are: the request's args are
# the method's keyword arguments, its return value the result.
ADMIN_METHODS = (
    "delete_user", "change_password", "clear_password", "set_user_tags", "list_users",
    "set_user_limits", "clear_user_limits", "list_user_limits",
    "delete_vhost", "list_vhosts", "set_vhost_limits", "clear_vhost_limits", "list_vhost_limits",
    "set_permissions", "clear_permissions", "list_permissions",
    "set_topic_permissions", "clear_topic_permissions", "list_topic_permissions",
)

COMMANDS: dict = {name: (lambda method: lambda b, **args: getattr(b, method)(**args))(name)
                  for name in ADMIN_METHODS}


def command(name: str):
    """Register ``fn(broker, **args)`` as the control command ``name`` (a command that is not
    an admin method run as it is)."""
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


@command("add_user")
def _add_user(b, name: str, password: str | None):
    b.add_user(name, password, exist_ok=False)     # rabbitmqctl's add_user refuses an existing user


@command("add_vhost")
def _add_vhost(b, name: str, description: str = "", tags: list | str = (), default_queue_type: str | None = None):
    b.add_vhost(name, exist_ok=True, description=description, tags=tags, default_queue_type=default_queue_type)


@command("set_vhost_tags")
def _set_vhost_tags(b, name: str, tags: list):
    b.update_vhost_metadata(name, b._vhost(name).description, tags)


@command("authenticate_user")
def _authenticate_user(b, name: str, password: str):
    u = b.authenticate_user(name, password)
    return {"user": u.name, "tags": list(u.tags)}


@command("status")
def _status(b):
    """What a client needs to describe the node (``--formatter json`` prints its name)."""
    return {"node": node_name(), "version": __version__}


def node_name() -> str:
    """The node's name as RabbitMQ spells one: ``leveret@<short host name>``."""
    return "leveret@" + socket.gethostname().split(".")[0]


def handle(broker, request) -> dict:
    """Run one decoded request; always returns a response (never raises)."""
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        return _error("bad_request", 'a request is {"command": NAME, "args": {...}}')
    name = request["command"]
    fn = COMMANDS.get(name)
    if fn is None:
        return _error("unknown_command", f"no such command: {name}")
    args = request.get("args") or {}
    if not isinstance(args, dict):
        return _error("bad_request", "args must be an object")
    try:
        return {"ok": True, "result": fn(broker, **args)}
    except AdminError as e:
        return _error(e.kind, str(e), **e.details)
    except TypeError as e:
        return _error("bad_request", f"{name}: {e}")
    except Exception as e:  # a bug must not take the broker down with it
        log.exception("control command %s failed", name)
        return _error("internal_error", f"{name} failed: {e!r}")


def _error(kind: str, message: str, **details) -> dict:
    return {"ok": False, "error": {"kind": kind, "message": message, **details}}


class ControlServer:
    """The broker's end of the control socket."""

    def __init__(self, broker, path: str):
        self.broker = broker
        self.path = path
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        st = os.stat(directory)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            raise OSError(f"control socket directory {directory} is writable by other users "
                          f"(mode {stat.S_IMODE(st.st_mode):o}); make it 0700 or 0755")
        if os.path.lexists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path} exists and is not a socket")
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.fchmod(sock.fileno(), 0o600)   # Linux creates the file with the socket's mode
            sock.bind(self.path)
            os.chmod(self.path, 0o600)
        except BaseException:
            sock.close()
            raise
        self.server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_REQUEST)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:          # longer than MAX_REQUEST
                    writer.write(_line(_error("bad_request", f"request longer than {MAX_REQUEST} bytes")))
                    break
                if not line:
                    break
                try:
                    request = json.loads(line)
                except ValueError as e:
                    response = _error("bad_request", f"not JSON: {e}")
                else:
                    response = handle(self.broker, request)
                writer.write(_line(response))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def _line(response: dict) -> bytes:
    return json.dumps(response, default=str).encode() + b"\n"


from . import control_ops  # noqa: E402,F401  (registers the operations commands)
