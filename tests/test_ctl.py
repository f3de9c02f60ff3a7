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
    # RabbitMQ closes connections asynchronously and its connection tracking lags: the count
    # includes the connection close_connection closed a moment before, and the listing right
    # after still shows one being closed. Leveret's close is done when the command returns.
    ("connections", ("close_all_connections", "-p", "lvctl.vh1", "lvctl says bye to all")):
        ("stdout", "RabbitMQ counts a connection closed a moment before"),
    ("connections", ("list_connections", "vhost", "user")): ("stdout", "RabbitMQ still lists a closing connection"),
    # RabbitMQ's first listing after a publish to a quorum queue may not count it yet
    ("queues", ("list_queues", "-p", "lvctl.vh1", "name", "messages", "consumers", "durable", "arguments",
                "--formatter", "json")): ("stdout", "RabbitMQ's quorum queue count lags"),
    # Leveret's node has no epmd: ping says what it checks instead
    ("node", ("ping",)): ("stdout", "ping's first line names the control socket, not epmd"),
    # the general usage that follows lists Leveret's diagnostics commands
    ("node", ("bogus_command",)): ("stderr", "the list of commands is Leveret's"),
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
        if os.path.exists("/tmp/lvctl-definitions.json"):     # (the definitions scenario's export)
            os.unlink("/tmp/lvctl-definitions.json")
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


def test_topic_permissions_limits_cleared_password_and_vhost_metadata_survive_a_restart(leveret_server):
    server = leveret_server()
    d = server.data_dir
    ok(d, "add_vhost", "meta", "--description", "orders", "--tags", "a, b", "--default-queue-type", "quorum")
    ok(d, "add_vhost", "raw", "-d", "kept as text", "--tags", "x,y")       # (no split: RabbitMQ's quirk)
    ok(d, "add_vhost", "blank", "--tags", "")                               # (tags: "", not [])
    refused = ctl(d, "add_vhost", "s", "--default-queue-type", "stream")      # (no stream queues: docs/ctl.md)
    assert (refused.returncode, refused.stderr) == (69, "Error:\ninvalid_queue_type\n")
    ok(d, "add_user", "bob", "pw")
    ok(d, "set_permissions", "-p", "meta", "bob", ".*", ".*", ".*")
    ok(d, "set_permissions", "-p", "meta", "guest", ".*", ".*", ".*")
    ok(d, "set_topic_permissions", "-p", "meta", "bob", "amq.topic", "^allowed\\.", ".*")
    ok(d, "set_user_limits", "bob", '{"max-channels": 1}')
    ok(d, "add_user", "carol", "pw")
    ok(d, "set_permissions", "carol", ".*", ".*", ".*")
    connect(server, "carol", "pw").close()
    ok(d, "clear_password", "carol")

    server.stop()
    server = leveret_server(port=server.port, data_dir=d)
    listing = ok(d, "-q", "list_vhosts", "name", "description", "tags", "default_queue_type")
    assert sorted(listing.splitlines()[1:]) == ["/\tDefault virtual host\t[]\tundefined", "blank\t\t\tundefined",
                                                "meta\torders\t[a, b]\tquorum",
                                                "raw\tkept as text\tx,y\tundefined"]
    # the default queue type still applies to a declare without x-queue-type
    c = connect(server, "guest", "guest", "meta")
    c.channel().queue_declare("q", durable=True)
    c.close()
    assert ok(d, "-q", "list_queues", "-p", "meta", "name", "type") == "name\ttype\nq\tquorum\n"
    assert ok(d, "-q", "list_user_topic_permissions", "bob") == "meta\tamq.topic\t^allowed\\.\t.*\n"  # (no header)
    assert ok(d, "-q", "list_user_limits", "--user", "bob") == '{"max-channels":1}\n'
    c = connect(server, "bob", "pw", "meta")
    ch = c.channel()
    ch.basic_publish("amq.topic", "allowed.x", b"m")
    ch.basic_publish("amq.topic", "denied.x", b"m")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("bob.sync")          # (a round trip: the refused publish closes the channel first)
    assert e.value.reply_code == 403
    assert "access to topic 'denied.x' in exchange 'amq.topic'" in e.value.reply_text
    c.channel()                               # the one channel bob may have
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c.channel()
    assert e.value.reply_code == 530 and "maximum allowed user limit of (1)" in e.value.reply_text
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(server, "carol", "pw").close()
    assert ctl(d, "authenticate_user", "carol", "pw").returncode == 65


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


def test_a_reader_that_goes_away_ends_the_command_quietly(leveret_server):
    """``leveretctl list_users | head -0``: the pipe's reader is gone before the first write;
    the command ends with exit 1 and no traceback."""
    server = leveret_server()
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "ctl", "--data-dir", server.data_dir, "list_users"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()      # long before the child has even imported leveret
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (1, "")


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


# ---------------------------------------------------------------- outputs compared by shape

def recorded_step(scenario: str, *argv: str) -> dict:
    for step in json.loads((DATA / f"{scenario}.json").read_text())["steps"]:
        if step.get("argv") == list(argv):
            return step
    raise LookupError(argv)


HEADING = re.compile(r"^\x1b\[1m(.*)\x1b\[0m$", re.M)
# status --formatter json keys RabbitMQ has and Leveret does not (Erlang's, plugins', logs'):
# documented in docs/ctl.md
STATUS_ABSENT = {"crypto_lib_version", "enabled_plugin_file", "erlang_version", "log_files", "net_ticktime",
                 "processes", "raft_data_directory", "release_series_support_status", "run_queue",
                 "vm_memory_high_watermark_setting"}
STATUS_OWN = {"python_version", "python_implementation"}


def test_status_has_rabbitmqs_sections_and_keys(leveret_server):
    server = leveret_server()
    d = server.data_dir
    theirs = recorded_step("node", "status")["stdout"]
    ours = ok(d, "status")
    assert ours.startswith("Status of node leveret@")
    # Leveret's sections are RabbitMQ's, in RabbitMQ's order, without Plugins and Log file(s)
    assert HEADING.findall(ours) == [h for h in HEADING.findall(theirs) if h not in ("Plugins", "Log file(s)")]
    for line in ("OS PID: ", "Uptime (seconds): ", "RabbitMQ version: 3.10.8", "Calculation strategy: rss",
                 "Total memory used: ", "Virtual host count: 1", "Connection count: 0"):
        assert line in ours
    assert re.search(r"^Interface: 127\.0\.0\.1, port: %d, protocol: amqp, purpose: " % server.port, ours, re.M)
    assert "Total memory used: " in ok(d, "status", "--unit", "mb") and " mb" in ok(d, "status", "--unit", "mb")
    rabbit_keys = set(json.loads(recorded_step("node", "status", "--formatter", "json")["stdout"]))
    our_keys = set(json.loads(ok(d, "status", "--formatter", "json")))
    assert our_keys - STATUS_OWN <= rabbit_keys
    assert rabbit_keys - our_keys == STATUS_ABSENT


def test_memory_breakdown_is_rabbitmqs_layout_with_leverets_categories(leveret_server):
    server = leveret_server()
    d = server.data_dir
    line = re.compile(r"^(\w+): (\d+(\.\d+)?) (gb|mb) \((\d+(\.\d+)?)%\)$")
    for argv in (("memory_breakdown",), ("memory_breakdown", "--unit", "mb")):
        theirs = recorded_step("node", *argv)["stdout"].split("\n")
        ours = ctl(d, *argv, tool="rabbitmq-diagnostics")
        assert ours.returncode == 0
        ours = ours.stdout.split("\n")
        assert ours[0].replace("leveret@", "rabbit@").split("@")[0] == theirs[0].split("@")[0]
        rows = [m for m in map(line.match, ours[1:]) if m]
        assert {m.group(1) for m in rows} == {"message_bodies", "other"}
        assert all(m.group(4) == argv[-1] if len(argv) > 1 else m.group(4) == "gb" for m in rows)
        assert all(line.match(x) for x in theirs[1:] if x)        # the same layout as RabbitMQ's lines
    as_json = json.loads(ctl(d, "memory_breakdown", "--formatter", "json", tool="rabbitmq-diagnostics").stdout)
    theirs = json.loads(recorded_step("node", "memory_breakdown", "--formatter", "json")["stdout"])
    assert {tuple(v) for v in as_json.values()} == {tuple(v) for v in theirs.values()} == {("bytes", "percentage")}
    assert sum(v["percentage"] for v in as_json.values()) == pytest.approx(100, abs=0.1)


def test_check_port_connectivity_lists_the_listeners(leveret_server):
    server = leveret_server()
    done = ctl(server.data_dir, "check_port_connectivity", "--formatter", "json", tool="rabbitmq-diagnostics")
    assert done.returncode == 0, done.stderr
    ours = json.loads(done.stdout)
    theirs = json.loads(recorded_step("node", "check_port_connectivity", "--formatter", "json")["stdout"])
    assert set(ours) == set(theirs) and ours["result"] == "ok"
    assert {tuple(sorted(x)) for x in ours["listeners"]} == {tuple(sorted(x)) for x in theirs["listeners"]}
    assert server.port in [x["port"] for x in ours["listeners"]]
    text = ok(server.data_dir, "status")      # (the same listeners)
    assert str(server.port) in text
    done = ctl(server.data_dir, "check_port_connectivity", tool="rabbitmq-diagnostics")
    assert re.fullmatch(r"Testing TCP connections to all active listeners on node leveret@\S+ \.\.\.\n"
                        r"Successfully connected to ports [\d, ]+ on node leveret@\S+\.\n", done.stdout)


def test_report_lists_what_rabbitmqs_lists(leveret_server):
    server = leveret_server()
    theirs = recorded_step("node", "report")["stdout"]
    ours = ok(server.data_dir, "report")
    listing = re.compile(r"^(Listing .*/.*|Listing connections.*|Listing channels.*)$", re.M)
    # the "/" vhost's listings, in RabbitMQ's order (RabbitMQ's report also lists environment
    # variables, which Leveret has none of)
    want = [x for x in listing.findall(theirs) if "environment" not in x]
    assert [x for x in listing.findall(ours)] == want[:2] + [x for x in want[2:] if '/' in x]


def test_export_and_import_definitions(leveret_server, tmp_path):
    server = leveret_server()
    d = server.data_dir
    theirs = json.loads(recorded_step("definitions", "export_definitions", "-")["stdout"])
    ok(d, "add_vhost", "lvctl.vh1")
    step = recorded_step("definitions", "import_definitions")
    done = ctl(d, "import_definitions", stdin=step["stdin"])
    assert (done.returncode, done.stdout) == (0, step["stdout"])
    ours = json.loads(ok(d, "export_definitions", "-"))
    # (RabbitMQ adds product_name/product_version when its own are set; Leveret's always are)
    assert set(ours) - {"product_name", "product_version"} == set(theirs)
    for key in ("queues", "exchanges", "bindings", "policies", "vhosts"):
        assert [x for x in ours[key] if "lvctl." in json.dumps(x)] == theirs[key], key
    path = tmp_path / "defs.json"
    assert ok(d, "export_definitions", str(path)) == f'Exporting definitions in JSON to a file at "{path}" ...\n'
    assert json.loads(path.read_text()) == ours
    # the file loads into a fresh broker: the queue, binding and policy are there
    (tmp_path / "b").mkdir(mode=0o700)
    other = leveret_server(data_dir=str(tmp_path / "b"))
    ok(other.data_dir, "import_definitions", str(path))
    assert "lvctl.dq\t[{\"x-max-length\",3}]\tlvctl.dp" in ok(other.data_dir, "list_queues", "-p", "lvctl.vh1",
                                                               "name", "arguments", "policy")


def test_close_all_connections_global_and_purge_effects(leveret_server):
    server = leveret_server()
    d = server.data_dir
    conns = [connect(server, "guest", "guest") for _ in range(3)]
    ch = conns[0].channel()
    ch.queue_declare("lv.q")
    for _ in range(4):
        ch.basic_publish("", "lv.q", b"x")
    conns[0].process_data_events(0)
    assert "lv.q\t4" in ok(d, "list_queues")
    assert ok(d, "-q", "purge_queue", "lv.q") == ""
    assert ch.queue_declare("lv.q", passive=True).method.message_count == 0
    out = ok(d, "close_all_connections", "--global", "--limit", "2", "maintenance")
    assert out.endswith("reason: maintenance...\nClosed 2 connections\n")
    assert len(ok(d, "-q", "--no-table-headers", "list_connections", "name").splitlines()) == 1
    out = ok(d, "close_all_connections", "--global", "maintenance")
    assert out.endswith("Closed 1 connections\n")
    for c in conns:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            c.process_data_events(time_limit=2)
            c.channel()
