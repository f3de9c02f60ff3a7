"""The command framework of ``leveret ctl``: a registry of commands, rabbitmqctl's argument
parsing, formatters and exit codes.

A command is a function registered with :func:`command` in its group's module
(``users.py``, ``vhosts.py``, ``permissions.py``, ``limits.py``): its name, usage line (as
``rabbitmqctl help`` prints it), one-line help, how many positional arguments it takes, its
own options, and the handler. The handler gets a :class:`Context` and the positional
arguments; it prints informational lines with ``ctx.info`` (suppressed by ``-q``), calls the
broker with ``ctx.call`` (whose ``errors`` table words each refusal and picks the exit code
as ``rabbitmqctl`` does for that command) and returns nothing, a :class:`Rows` listing
(printed by the chosen ``--formatter``) or text.

rabbitmqctl's conventions, copied (RabbitMQ 3.10 CLI, ``RabbitMQ.CLI.Core.ExitCodes``):
exit 0 on success, 64 for a usage error (``Error (argument validation): ...`` and the usage
line on stderr), 65 for bad data (a missing vhost for some commands, a failed
``authenticate_user``), 67 for a missing user, 69 for other refusals and for an unreachable
node, 70 for an internal or an "already exists" error, 75 for a timeout. Global options may
come anywhere: ``-p/--vhost``, ``-q/--quiet`` (no informational lines), ``-s/--silent`` (nor
table headers), ``--no-table-headers``, ``--formatter table|json|csv``, ``-t/--timeout``.
"""
from __future__ import annotations

import csv
import getpass
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Callable

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL = 0, 64, 65, 67, 69, 70, 75
FORMATTERS = ("table", "json", "csv")
USAGE_PREFIX = "[--data-dir <dir>] [--quiet]"


@dataclass
class Command:
    name: str
    group: str
    usage: str                      # after the program name and global options
    help: str
    handler: Callable
    min_args: int
    max_args: int | None            # None: any number
    flags: tuple = ()               # command options without a value (--global)
    options: tuple = ()             # command options with a value (--user)


REGISTRY: dict[str, Command] = {}
GROUPS: list[str] = []
DIAGNOSTICS: dict[str, Command] = {}    # leveret diagnostics' commands (rabbitmq-diagnostics)


def command(name: str, *, group: str, usage: str, help: str, args: tuple[int, int | None],
            flags: tuple = (), options: tuple = (), registry: dict | None = None):
    """Register a command; ``args`` is (minimum, maximum) positional arguments; ``registry``:
    :data:`REGISTRY` (``ctl``), or :data:`DIAGNOSTICS`."""
    def register(fn):
        (REGISTRY if registry is None else registry)[name] = Command(name, group, usage, help, fn, args[0],
                                                                     args[1], flags, options)
        if group not in GROUPS:
            GROUPS.append(group)
        return fn
    return register


class Exit(Exception):
    """Stop with ``code``, printing ``stderr`` (a line, or several)."""

    def __init__(self, code: int, stderr: str = ""):
        super().__init__(stderr)
        self.code = code
        self.stderr = stderr


@dataclass
class Rows:
    """A listing: ``columns`` and one dict per row. ``stream``: rabbitmqctl streams this
    listing (an empty one prints no header, and ``[`` and ``]`` on lines of their own in JSON).
    ``render``: column -> function giving the table/csv text of a value (JSON shows it as is)."""
    columns: list[str]
    rows: list[dict]
    stream: bool = False
    render: dict = field(default_factory=dict)


def erlang_term(v) -> str:
    """A value as rabbitmqctl's table formatter prints an Erlang term inside a list or tuple:
    strings in double quotes, ``[name, type, value]`` field-table entries as ``{"name",value}``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(erlang_term(x) for x in v) + "]"
    if isinstance(v, dict):
        return "[" + ",".join("{%s,%s}" % (erlang_term(k), erlang_term(x)) for k, x in v.items()) + "]"
    return "undefined" if v is None else str(v)


def field_table(entries) -> str:
    """``[[name, type, value], ...]`` as rabbitmqctl prints a field table: ``[{"name",value}]``."""
    return "[" + ",".join("{%s,%s}" % (erlang_term(k), erlang_term(v)) for k, _t, v in entries or ()) + "]"


def columns_of(args, allowed, default, ctx) -> list[str]:
    """The columns asked for (``name messages`` or ``name,messages``), or the default; a
    column that is not an info key is a usage error, as rabbitmqctl's."""
    cols = [c for a in args for c in a.split(",") if c] or list(default)
    bad = [c for c in cols if c not in allowed]
    if bad:
        raise ctx.usage(f"Info key(s) {','.join(bad)} are not supported")
    return cols


# Global options: name -> (attribute, takes a value)
GLOBAL_OPTIONS = {
    "-p": ("vhost", True), "--vhost": ("vhost", True),
    "-q": ("quiet", False), "--quiet": ("quiet", False),
    "-s": ("silent", False), "--silent": ("silent", False),
    "--no-table-headers": ("no_table_headers", False),
    "--formatter": ("formatter", True),
    "-t": ("timeout", True), "--timeout": ("timeout", True),
    "--data-dir": ("data_dir", True),
    "--socket": ("socket", True),
    "-?": ("help", False), "--help": ("help", False),
}


@dataclass
class Options:
    vhost: str = "/"
    quiet: bool = False
    silent: bool = False
    no_table_headers: bool = False
    formatter: str = "table"
    timeout: str | None = None
    data_dir: str | None = None
    socket: str | None = None
    help: bool = False
    own: dict = field(default_factory=dict)     # the command's own options


def parse(argv: list[str], registry: dict | None = None) -> tuple[str | None, list[str], Options, list[str]]:
    """(command name, positional arguments, options, unknown options) from rabbitmqctl-style
    argv: options anywhere, ``--opt=value`` or ``--opt value``, ``--`` ends options."""
    opts = Options()
    name = None
    positional: list[str] = []
    unknown: list[str] = []
    i = 0
    only_args = False
    while i < len(argv):
        a = argv[i]
        i += 1
        if only_args or not a.startswith("-") or a == "-":
            if name is None:
                name = a
            else:
                positional.append(a)
            continue
        if a == "--":
            only_args = True
            continue
        key, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        cmd = (REGISTRY if registry is None else registry).get(name) if name else None
        if key in GLOBAL_OPTIONS:
            attr, takes = GLOBAL_OPTIONS[key]
        elif cmd is not None and key in cmd.flags:
            opts.own[key.lstrip("-")] = True
            continue
        elif cmd is not None and key in cmd.options:
            attr, takes = None, True
        else:
            unknown.append(key)
            continue
        if takes and not eq:
            if i >= len(argv):
                unknown.append(key)
                continue
            value = argv[i]
            i += 1
        if attr is None:
            opts.own[key.lstrip("-")] = value
        else:
            setattr(opts, attr, value if takes else True)
    return name, positional, opts, unknown


def usage_text(prog: str, cmd: Command) -> str:
    return f"\x1b[1mUsage\x1b[0m\n\n{prog} {USAGE_PREFIX} {cmd.usage}"


def usage_error(prog: str, cmd: Command, reason: str, argv: list[str]) -> Exit:
    return Exit(EX_USAGE, f"Error (argument validation): {reason}\nArguments given:\n\t{' '.join(argv)}\n\n"
                          f"{usage_text(prog, cmd)}")


# ------------------------------------------------------------------ output

def render_value(v) -> str:
    """A field in table and csv output, as rabbitmqctl prints Erlang terms there."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(render_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return "" if v is None else str(v)


def format_rows(listing: Rows, opts: Options) -> str:
    cols, rows = listing.columns, listing.rows
    if opts.formatter == "json":
        if not rows:
            return "[\n]\n" if listing.stream else "[]\n"
        return "[\n" + "\n,".join(json.dumps({c: r.get(c) for c in cols}, separators=(",", ":"),
                                             ensure_ascii=False) for r in rows) + "\n]\n"
    if opts.formatter == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
        if rows:
            w.writerow(cols)
        for r in rows:
            w.writerow([cell(listing, c, r) for c in cols])
        return buf.getvalue() or ("" if listing.stream else "\n")
    if not rows:
        return "" if listing.stream else "\n"
    lines = [] if opts.silent or opts.no_table_headers else ["\t".join(cols)]
    lines += ["\t".join(cell(listing, c, r) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def cell(listing: Rows, column: str, row: dict) -> str:
    v = row.get(column)
    fn = listing.render.get(column)
    return fn(v) if fn is not None and v is not None else render_value(v)


class Context:
    """What a handler works with: the options, the broker connection, and output."""

    def __init__(self, prog: str, cmd: Command, opts: Options, client, argv: list[str], out=None):
        self.prog = prog
        self.cmd = cmd
        self.opts = opts
        self.client = client
        self.argv = argv
        self.out = out or sys.stdout

    def usage(self, reason: str) -> Exit:
        """A usage error (exit 64) for this command."""
        return usage_error(self.prog, self.cmd, reason, self.argv)

    @property
    def vhost(self) -> str:
        return self.opts.vhost

    def info(self, line: str) -> None:
        """An informational line: not with -q/-s, nor with a machine-readable formatter."""
        if not (self.opts.quiet or self.opts.silent or self.opts.formatter in ("json", "csv")):
            self.out.write(line + "\n")
            self.out.flush()

    def print(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def call(self, command: str, errors: dict | None = None, **args):
        """Run ``command`` on the broker; a refusal becomes ``Exit`` worded by ``errors``
        (kind -> (exit code, text formatted with the args and the error's details)); other
        refusals print "Error:" and the broker's message, exit 69."""
        ok, value = self.client.call(command, args)
        if ok:
            return value
        kind = value.get("kind")
        code, text = (errors or {}).get(kind, (EX_UNAVAILABLE, "Error:\n{message}"))
        raise Exit(code, text.format(**{**args, **value}))

    def password(self, given: str | None, code: int) -> str:
        """The password argument, or (when it was left out) one line read from stdin after a
        ``Password:`` prompt, as rabbitmqctl does."""
        if given is not None:
            return given
        self.out.write("Password: ")
        self.out.flush()
        if sys.stdin.isatty():
            line = getpass.getpass(prompt="")
        else:
            line = sys.stdin.readline()
            self.out.write("\n")
        line = line.rstrip("\r\n")
        if not line:
            raise Exit(code, "Error:\nPassword is not provided via argument or stdin")
        return line


def parse_json_argument(text: str):
    """A JSON document given on the command line (rabbitmqctl's wording when it is not)."""
    try:
        return json.loads(text)
    except ValueError:
        raise Exit(EX_UNAVAILABLE, "Error:\nJSON decoding error. Reason: badarg") from None
