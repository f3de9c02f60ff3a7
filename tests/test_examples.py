"""The pattern examples (examples/retry_backoff, delayed_reminders, rpc_direct_reply_to), run as programs.

Each program runs as a subprocess with AMQP_URL pointing at the broker under test (LEVERET_TEST_URL
or a private ``leveret serve``) and EXAMPLE_PREFIX set to the test's unique prefix, so queue and
exchange names never collide. Consumers are started first; a test publishes only after they
print their "waiting" line.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker
from subprocs import Program, Programs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Named resources the examples create; removed after every test.
EXAMPLE_QUEUES = ("work", "work.parking", "work.retry.1", "work.retry.2", "work.retry.3",
                  "reminders", "rpc.fib")
EXAMPLE_EXCHANGES = ("reminders",)


@pytest.fixture
def examples(broker_url, uniq):
    with Programs(EXAMPLES, broker_url, uniq + ".", "EXAMPLE_", EXAMPLE_QUEUES, EXAMPLE_EXCHANGES) as e:
        yield e


def _message_count(channel, name: str) -> int:
    return channel.queue_declare(name, passive=True).method.message_count


# --- 1. Retry with exponential backoff (TTL + DLX) ---------------------------------------

ATTEMPT = re.compile(r" \[>\] (\S+) attempt (\d+) \((?:(\d+) ms in (\S+), )?(\d+) ms since published\): (.*)$")


def _attempts(worker: Program) -> list[dict]:
    """Every attempt line of the worker, in output order."""
    found = []
    for index, line in enumerate(worker.output):
        m = ATTEMPT.search(line)
        if m:
            job, attempt, waited, via, since, outcome = m.groups()
            found.append({"line": index, "job": job, "attempt": int(attempt),
                          "waited": None if waited is None else int(waited), "via": via,
                          "since": int(since), "outcome": outcome})
    return found


def _by_job(attempts: list[dict], job: str) -> list[dict]:
    return [a for a in attempts if a["job"] == job]


def _start_worker(examples, *args: str) -> Program:
    return examples.consumer("retry_backoff/worker.py", *args, ready="Waiting for jobs")


def test_retry_backoff_failures_are_retried_with_growing_delays(examples, conn):
    """Failed jobs come back after 100, 200, 400 ms (work.retry.1/2/3); the attempt number comes from x-death."""
    worker = _start_worker(examples, "--base-delay-ms", "100", "--levels", "3",
                           "--max-attempts", "5", "--max-jobs", "3")
    assert "retries: {0}work.retry.1 100 ms, {0}work.retry.2 200 ms, {0}work.retry.3 400 ms".format(
        examples.prefix) in worker.output[-1]
    out = examples.run("retry_backoff/producer.py", "thrice:3", "ok", "twice:2").stdout
    assert out.splitlines() == [" [x] Sent thrice (fails 3 time(s))", " [x] Sent ok (fails 0 time(s))",
                                " [x] Sent twice (fails 2 time(s))"]
    assert worker.finish() == 0
    attempts = _attempts(worker)
    retry = [examples.name(f"work.retry.{k}") for k in (1, 2, 3)]

    ok = _by_job(attempts, "ok")
    assert [(a["attempt"], a["waited"], a["outcome"]) for a in ok] == [(1, None, "done")]

    twice = _by_job(attempts, "twice")
    assert [a["attempt"] for a in twice] == [1, 2, 3]
    assert [a["outcome"] for a in twice] == [
        f"FAILED (failure 1 of 2) -> {retry[0]} in 100 ms",
        f"FAILED (failure 2 of 2) -> {retry[1]} in 200 ms",
        "done"]

    thrice = _by_job(attempts, "thrice")
    assert [a["attempt"] for a in thrice] == [1, 2, 3, 4]
    assert [a["outcome"] for a in thrice] == [
        f"FAILED (failure 1 of 3) -> {retry[0]} in 100 ms",
        f"FAILED (failure 2 of 3) -> {retry[1]} in 200 ms",
        f"FAILED (failure 3 of 3) -> {retry[2]} in 400 ms",
        "done"]
    # Each retry waited out its queue's TTL (never less), and the waits grow.
    waits = [a["waited"] for a in thrice[1:]]
    assert [a["via"] for a in thrice[1:]] == retry
    assert waits[0] >= 100 and waits[1] >= 200 and waits[2] >= 400, waits
    assert waits[0] < waits[1] < waits[2], waits
    assert twice[1]["waited"] >= 100 and twice[2]["waited"] >= 200
    # From first try to success took at least the sum of the delays.
    assert thrice[-1]["since"] - thrice[0]["since"] >= 100 + 200 + 400
    assert twice[-1]["since"] - twice[0]["since"] >= 100 + 200
    # Outcomes in time order: ok at once, twice after ~300 ms, thrice after ~700 ms.
    done_order = [a["job"] for a in attempts if a["outcome"] == "done"]
    assert done_order == ["ok", "twice", "thrice"]
    assert ok[0]["line"] < twice[-1]["line"] < thrice[-1]["line"]

    channel = conn.channel()
    for name in ("work", "work.parking", "work.retry.1", "work.retry.2", "work.retry.3"):
        assert _message_count(channel, examples.name(name)) == 0, name


def _x_death(headers: dict) -> dict[tuple[str, str], dict]:
    return {(d["queue"], d["reason"]): d for d in headers["x-death"]}


def test_retry_backoff_always_failing_job_is_parked_after_max_attempts(examples, conn):
    """After 4 failed attempts the job is rejected into work.parking; x-death shows every hop once."""
    worker = _start_worker(examples, "--base-delay-ms", "50", "--levels", "3",
                           "--max-attempts", "4", "--max-jobs", "1")
    examples.run("retry_backoff/producer.py", "doomed:always")
    assert worker.finish() == 0
    work, parking = examples.name("work"), examples.name("work.parking")
    retry = [examples.name(f"work.retry.{k}") for k in (1, 2, 3)]
    doomed = _by_job(_attempts(worker), "doomed")
    assert [a["outcome"] for a in doomed] == [
        f"FAILED (fails every time) -> {retry[0]} in 50 ms",
        f"FAILED (fails every time) -> {retry[1]} in 100 ms",
        f"FAILED (fails every time) -> {retry[2]} in 200 ms",
        f"FAILED (fails every time) -> parked in {parking}"]
    waits = [a["waited"] for a in doomed[1:]]
    assert waits[0] >= 50 and waits[1] >= 100 and waits[2] >= 200, waits
    assert doomed[-1]["since"] - doomed[0]["since"] >= 50 + 100 + 200

    channel = conn.channel()
    method, props, body = channel.basic_get(parking, auto_ack=True)
    assert method is not None, "nothing in the parking queue"
    assert json.loads(body) == {"id": "doomed", "fail": "always"}
    assert props.message_id == "doomed" and props.delivery_mode == 2
    assert props.content_type == "application/json"
    headers = props.headers
    deaths = headers["x-death"]
    # Most recent death first: the rejection from the work queue that parked it.
    assert (deaths[0]["queue"], deaths[0]["reason"], deaths[0]["count"]) == (work, "rejected", 1)
    assert deaths[0]["exchange"] == "" and deaths[0]["routing-keys"] == [work]
    by_key = _x_death(headers)
    assert len(deaths) == len(by_key) == 4  # one entry per (queue, reason)
    assert {key: d["count"] for key, d in by_key.items()} == {
        (work, "rejected"): 1,
        (retry[0], "expired"): 1, (retry[1], "expired"): 1, (retry[2], "expired"): 1}
    for q in retry:
        d = by_key[(q, "expired")]
        assert d["exchange"] == "" and d["routing-keys"] == [q]
        assert set(d) == {"count", "reason", "queue", "time", "exchange", "routing-keys"}
    assert (headers["x-first-death-queue"], headers["x-first-death-reason"],
            headers["x-first-death-exchange"]) == (retry[0], "expired", "")
    # The worker's own headers travelled along with the message.
    assert headers["retried-via"] == retry[2] and headers["last-error"] == "fails every time"
    assert _message_count(channel, parking) == 0
    for q in (work, *retry):
        assert _message_count(channel, q) == 0, q


def test_retry_backoff_last_retry_queue_is_reused_and_its_x_death_count_grows(examples, conn):
    """With 2 retry levels and 5 attempts, work.retry.2 is used three times: its x-death count reaches 3."""
    worker = _start_worker(examples, "--base-delay-ms", "50", "--levels", "2",
                           "--max-attempts", "5", "--max-jobs", "1")
    examples.run("retry_backoff/producer.py", "doomed:always")
    assert worker.finish() == 0
    work = examples.name("work")
    r1, r2 = examples.name("work.retry.1"), examples.name("work.retry.2")
    doomed = _by_job(_attempts(worker), "doomed")
    assert [a["attempt"] for a in doomed] == [1, 2, 3, 4, 5]
    assert [a["via"] for a in doomed] == [None, r1, r2, r2, r2]
    assert all(a["waited"] >= 100 for a in doomed[2:]) and doomed[1]["waited"] >= 50
    assert doomed[-1]["outcome"].endswith(f"parked in {examples.name('work.parking')}")

    method, props, _ = conn.channel().basic_get(examples.name("work.parking"), auto_ack=True)
    assert method is not None
    assert {key: d["count"] for key, d in _x_death(props.headers).items()} == {
        (work, "rejected"): 1, (r1, "expired"): 1, (r2, "expired"): 3}
    assert len(props.headers["x-death"]) == 3


def test_retry_backoff_unreadable_message_is_parked_at_once(examples, conn):
    """A message the worker cannot parse is rejected straight into parking: x-death has the work queue only."""
    worker = _start_worker(examples, "--max-jobs", "1")
    work, parking = examples.name("work"), examples.name("work.parking")
    channel = conn.channel()
    channel.basic_publish("", work, b"not json")
    assert worker.finish() == 0
    assert f" [!] unreadable message b'not json' -> parked in {parking}" in worker.output
    method, props, body = channel.basic_get(parking, auto_ack=True)
    assert body == b"not json"
    assert [(d["queue"], d["reason"], d["count"]) for d in props.headers["x-death"]] == [
        (work, "rejected", 1)]
    assert props.headers["x-first-death-queue"] == work
    assert props.headers["x-first-death-reason"] == "rejected"


# --- 2. Delayed reminders (x-delayed-message exchange) -----------------------------------

def _has_delayed_exchange(broker_url: str, prefix: str) -> bool:
    """Whether the broker knows the x-delayed-message exchange type (503 COMMAND_INVALID if not)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        channel.exchange_declare(prefix + "probe", "x-delayed-message", auto_delete=True,
                                 arguments={"x-delayed-type": "direct"})
        channel.exchange_delete(prefix + "probe")
        return True
    except ConnectionClosedByBroker as exc:
        if exc.reply_code == 503:
            return False
        raise
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture
def delayed_exchange(examples) -> bool:
    return _has_delayed_exchange(examples.broker_url, examples.prefix)


REMINDER = re.compile(r" \[!\] Reminder '(.*)' due (\d\d:\d\d:\d\d\.\d{3}), lateness ([+-]\d+) ms$")


def test_delayed_reminders_arrive_in_due_order_and_never_early(examples, delayed_exchange):
    """Reminders published in any order reach the notifier by due time, none before its x-delay ran out."""
    if not delayed_exchange:
        pytest.skip("broker has no x-delayed-message exchange type (RabbitMQ: delayed-message plugin)")
    notifier = examples.consumer("delayed_reminders/notifier.py", "--max-messages", "4",
                                 ready="Waiting for reminders")
    started = time.monotonic()
    out = examples.run("delayed_reminders/scheduler.py",
                       "1200:third", "300:first", "700:second", "0:right away").stdout
    assert re.findall(r"Scheduled '(.*)' in (\d+) ms", out) == [
        ("third", "1200"), ("first", "300"), ("second", "700"), ("right away", "0")]
    assert notifier.finish() == 0
    elapsed = time.monotonic() - started
    got = [REMINDER.search(line).groups() for line in notifier.output if REMINDER.search(line)]
    assert [text for text, _, _ in got] == ["right away", "first", "second", "third"]
    lateness = [int(late) for _, _, late in got]
    assert all(0 <= late < 1000 for late in lateness), lateness
    assert elapsed >= 1.2


def test_delayed_reminders_refused_cleanly_without_the_exchange_type(examples, delayed_exchange):
    """On a broker without the plugin, the scheduler reports the 503 and exits with status 2."""
    if delayed_exchange:
        pytest.skip("broker has the x-delayed-message exchange type")
    done = examples.run("delayed_reminders/scheduler.py", "100:x", check=False)
    assert done.returncode == 2
    assert ("COMMAND_INVALID - unknown exchange type 'x-delayed-message'" in done.stderr), done.stderr


# --- 3. RPC over direct reply-to ---------------------------------------------------------

def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


REQUEST = re.compile(r" \[x\] Requesting fib\((\d+)\) \(corr (\S+)\)$")
REPLY = re.compile(r" \[\.\] fib\((\d+)\) = (\d+) \(corr (\S+), \d+ ms\)$")
SERVED = re.compile(r" \[\.\] fib\((\d+)\) for (\S+) corr (\S+)$")


def _matches(lines: list[str], pattern: re.Pattern) -> list[tuple[str, ...]]:
    return [m.groups() for m in map(pattern.search, lines) if m]


def _start_servers(examples, count: int) -> list[Program]:
    return examples.consumers([("rpc_direct_reply_to/server.py",)] * count, ready="Awaiting RPC requests")


def test_rpc_direct_reply_to_replies_match_requests_out_of_order(examples):
    """Five concurrent requests, two servers: the slow fib(31) is answered last; every reply matches its correlation id."""
    servers = _start_servers(examples, 2)
    numbers = [31, 1, 2, 3, 10]
    done = examples.run("rpc_direct_reply_to/client.py", "--timeout", "10", *map(str, numbers))
    lines = done.stdout.splitlines()
    requests = _matches(lines, REQUEST)
    replies = _matches(lines, REPLY)
    assert [int(n) for n, _ in requests] == numbers  # all sent before any reply was read
    assert all(REQUEST.search(line) for line in lines[:len(numbers)])
    corr_of = {corr: int(n) for n, corr in requests}
    assert len(corr_of) == len(numbers)
    assert sorted(int(n) for n, _, _ in replies) == sorted(numbers)
    for n, value, corr in replies:
        assert corr_of[corr] == int(n) and int(value) == _fib(int(n))
    assert int(replies[-1][0]) == 31  # answered by the busy server while the other did the rest
    assert lines[-1] == " [=] 5 of 5 requests answered"

    for s in servers:
        s.stop()
    served = _matches(servers[0].output, SERVED) + _matches(servers[1].output, SERVED)
    assert sorted(int(n) for n, _, _ in served) == sorted(numbers)
    reply_tos = {reply_to for _, reply_to, _ in served}
    assert len(reply_tos) == 1  # one client channel: one pseudo-queue name
    (reply_to,) = reply_tos
    assert reply_to.startswith("amq.rabbitmq.reply-to.") and len(reply_to) > len("amq.rabbitmq.reply-to.")
    assert {corr for _, _, corr in served} == set(corr_of)


def test_rpc_direct_reply_to_concurrent_clients_get_only_their_replies(examples):
    """Two clients calling at once through one server each get exactly their own replies."""
    (server,) = _start_servers(examples, 1)
    clients = {
        (7, 15, 20): examples.start("rpc_direct_reply_to/client.py", "--timeout", "10", "7", "15", "20"),
        (19, 3, 25): examples.start("rpc_direct_reply_to/client.py", "--timeout", "10", "19", "3", "25"),
    }
    corrs = {}
    for numbers, client in clients.items():
        assert client.finish(timeout=12) == 0, client.text()
        replies = _matches(client.output, REPLY)
        assert sorted(int(n) for n, _, _ in replies) == sorted(numbers)
        assert all(int(v) == _fib(int(n)) for n, v, _ in replies)
        assert not [line for line in client.output if "[?]" in line]  # no foreign replies
        corrs[numbers] = {corr for _, _, corr in replies}
    server.stop()
    served = _matches(server.output, SERVED)
    assert len(served) == 6
    reply_to_of = {corr: reply_to for _, reply_to, corr in served}
    for numbers, ids in corrs.items():
        assert len({reply_to_of[c] for c in ids}) == 1
    assert len(set(reply_to_of.values())) == 2  # a distinct pseudo-queue per client channel


def test_rpc_direct_reply_to_client_times_out_and_requests_expire(examples, conn):
    """With no server consuming, the client reports every request as unanswered after --timeout and
    exits 1; the requests' expiration (= the timeout) then empties the request queue."""
    channel = conn.channel()
    channel.queue_declare(examples.name("rpc.fib"), durable=True)
    started = time.monotonic()
    done = examples.run("rpc_direct_reply_to/client.py", "--timeout", "1", "3", "4", check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.findall(r" \[!\] fib\((\d+)\): no reply within 1\.0 s", done.stdout) == ["3", "4"]
    assert done.stdout.splitlines()[-1] == " [=] 0 of 2 requests answered"
    assert 1.0 <= elapsed < 6
    deadline = time.monotonic() + 3
    while _message_count(channel, examples.name("rpc.fib")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _message_count(channel, examples.name("rpc.fib")) == 0


def test_rpc_direct_reply_to_request_returned_when_no_server_queue(examples):
    """Requests are published mandatory: without an 'rpc.fib' queue they come back as 312 NO_ROUTE at once."""
    started = time.monotonic()
    done = examples.run("rpc_direct_reply_to/client.py", "--timeout", "5", "1", "2", check=False)
    assert done.returncode == 1
    assert re.findall(r" \[!\] fib\((\d+)\): request returned, 312 NO_ROUTE", done.stdout) == ["1", "2"]
    assert time.monotonic() - started < 4  # not the 5 s timeout
