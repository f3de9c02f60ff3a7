"""``leveret ctl`` / ``leveretctl``: parse the command line, run one command, exit as rabbitmqctl."""
from __future__ import annotations

import os
import socket
import sys

from . import (definitions, diagnostics, federation, limits, node, objects, permissions, policies, shovels, users,  # noqa: F401
               vhosts)  # (they register their commands)
from .client import ControlClient, Unreachable, socket_path
from .framework import (DIAGNOSTICS, EX_OK, EX_TEMPFAIL, EX_USAGE, FORMATTERS, GROUPS, REGISTRY, USAGE_PREFIX, Context,
                        Exit, Rows, command, format_rows, parse, usage_error, usage_text)


def general_usage(prog: str, registry: dict | None = None) -> str:
    registry = REGISTRY if registry is None else registry
    lines = ["\x1b[1mUsage\x1b[0m", "", f"{prog} {USAGE_PREFIX} <command> [<command options>]", "",
             "Available commands:", ""]
    for group in GROUPS:
        cmds = [c for c in registry.values() if c.group == group]
        if not cmds:
            continue
        lines += [f"\x1b[1m{group}\x1b[0m:", ""]
        lines += [f"   {c.name:<30}{c.help}" for c in cmds]
        lines.append("")
    lines.append(f"Use '{prog} help <command>' to learn more about a specific command")
    return "\n".join(lines)


@command("help", group="Help", usage="help [<command>]", args=(0, 1),
         help="Displays usage information for a command")
def help_command(ctx, name=None):
    if name is None:
        return general_usage(ctx.prog)
    cmd = REGISTRY.get(name)
    if cmd is None:
        raise Exit(EX_USAGE, f"\nCommand '{name}' not found. \n\n{general_usage(ctx.prog)}")
    return f"{usage_text(ctx.prog, cmd)}\n\n{cmd.help}"


def _shown(argv: list[str]) -> list[str]:
    """The arguments as a usage error repeats them: without where the broker is (Leveret's own
    options, which rabbitmqctl does not have)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--data-dir", "--socket"):
            skip = True
        elif not a.startswith(("--data-dir=", "--socket=")):
            out.append(a)
    return out


def run(argv: list[str], prog: str = "leveretctl", registry: dict | None = None) -> int:
    """Run one command line (``registry``: ctl's commands, or ``DIAGNOSTICS``).

    A reader that goes away early (``leveretctl list_queues | head``) ends the command quietly
    with exit 1, as Python's documentation advises for SIGPIPE, instead of a traceback."""
    try:
        return _run(argv, prog, registry)
    except BrokenPipeError:
        # whatever is still buffered for the closed pipe must not raise again at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv: list[str], prog: str, registry: dict | None) -> int:
    registry = REGISTRY if registry is None else registry
    name, args, opts, unknown = parse(argv, registry)
    if name is None:
        print(general_usage(prog, registry), file=sys.stderr)
        return EX_USAGE
    cmd = registry.get(name)
    if cmd is None:
        print(f"\nCommand '{name}' not found. \n\n{general_usage(prog, registry)}", file=sys.stderr)
        return EX_USAGE
    client = None
    try:
        if opts.help:
            print(f"{usage_text(prog, cmd)}\n\n{cmd.help}")
            return EX_OK
        if unknown:
            raise usage_error(prog, cmd, "Invalid options for this command:\n"
                              + "\n".join(f"{u} : " for u in unknown), _shown(argv))
        if opts.formatter not in FORMATTERS:
            raise usage_error(prog, cmd, f"formatter '{opts.formatter}' is not supported "
                              f"(use one of: {', '.join(FORMATTERS)})", _shown(argv))
        if len(args) < cmd.min_args:
            raise usage_error(prog, cmd, "not enough arguments.", _shown(argv))
        if cmd.max_args is not None and len(args) > cmd.max_args:
            raise usage_error(prog, cmd, "too many arguments.", _shown(argv))
        try:
            timeout = float(opts.timeout) if opts.timeout is not None else None
        except ValueError:
            raise usage_error(prog, cmd, f"timeout '{opts.timeout}' is not a number", _shown(argv)) from None
        client = ControlClient(socket_path(opts.data_dir, opts.socket), timeout)
        if cmd.name != "help":
            client.connect()
        ctx = Context(prog, cmd, opts, client, _shown(argv))
        try:
            out = cmd.handler(ctx, *args)
        except socket.timeout:
            raise Exit(EX_TEMPFAIL, f"Error: operation {name} timed out after {timeout} seconds") from None
        if isinstance(out, Rows):
            sys.stdout.write(format_rows(out, opts))
        elif out is not None:
            print(out)
        return EX_OK
    except Unreachable as e:
        print(str(e), file=sys.stderr)
        return 69
    except Exit as e:
        if e.stderr:
            print(e.stderr, file=sys.stderr)
        return e.code
    finally:
        if client is not None:
            client.close()
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """The ``leveretctl`` console script."""
    return run(sys.argv[1:] if argv is None else argv)


def diagnostics_main(argv: list[str] | None = None, prog: str = "leveret-diagnostics") -> int:
    """The ``leveret-diagnostics`` console script (``leveret diagnostics``)."""
    return run(sys.argv[1:] if argv is None else argv, prog, DIAGNOSTICS)
