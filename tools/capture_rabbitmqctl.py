#!/usr/bin/env python3
"""Record what ``rabbitmqctl`` prints for the user, vhost, permission and limit commands.

Runs each scenario below against the local RabbitMQ node (``rabbitmqctl`` on PATH, as root or
the rabbitmq user) and writes ``tests/data/rabbitmqctl/<scenario>.json``: every step's argv,
stdin, stdout, stderr and exit code. ``tests/test_ctl.py`` replays the same steps with
``leveret ctl`` against a fresh Leveret broker and compares.

The node may be shared: every user and vhost a scenario creates is named ``lvctl.*``; the
script deletes them before and after each scenario and touches nothing else. Listing steps
(``"rows": true``) keep only rows about ``lvctl.*`` objects, the ``guest`` user and the ``/``
vhost (the objects a fresh Leveret broker has too), so other users of the node do not leak
into the fixtures.

    python3 tools/capture_rabbitmqctl.py            # all scenarios
    python3 tools/capture_rabbitmqctl.py users      # one
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "rabbitmqctl")
USERS = ("lvctl.u1", "lvctl.u2", "lvctl.u3", "lvctl.u4")
VHOSTS = ("lvctl.vh1", "lvctl.vh2")


def step(*argv: str, stdin: str | None = None, rows: bool = False) -> dict:
    return {"argv": list(argv), "stdin": stdin, "rows": rows}


SCENARIOS: dict[str, list[dict]] = {
    "users": [
        step("add_user", "lvctl.u1", "secret"),
        step("add_user", "lvctl.u1", "secret"),                      # user_already_exists: 70
        step("add_user", "lvctl.u2"),                                # no password, no stdin: 65
        step("add_user", "lvctl.u2", stdin="pw2\n"),                 # password from stdin
        step("add_user", "lvctl.u3", ""),                            # no password (blank)
        step("add_user", "-q", "lvctl.u4", "pw4"),
        step("list_users", rows=True),
        step("list_users", "--no-table-headers", rows=True),
        step("list_users", "-q", rows=True),
        step("list_users", "-s", rows=True),
        step("list_users", "--formatter", "json", rows=True),
        step("list_users", "--formatter", "csv", rows=True),
        step("authenticate_user", "lvctl.u1", "secret"),
        step("authenticate_user", "-q", "lvctl.u1", "secret"),
        step("authenticate_user", "lvctl.u1", "wrong"),              # 65
        step("authenticate_user", "lvctl.nouser", "secret"),
        step("authenticate_user", "lvctl.u2", stdin="pw2\n"),
        step("authenticate_user", "lvctl.u3", ""),                   # blank password
        step("authenticate_user", "lvctl.u3", "x"),
        step("set_user_tags", "lvctl.u1", "administrator", "monitoring"),
        step("set_user_tags", "lvctl.u2", "foo,bar"),
        step("set_user_tags", "lvctl.u3"),
        step("set_user_tags", "lvctl.nouser", "administrator"),      # 67
        step("list_users", rows=True),
        step("list_users", "--formatter", "json", rows=True),
        step("list_users", "--formatter", "csv", rows=True),
        step("change_password", "lvctl.u1", "newpw"),
        step("authenticate_user", "lvctl.u1", "newpw"),
        step("authenticate_user", "lvctl.u1", "secret"),
        step("change_password", "lvctl.nouser", "newpw"),            # 67
        step("change_password", "lvctl.u1"),                         # no password: 70
        step("change_password", "lvctl.u4", stdin="pw4b\n"),
        step("authenticate_user", "lvctl.u4", "pw4b"),
        step("clear_password", "lvctl.u1"),
        step("authenticate_user", "lvctl.u1", "newpw"),
        step("clear_password", "lvctl.nouser"),                      # 69
        step("delete_user", "lvctl.u4"),
        step("delete_user", "lvctl.u4"),                             # 67
        step("delete_user", "-s", "lvctl.u3"),
        step("list_users", "-q", "--no-table-headers", rows=True),
    ],
    "vhosts": [
        step("add_vhost", "lvctl.vh1"),
        step("add_vhost", "lvctl.vh1"),                              # exists: fine
        step("list_vhosts", rows=True),
        step("list_vhosts", "name", "tracing", rows=True),
        step("list_vhosts", "-s", rows=True),
        step("list_vhosts", "--formatter", "json", rows=True),
        step("list_vhosts", "bogus"),                                # 64
        step("delete_vhost", "lvctl.vh1"),
        step("delete_vhost", "lvctl.vh1"),                           # 65
        step("list_vhosts", "-q", rows=True),
    ],
    "permissions": [
        step("add_user", "-q", "lvctl.u1", "secret"),
        step("add_user", "-q", "lvctl.u2", "secret"),
        step("add_vhost", "-q", "lvctl.vh1"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", ".*", ".*"),
        step("set_permissions", "lvctl.u1", "^a", "", "b$"),
        step("set_permissions", "--vhost", "lvctl.vh1", "lvctl.u2", "^lvctl", "^lvctl", "^lvctl"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.nouser", ".*", ".*", ".*"),   # 67
        step("set_permissions", "-p", "lvctl.novh", "lvctl.u1", ".*", ".*", ".*"),      # 69
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", "(", ".*", ".*"),        # bad regexp
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", "[a", ".*"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", ".*", "a)"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", "*", ".*", ".*"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", ".*"),             # 64
        step("list_permissions", "-p", "lvctl.vh1", rows=True),
        step("list_permissions", rows=True),
        step("list_permissions", "-p", "lvctl.vh1", "--formatter", "json", rows=True),
        step("list_permissions", "-p", "lvctl.novh"),                                   # 65
        step("list_user_permissions", "lvctl.u1", rows=True),
        step("list_user_permissions", "--formatter", "json", "lvctl.u1", rows=True),
        step("list_user_permissions", "lvctl.nouser"),                                  # 69
        step("set_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "amq.topic", "^a", "^b"),
        step("set_topic_permissions", "lvctl.u1", "amq.topic", ".*", ".*"),
        step("set_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "lvctl.x", "(", "^b"),
        step("set_topic_permissions", "-p", "lvctl.vh1", "lvctl.nouser", "amq.topic", "^a", "^b"),
        step("set_topic_permissions", "-p", "lvctl.novh", "lvctl.u1", "amq.topic", "^a", "^b"),
        step("list_topic_permissions", "-p", "lvctl.vh1", rows=True),
        step("list_topic_permissions", rows=True),
        step("list_topic_permissions", "-p", "lvctl.vh1", "--formatter", "json", rows=True),
        step("list_topic_permissions", "-p", "lvctl.novh"),
        step("list_user_topic_permissions", "lvctl.u1", rows=True),
        step("list_user_topic_permissions", "lvctl.u2", rows=True),
        step("list_user_topic_permissions", "lvctl.nouser"),
        step("clear_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "amq.topic"),
        step("clear_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "amq.topic"),
        step("clear_topic_permissions", "lvctl.u1"),
        step("clear_topic_permissions", "lvctl.nouser"),
        step("clear_topic_permissions", "-p", "lvctl.novh", "lvctl.u1"),
        step("list_topic_permissions", rows=True),
        step("clear_permissions", "-p", "lvctl.vh1", "lvctl.u1"),
        step("clear_permissions", "-p", "lvctl.vh1", "lvctl.u1"),
        step("clear_permissions", "-p", "lvctl.vh1", "lvctl.nouser"),
        step("clear_permissions", "-p", "lvctl.novh", "lvctl.u1"),
        step("list_permissions", "-p", "lvctl.vh1", rows=True),
        step("list_permissions", "-s", "-p", "lvctl.vh1", rows=True),
        step("delete_vhost", "lvctl.vh1"),
        step("list_user_permissions", "lvctl.u2", rows=True),
    ],
    "limits": [
        step("add_user", "-q", "lvctl.u1", "secret"),
        step("add_user", "-q", "lvctl.u2", "secret"),
        step("add_vhost", "-q", "lvctl.vh1"),
        step("add_vhost", "-q", "lvctl.vh2"),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-connections": 10, "max-queues": 5}'),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-connections": 10'),          # bad JSON
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-foo": 10}'),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-queues": "x"}'),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-queues": 1.5}'),
        step("set_vhost_limits", "-p", "lvctl.novh", '{"max-queues": 1}'),
        step("list_vhost_limits", "-p", "lvctl.vh1"),
        step("list_vhost_limits", "-p", "lvctl.vh2"),
        step("list_vhost_limits", "--global", rows=True),
        step("list_vhost_limits", "-p", "lvctl.novh"),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-queues": -1}'),               # replaces
        step("list_vhost_limits", "-p", "lvctl.vh1"),
        step("clear_vhost_limits", "-p", "lvctl.vh1"),
        step("clear_vhost_limits", "-p", "lvctl.vh1"),                                   # none left
        step("clear_vhost_limits", "-p", "lvctl.novh"),
        step("list_vhost_limits", "-p", "lvctl.vh1"),
        step("set_user_limits", "lvctl.u1", '{"max-connections": 10}'),
        step("set_user_limits", "lvctl.u1", '{"max-channels": 3}'),                      # merges
        step("set_user_limits", "lvctl.u1", '{"max-channels": 3'),
        step("set_user_limits", "lvctl.u1", '{"max-foo": 3}'),
        step("set_user_limits", "lvctl.u1", '{"max-channels": "x"}'),
        step("set_user_limits", "lvctl.nouser", '{"max-channels": 3}'),
        step("list_user_limits", "--user", "lvctl.u1"),
        step("list_user_limits", "--user", "lvctl.u2"),
        step("list_user_limits", "--user", "lvctl.nouser"),
        step("list_user_limits", "--global", rows=True),
        step("list_user_limits"),
        step("clear_user_limits", "lvctl.u1", "max-channels"),
        step("list_user_limits", "--user", "lvctl.u1"),
        step("clear_user_limits", "lvctl.u1", "all"),
        step("list_user_limits", "--user", "lvctl.u1"),
        step("clear_user_limits", "lvctl.nouser", "all"),
        step("clear_user_limits", "lvctl.u1"),                                           # 64
    ],
    "usage": [
        step("add_user"),
        step("add_user", "lvctl.u1", "pw", "extra"),
        step("delete_user"),
        step("list_users", "extra"),
        step("list_users", "--bogus"),
        step("set_user_tags"),
        step("add_vhost"),
        step("set_permissions", "lvctl.u1"),
        step("set_topic_permissions", "lvctl.u1", "amq.topic"),
        step("set_vhost_limits"),
        step("clear_user_limits", "lvctl.u1"),
        step("list_user_permissions"),
        step("authenticate_user"),
    ],
}


def run(argv: list[str], stdin: str | None) -> dict:
    p = subprocess.run(["rabbitmqctl", *argv], input=stdin or "", capture_output=True, text=True,
                       timeout=120)
    return {"stdout": p.stdout, "stderr": p.stderr, "rc": p.returncode}


def ours(text: str) -> bool:
    return "lvctl." in text or text.split("\t")[0] in ("guest", "/") or text.startswith('"guest"')


def keep_rows(stdout: str, argv: list[str]) -> str:
    """Drop rows about objects this script did not create (other users of a shared node)."""
    if "json" in argv:
        rows = json.loads(stdout)
        rows = [r for r in rows if any(v in ("guest", "/") or "lvctl." in str(v) for v in r.values())]
        if not rows:
            return "[]\n"
        return "[\n" + "\n,".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n]\n"
    lines = stdout.split("\n")
    out = []
    for i, line in enumerate(lines):
        is_row = "\t" in line or line.startswith('"')
        header = line.startswith(("user\t", "vhost\t", "name", '"user"'))
        if not is_row or header or ours(line):
            out.append(line)
    return "\n".join(out)


def cleanup() -> None:
    for u in USERS:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", u], capture_output=True)
    for v in VHOSTS:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", v], capture_output=True)


def capture(name: str) -> None:
    cleanup()
    steps = []
    try:
        for s in SCENARIOS[name]:
            got = run(s["argv"], s["stdin"])
            if s["rows"] and got["rc"] == 0:
                got["stdout"] = keep_rows(got["stdout"], s["argv"])
            steps.append({**s, **got})
            print(f"{name}: rabbitmqctl {' '.join(s['argv'])} -> {got['rc']}", file=sys.stderr)
    finally:
        cleanup()
    version = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True).stdout.strip()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump({"rabbitmqctl": version, "steps": steps}, f, indent=1)
        f.write("\n")


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            print(f"no scenario {n!r}; have {', '.join(SCENARIOS)}", file=sys.stderr)
            return 2
        capture(n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
