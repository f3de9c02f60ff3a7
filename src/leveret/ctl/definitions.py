"""``export_definitions`` and ``import_definitions`` (``rabbitmqctl`` 3.10's arguments and
wording; ``tests/data/rabbitmqctl/definitions.json``).

``export_definitions <file>`` writes the broker's definitions (``broker/definitions.py``, the
management API's export) as JSON to the file, ``-`` to standard output. ``import_definitions
[<file>]`` reads a file (``-`` is a file name, as in RabbitMQ 3.10), or standard input without
one, and applies it with the one importer that serves the API and ``leveret serve
--definitions``. Only ``--format json`` is offered (RabbitMQ's ``erlang`` format is a compressed
Erlang term). The import is done when the command returns (RabbitMQ's runs on after it).
"""
from __future__ import annotations

import json
import os
import sys

from .framework import EX_DATAERR, EX_UNAVAILABLE, Exit, command


def _bad(ctx, text: str) -> Exit:
    e = ctx.usage(f"Bad argument: {text}")
    return Exit(EX_DATAERR, e.stderr)


def _format(ctx) -> None:
    if ctx.opts.own.get("format", "json") not in ("json", "erlang"):
        raise _bad(ctx, "Format should be either json or erlang")
    if ctx.opts.own.get("format") == "erlang":
        raise Exit(EX_UNAVAILABLE, "Error:\nThe erlang format is not supported by Leveret; use json")


@command("export_definitions", group="Definitions", args=(1, 1), options=("--format",),
         help="Exports definitions in JSON", usage='export_definitions <file_path | "-"> [--format <json | erlang>] '
                                                  "[--timeout <timeout>]")
def export_definitions(ctx, path):
    _format(ctx)
    if path != "-":
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise _bad(ctx, f"Directory {os.path.dirname(path)} does not exist")
    data = json.dumps(ctx.call("export_definitions"), separators=(",", ":"), ensure_ascii=False)
    if path == "-":
        return data
    ctx.info(f'Exporting definitions in JSON to a file at "{path}" ...')
    try:
        with open(path, "w") as f:
            f.write(data)
    except OSError as e:
        raise Exit(EX_UNAVAILABLE, f"Error:\n{e.strerror}: {path}") from None


@command("import_definitions", group="Definitions", args=(0, 1), options=("--format",),
         flags=("--skip-if-unchanged",), help="Imports definitions in JSON",
         usage='import_definitions <file_path | "-"> [--format <json | erlang>] [--skip-if-unchanged] '
               "[--timeout <timeout>]")
def import_definitions(ctx, path=None):
    _format(ctx)
    if path is not None and not os.path.isfile(path):
        raise _bad(ctx, f"File {path} does not exist")
    if path is None:
        ctx.info("Importing definitions in JSON from standard input ...")
        text = sys.stdin.read()
    else:
        ctx.info(f'Importing definitions in JSON from a file at "{path}" ...')
        with open(path) as f:
            text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        # as RabbitMQ's JSON decoder names the problem: the end of input, or the text from the
        # first unexpected token on
        why = ":unexpected_end_of_buffer" if not text[e.pos:].strip() else \
            f'{{:unexpected_token, "{text[e.pos:].rstrip()}"}}'
        raise Exit(EX_DATAERR, f"Error:\nFailed to deserialise input (format: JSON) (error: {why})") from None
    ctx.call("import_definitions", {"definitions_error": (EX_DATAERR, "Error:\n{message}")}, definitions=data)
    return "Successfully started definition import. This process is asynchronous and can take some time."
