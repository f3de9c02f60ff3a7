"""``leveret serve --definitions FILE`` with a file exported by a real RabbitMQ.

``tests/data/rabbitmq-3.10-definitions.json`` was written by ``rabbitmqctl export_definitions`` on
RabbitMQ 3.10.8 (trimmed to one vhost): a user with a SHA-256 password hash and a tag,
permissions, a policy, a topic exchange, a queue with x-arguments and a binding.

Users with a password hash of each algorithm, written here as RabbitMQ computes them, log in
from a definitions file and after a restart (the same users imported into RabbitMQ itself:
``tests/conformance/test_access_control.py``).
"""
from __future__ import annotations

import json
import os

import pika
import pytest

from brokeradmin import rabbit_password_hash

pytestmark = pytest.mark.leveret_only

DEFS = os.path.join(os.path.dirname(__file__), "data", "rabbitmq-3.10-definitions.json")


def test_rabbitmq_export_loads_and_works(leveret_server, tmp_path):
    defs = json.load(open(DEFS))
    # (a second user with every permission, to redeclare alice's queue below)
    defs["permissions"].append({"user": "guest", "vhost": "defs-test", "configure": ".*", "write": ".*",
                                "read": ".*"})
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    os.makedirs(tmp_path / "data")
    s = leveret_server("--definitions", str(path), data_dir=str(tmp_path / "data"))
    # the exported password hash authenticates alice with her RabbitMQ password
    c = pika.BlockingConnection(pika.URLParameters(f"amqp://alice:s3cret@127.0.0.1:{s.port}/defs-test"))
    ch = c.channel()
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("orders", f"order.{i}", b"%d" % i)        # exchange + binding
    ok = ch.queue_declare("capped.orders", durable=True, passive=True).method
    assert ok.message_count == 2                                    # the policy: max-length 2
    # the exported permissions apply: alice may configure only names starting "alice."
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("capped.orders", durable=True,
                         arguments={"x-dead-letter-exchange": "orders", "x-message-ttl": 60000})
    assert e.value.args == (403, "ACCESS_REFUSED - access to queue 'capped.orders' in vhost 'defs-test' "
                                 "refused for user 'alice'")
    c.close()
    # the queue's arguments came through typed as a client's would: an equal redeclare is fine
    c = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{s.port}/defs-test"))
    c.channel().queue_declare("capped.orders", durable=True,
                              arguments={"x-dead-letter-exchange": "orders", "x-message-ttl": 60000})
    c.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(f"amqp://alice:wrong@127.0.0.1:{s.port}/defs-test"))


def test_unreadable_definitions_file_stops_the_start(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "defs.json"
    bad.write_text("{not json")
    p = subprocess.run([sys.executable, "-m", "leveret", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                        "--definitions", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "definitions file" in p.stderr and "cannot read" in p.stderr



def _hashed_users(version: str | None, users: list[tuple[str, str, str | None]]) -> dict:
    defs = {"users": [], "permissions": []}
    if version is not None:
        defs["rabbit_version"] = version
    for name, digest, algorithm in users:
        entry = {"name": name, "password_hash": rabbit_password_hash(digest, "pw-" + name), "tags": []}
        if algorithm is not None:
            entry["hashing_algorithm"] = algorithm
        defs["users"].append(entry)
        defs["permissions"].append({"user": name, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"})
    return defs


def _login(port: int, user: str, password: str) -> None:
    pika.BlockingConnection(pika.URLParameters(f"amqp://{user}:{password}@127.0.0.1:{port}/%2F")).close()


def test_password_hashes_of_each_algorithm_log_in_and_survive_a_restart(leveret_server, tmp_path):
    """sha256, sha512 and md5 named; none named: sha256 (no version in the file) or md5 (a
    file from RabbitMQ 3.5). Wrong passwords are refused; after a restart without the files
    the stored users still log in."""
    current = _hashed_users(None, [("u-sha256", "sha256", "rabbit_password_hashing_sha256"),
                                   ("u-sha512", "sha512", "rabbit_password_hashing_sha512"),
                                   ("u-md5", "md5", "rabbit_password_hashing_md5"),
                                   ("u-unnamed", "sha256", None)])
    old = _hashed_users("3.5.7", [("u-old", "md5", None)])
    data = str(tmp_path / "data")
    os.makedirs(data)
    users = [u["name"] for u in current["users"] + old["users"]]

    def check(port: int, names: list[str]) -> None:
        for name in names:
            _login(port, name, "pw-" + name)
            with pytest.raises(pika.exceptions.ProbableAuthenticationError):
                _login(port, name, "pw-" + name + "-wrong")

    for i, defs in enumerate((current, old)):
        path = tmp_path / f"defs-{i}.json"
        path.write_text(json.dumps(defs))
        s = leveret_server("--definitions", str(path), data_dir=data)
        check(s.port, [u["name"] for u in defs["users"]])
        assert s.stop() == 0
    s = leveret_server(data_dir=data)
    check(s.port, users)
