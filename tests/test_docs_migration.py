"""The worked migration of docs/moving-to-rabbitmq.md, executed: from a Leveret to the live RabbitMQ.

The page's ``sh`` blocks under "A worked migration" (all but the first, which sets the
variables this test sets itself) are concatenated into one bash script and run as written,
with its two programs (``producer.py``, ``consumer.py``) taken from the page. Around them, the
test supplies what the page assumes: before, the order service's topology on a Leveret (a
``leveret serve`` process) with its producer and consumer running there (``$OLD_PRODUCER``,
``$OLD_CONSUMER``); after, the new producer stopped and the new consumer given time to finish.

What must hold: every message a producer had confirmed was consumed (none lost across the
switch), Leveret's queue is left empty, RabbitMQ's vhost has the quorum queue and the policy.

RabbitMQ: ``LEVERET_RABBITMQ_MGMT_URL`` (default ``http://guest:guest@127.0.0.1:15672``) and
``LEVERET_RABBITMQ_AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672``); the test skips,
saying why, when that API does not answer or has no shovel plugin (``scripts/rabbitmq-conformance``
enables it and runs this test). Everything is made in a vhost of a unique name, deleted at the
end (with the shovel parameter, queue and exchange in it).
"""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RABBIT_API = os.environ.get("LEVERET_RABBITMQ_MGMT_URL", "http://guest:guest@127.0.0.1:15672")
# (a vhost in the URL is dropped: the test appends its own)
RABBIT_AMQP = urllib.parse.urlunsplit(urllib.parse.urlsplit(
    os.environ.get("LEVERET_RABBITMQ_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672"))._replace(path=""))

# not leveret_only: it starts its own Leveret, so scripts/rabbitmq-conformance runs it too
pytestmark = pytest.mark.timeout(240)


def api(base: str, method: str, path: str, body=None):
    """A management API call against ``http://user:pass@host:port``; the decoded JSON or None."""
    m = re.match(r"(https?://)([^:]+):([^@]+)@(.*)", base)
    req = urllib.request.Request(m.group(1) + m.group(4) + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("authorization", "Basic " + base64.b64encode(f"{m.group(2)}:{m.group(3)}".encode()).decode())
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = resp.read()
    return json.loads(data) if data else None


def rabbitmq_missing() -> str | None:
    """Why the test cannot run, or None: a RabbitMQ's management API with the shovel plugin."""
    where = RABBIT_API.split("@")[-1]
    try:
        if "erlang_version" not in api(RABBIT_API, "GET", "/api/overview"):   # Leveret has no Erlang
            return f"{where} is a Leveret, not a RabbitMQ"
        api(RABBIT_API, "GET", "/api/shovels")
    except urllib.error.HTTPError as e:
        return f"{where}: HTTP {e.code} (the page's shovel step needs rabbitmq_shovel_management)"
    except (OSError, ValueError) as e:
        return f"no RabbitMQ management API at {where} ({e})"
    return None


MISSING = rabbitmq_missing()


def worked_migration() -> tuple[list[str], dict[str, str]]:
    """The page's shell blocks (the variable block dropped) and its named Python programs."""
    text = (ROOT / "docs" / "moving-to-rabbitmq.md").read_text()
    text = text[text.index("## A worked migration"):]
    shell, programs = [], {}
    for info, body in re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S):
        kind, _, name = info.strip().partition(" ")
        if kind == "python" and name:
            programs[name] = body
        elif kind == "sh":
            shell.append(body)
    assert re.fullmatch(r"(?:[A-Z_]+=\S+\s*(?:#[^\n]*)?\n)+", shell[0]), "the first block sets the variables"
    return shell[1:], programs


def lines(path: Path, word: str) -> list[str]:
    if not path.exists():
        return []
    return [parts[1] for parts in (line.split() for line in path.read_text().splitlines())
            if len(parts) == 2 and parts[0] == word]


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


BEFORE = """
set -euo pipefail
# the order service as it runs on Leveret before the migration
curl -sf -X PUT "$LEVERET/api/vhosts/$VHOST"
curl -sf -X PUT "$LEVERET/api/permissions/$VHOST/$APP_USER" -d '{"configure":".*","write":".*","read":".*"}'
curl -sf -X PUT "$LEVERET/api/exchanges/$VHOST/orders" -d '{"type":"topic","durable":true}'
curl -sf -X PUT "$LEVERET/api/queues/$VHOST/orders.created" \\
     -d '{"durable":true,"arguments":{"x-queue-type":"quorum","x-delivery-limit":5}}'
curl -sf -X POST "$LEVERET/api/bindings/$VHOST/e/orders/q/orders.created" -d '{"routing_key":"order.created"}'
curl -sf -X PUT "$LEVERET/api/policies/$VHOST/orders-ttl" \\
     -d '{"pattern":"^orders\\\\.","definition":{"message-ttl":3600000},"apply-to":"queues"}'
AMQP_URL="$LEVERET_AMQP" python3 consumer.py > consumer-leveret.log 2>&1 &
OLD_CONSUMER=$!
AMQP_URL="$LEVERET_AMQP" python3 producer.py > producer-leveret.log 2>&1 &
OLD_PRODUCER=$!
until [ "$(grep -c published producer-leveret.log)" -ge 20 ]; do sleep 0.1; done
"""

AFTER = """
echo "NEW_PRODUCER=$NEW_PRODUCER NEW_CONSUMER=$NEW_CONSUMER"
"""


@pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
def test_worked_migration(leveret_server, tmp_path):
    shell, programs = worked_migration()
    assert {"producer.py", "consumer.py"} <= set(programs) and len(shell) >= 5
    for name, body in programs.items():
        (tmp_path / name).write_text(body)
    bin_dir = tmp_path / "bin"        # python3 is the test's interpreter (it has pika)
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)

    server = leveret_server()
    vhost = f"docs-migration-{uuid.uuid4().hex[:8]}"
    rabbit_user = re.match(r"amqp://([^:]+):", RABBIT_AMQP).group(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH",))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PYTHONPATH=os.pathsep.join(sys.path),
               LEVERET=server.management_url.replace("http://", "http://guest:guest@"),
               LEVERET_AMQP=f"amqp://guest:guest@127.0.0.1:{server.port}/{vhost}",
               RABBIT=RABBIT_API, RABBIT_AMQP=f"{RABBIT_AMQP}/{vhost}", VHOST=vhost, APP_USER=rabbit_user)
    script = BEFORE + "\n".join(shell) + AFTER
    pids: list[int] = []
    # its own session: every program the script starts is in its process group, killed at the end
    proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"the migration script failed ({proc.returncode}):\n{out}"
        new = dict(re.findall(r"(NEW_PRODUCER|NEW_CONSUMER)=(\d+)", out))
        pids = [int(new["NEW_PRODUCER"]), int(new["NEW_CONSUMER"])]

        # the cluster took over: orders published there, consumed there
        wait_for(lambda: len(lines(tmp_path / "consumer-rabbit.log", "consumed")) >= 10, "orders on RabbitMQ")
        os.kill(pids[0], signal.SIGTERM)
        wait_for(lambda: _gone(pids[0]), "the new producer to stop")
        published = lines(tmp_path / "producer-leveret.log", "published") + \
            lines(tmp_path / "producer-rabbit.log", "published")

        def consumed() -> set[str]:
            return set(lines(tmp_path / "consumer-leveret.log", "consumed")) | \
                set(lines(tmp_path / "consumer-rabbit.log", "consumed"))

        wait_for(lambda: set(published) <= consumed(), "every confirmed order to be consumed")
        assert len(lines(tmp_path / "producer-leveret.log", "published")) >= 20
        assert lines(tmp_path / "producer-rabbit.log", "published")
        assert not set(lines(tmp_path / "producer-rabbit.log", "published")) & \
            set(lines(tmp_path / "consumer-leveret.log", "consumed")), "Leveret got orders after the switch"

        # nothing left behind on Leveret; the topology arrived on RabbitMQ
        [q] = api(env["LEVERET"], "GET", f"/api/queues/{vhost}")
        assert q["messages"] == 0
        queues = {q["name"]: q for q in api(RABBIT_API, "GET", f"/api/queues/{vhost}")}
        assert queues["orders.created"]["type"] == "quorum"
        assert queues["orders.created"]["arguments"]["x-delivery-limit"] == 5
        assert [p["name"] for p in api(RABBIT_API, "GET", f"/api/policies/{vhost}")] == ["orders-ttl"]
        bindings = api(RABBIT_API, "GET", f"/api/exchanges/{vhost}/orders/bindings/source")
        assert [(b["destination"], b["routing_key"]) for b in bindings] == [("orders.created", "order.created")]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        try:
            api(RABBIT_API, "DELETE", f"/api/vhosts/{vhost}")
        except urllib.error.HTTPError as e:
            assert e.code == 404, e


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:   # a zombie (the bash that started it has exited, so init reaps it soon) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
