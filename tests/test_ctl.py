"""``leveret ctl`` against a real ``leveret serve`` process, compared with what ``rabbitmqctl``
3.10.8 printed for the same steps (``tests/data/rabbitmqctl/*.json``, recorded by
``tools/capture_rabbitmqctl.py`` against RabbitMQ).

Each scenario replays its steps in order on a fresh broker and compares stdout, stderr and the
exit code of every step, normalising only what must differ: the program's name (``rabbitmqctl``
vs ``leveret ctl``) and the global options of its usage line, node names, the clock time of a
forwarded log line, and -- for listings -- the order of rows (RabbitMQ lists in table order).
The other tests check that the commands' effects are real: logins, permission checks on open
connections, forced closes, a restart, the socket's mode, and a missing broker.
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from ctl_steps import AmqpSession

DATA = Path(__file__).parent / "data" / "rabbitmqctl"
SCENARIOS = sorted(p.stem for p in DATA.glob("*.json"))

pytestmark = pytest.mark.leveret_only


# (scenario, argv) -> (the output not compared, why): documented in docs/ctl.md
KNOWN_DIFFERENCES = {
    ("usage", ("add_vhost",)): ("stderr", "the usage line: Leveret's add_vhost has no --description, --tags "
                                          "or --default-queue-type (its vhosts have none)"),
    # RabbitMQ closes connections asynchronously and its connection tracking lags: the count
    # includes the connection close_connection closed a moment before, and the listing right
    # after still shows one being closed. Leveret's close is done when the command returns.
    ("connections", ("close_all_connections", "-p", "lvctl.vh1", "lvctl says bye to all")):
        ("stdout", "RabbitMQ counts a connection closed a moment before"),
    ("connections", ("list_connections", "vhost", "user")): ("stdout", "RabbitMQ still lists a closing connection"),
    # RabbitMQ's first listing after a publish to a quorum queue may not count it yet
    ("queues", ("list_queues", "-p", "lvctl.vh1", "name", "messages", "consumers", "durable", "arguments",
                "--formatter", "json")): ("stdout", "RabbitMQ's quorum queue count lags"),
    # the recording dropped the shared node's own global parameters (cluster_name,
    # internal_cluster_id), leaving a header Leveret (with none) does not print
    ("policies", ("list_global_parameters",)): ("stdout", "the recording's rows were filtered"),
}


def ctl(data_dir, *argv: str, stdin: str | None = None, console_script: bool = False,
        tool: str = "rabbitmqctl") -> subprocess.CompletedProcess:
    """``python -m leveret ctl --data-dir D ...`` (or the ``leveretctl`` entry point; ``leveret
    diagnostics`` for ``tool="rabbitmq-diagnostics"``)."""
    if console_script:
        cmd = [sys.executable, "-c", "import sys; from leveret.ctl import main; sys.exit(main())"]
    else:
        cmd = [sys.executable, "-m", "leveret", "diagnostics" if tool == "rabbitmq-diagnostics" else "ctl"]
    return subprocess.run([*cmd, "--data-dir", str(data_dir), *argv], input=stdin or "",
                          capture_output=True, text=True, timeout=60)


def normalise(text: str, rows: bool) -> list[str] | str:
    text = re.sub(r"^(rabbitmqctl|leveretctl|leveret ctl|rabbitmq-diagnostics|leveret diagnostics) .*?\[--quiet\] ",
                  "PROG ", text, flags=re.M)
    text = re.sub(r"#PID<[\d.]+>|<(rabbit|leveret)@[^>\s]+>", "PID", text)           # process ids
    text = re.sub(r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+", "CONN", text)              # connection names
    text = re.sub(r"^(guest\t127\.0\.0\.1\t)\d+\t", r"\1PORT\t", text, flags=re.M)      # list_connections' peer_port
    text = re.sub(r"'(rabbitmqctl|leveretctl|leveret ctl) help", "'PROG help", text)
    text = re.sub(r"\b(rabbit|leveret)@[\w.-]+", "NODE", text)
    text = re.sub(r"^\d\d:\d\d:\d\d\.\d{3} \[", "HH:MM:SS.mmm [", text, flags=re.M)
    if rows:   # the same lines in any order (a JSON listing's rows lose their separating comma)
        return sorted(line.lstrip(",") for line in text.split("\n"))
    return text


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_output_matches_rabbitmqctl(scenario, leveret_server, tmp_path):
    server = leveret_server()
    recorded = json.loads((DATA / f"{scenario}.json").read_text())
    mismatches = []
    session = AmqpSession("127.0.0.1", server.port)
    try:
        _replay(server, recorded, scenario, session, mismatches)
    finally:
        session.close()
    assert not mismatches, "\n".join(mismatches)


def _replay(server, recorded, scenario, session, mismatches) -> None:
    for i, step in enumerate(recorded["steps"]):
        if "amqp" in step:
            session.run(step)
            continue
        if step.get("shape"):       # compared by the tests of those commands (below)
            continue
        argv = session.resolve(step["argv"], lambda *a: ctl(server.data_dir, *a).stdout)
        got = ctl(server.data_dir, *argv, stdin=step["stdin"], tool=step.get("tool", "rabbitmqctl"))
        skip, _why = KNOWN_DIFFERENCES.get((scenario, tuple(step["argv"])), (None, None))
        for what, theirs, ours in (("stdout", step["stdout"], got.stdout), ("stderr", step["stderr"], got.stderr),
                                   ("exit code", step["rc"], got.returncode)):
            if what == skip:
                continue
            if isinstance(theirs, str):
                theirs, ours = normalise(theirs, step["rows"]), normalise(ours, step["rows"])
            if theirs != ours:
                mismatches.append(f"step {i} ctl {' '.join(step['argv'])}: {what}\n"
                                  f"  rabbitmqctl: {theirs!r}\n  leveret:     {ours!r}")


def connect(server, user: str, password: str, vhost: str = "/") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", server.port, vhost, pika.PlainCredentials(user, password)))


def ok(data_dir, *argv: str) -> str:
    done = ctl(data_dir, *argv)
    assert done.returncode == 0, f"ctl {argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_effects_are_real_and_survive_a_restart(leveret_server):
    server = leveret_server()
    d = server.data_dir
    ok(d, "add_user", "alice", "s3cret")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(server, "alice", "s3cret").close()          # no permission on "/" yet
    ok(d, "add_vhost", "prod")
    ok(d, "set_permissions", "-p", "prod", "alice", "^alice\\.", "^alice\\.|amq\\.default", "^alice\\.")
    ok(d, "set_user_tags", "alice", "monitoring")
    ok(d, "set_vhost_limits", "-p", "prod", '{"max-queues": 5}')
    c = connect(server, "alice", "s3cret", "prod")
    ch = c.channel()
    ch.queue_declare("alice.q", durable=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("bob.q")
    assert e.value.reply_code == 403
    c.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(server, "alice", "wrong", "prod").close()

    server.stop()
    server = leveret_server(port=server.port, data_dir=d)
    assert "alice\t[monitoring]" in ok(d, "list_users")
    assert "prod\n" in ok(d, "list_vhosts")
    assert "alice\t^alice\\.\t^alice\\.|amq\\.default\t^alice\\." in ok(d, "list_permissions", "-p", "prod")
    assert ok(d, "list_vhost_limits", "-p", "prod").endswith('{"max-queues":5}\n')
    c = connect(server, "alice", "s3cret", "prod")
    c.channel().queue_declare("alice.q", passive=True)
    c.close()


def test_set_permissions_applies_to_an_open_connection(leveret_server):
    server = leveret_server()
    d = server.data_dir
    ok(d, "add_user", "carol", "pw")
    ok(d, "set_permissions", "carol", ".*", ".*", ".*")
    c = connect(server, "carol", "pw")
    ch = c.channel()
    ch.queue_declare("carol.a")
    ok(d, "set_permissions", "carol", "^nothing$", ".*", ".*")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("carol.b")
    assert e.value.reply_code == 403
    assert "access to queue 'carol.b' in vhost '/' refused for user 'carol'" in e.value.reply_text
    c.close()


def test_delete_user_closes_its_connections(leveret_server):
    server = leveret_server()
    d = server.data_dir
    ok(d, "add_user", "dave", "pw")
    ok(d, "set_permissions", "dave", ".*", ".*", ".*")
    c = connect(server, "dave", "pw")
    ok(d, "delete_user", "dave")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c.process_data_events(time_limit=5)
        c.channel()
    assert (e.value.reply_code, e.value.reply_text) == (320, "CONNECTION_FORCED - user 'dave' is deleted")


def test_socket_is_private_and_removed_at_stop(leveret_server):
    server = leveret_server()
    path = os.path.join(server.data_dir, "ctl.sock")
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    server.stop()
    assert not os.path.exists(path)


def test_no_broker_is_one_line_and_exit_69(tmp_path):
    done = ctl(tmp_path, "list_users")
    assert done.returncode == 69
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(tmp_path / "ctl.sock") in done.stderr


def test_leveretctl_entry_point_and_data_dir_from_environment(leveret_server):
    server = leveret_server()
    env = {**os.environ, "LEVERET_DATA_DIR": server.data_dir}
    done = subprocess.run([sys.executable, "-c", "import sys; from leveret.ctl import main; sys.exit(main())",
                           "-q", "list_users"], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout) == (0, "user\ttags\nguest\t[administrator]\n")
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert 'leveretctl = "leveret.ctl:main"' in pyproject


def test_bad_requests_on_the_socket_get_errors_not_a_crash(leveret_server):
    import socket
    server = leveret_server()
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(server.data_dir, "ctl.sock"))
    f = s.makefile("rwb")
    for request, kind in ((b"not json\n", "bad_request"), (b'{"command": "nope"}\n', "unknown_command"),
                          (b'{"command": "add_user", "args": {"bogus": 1}}\n', "bad_request"),
                          (b'[1, 2]\n', "bad_request")):
        f.write(request)
        f.flush()
        response = json.loads(f.readline())
        assert response["ok"] is False and response["error"]["kind"] == kind, response
    f.write(b'{"command": "list_users"}\n')
    f.flush()
    assert json.loads(f.readline()) == {"ok": True, "result": [{"user": "guest", "tags": ["administrator"]}]}
    s.close()
    assert ok(server.data_dir, "-q", "list_vhosts") == "name\n/\n"
