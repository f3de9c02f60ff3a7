"""The seven RabbitMQ tutorial flows, run as real programs (examples/tutorials/) against the broker.

Each program is started as a subprocess with AMQP_URL pointing at the broker under test and
TUTORIAL_PREFIX set to the test's unique prefix, so exchange/queue names never collide.
Consumers are started first; a test publishes only after they print their "waiting" line.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pika
import pytest
from subprocs import CONSUMER_TIMEOUT, WAIT, Programs

TUTORIALS = Path(__file__).resolve().parent.parent / "examples" / "tutorials"

# Named (non-temporary) resources the tutorials create; removed after every test.
TUTORIAL_QUEUES = ("hello", "task_queue", "rpc_queue")
TUTORIAL_EXCHANGES = ("logs", "direct_logs", "topic_logs")


@pytest.fixture
def tutorials(broker_url, uniq):
    with Programs(TUTORIALS, broker_url, uniq + ".", "TUTORIAL_", TUTORIAL_QUEUES, TUTORIAL_EXCHANGES) as t:
        yield t


# --- 1. Hello World ---------------------------------------------------------------

def test_hello_world_receiver_prints_sent_message(tutorials):
    """A message sent to the default exchange with a queue's name as key reaches that queue's consumer."""
    receiver = tutorials.consumer("receive.py", "--max-messages", "1")
    assert "Sent 'Hello World!'" in tutorials.run("send.py").stdout
    assert receiver.finish() == 0
    assert receiver.received() == ["Received 'Hello World!'"]


def test_hello_world_message_waits_in_queue_until_receiver_starts(tutorials):
    """A message sent before any consumer exists is kept in the declared queue and delivered later."""
    tutorials.run("send.py", "sent", "before", "receiver")
    tutorials.run("send.py", "second")
    receiver = tutorials.start("receive.py", "--max-messages", "2", "--timeout", CONSUMER_TIMEOUT)
    assert receiver.finish() == 0
    assert receiver.received() == ["Received 'sent before receiver'", "Received 'second'"]


# --- 2. Work queues ----------------------------------------------------------------

def test_work_queue_task_is_persistent_on_durable_queue(tutorials, conn):
    """new_task.py leaves a delivery_mode=2 message on a durable 'task_queue' until a worker takes it."""
    tutorials.run("new_task.py", "persisted", "task.")
    channel = conn.channel()
    # Re-declaring with durable=True succeeds only because the queue is durable (else 406).
    declared = channel.queue_declare(tutorials.name("task_queue"), durable=True)
    assert declared.method.message_count == 1
    method, properties, body = channel.basic_get(tutorials.name("task_queue"), auto_ack=True)
    assert body == b"persisted task."
    assert properties.delivery_mode == 2
    assert method.redelivered is False


def test_work_queue_two_workers_share_tasks(tutorials):
    """Tasks on one queue are shared between two workers: each task is done once, both workers get some."""
    env = {"TUTORIAL_DOT_SECONDS": "0.2"}
    workers = tutorials.consumers([("worker.py",)] * 2, env=env)
    tasks = [f"task {i}." for i in range(1, 5)]
    for task in tasks:
        tutorials.run("new_task.py", task)
    done = []
    deadline = time.monotonic() + WAIT
    while len(done) < len(tasks):
        for w in workers:  # both workers get work quickly, so polling each in turn is fine
            try:
                done.append(w.expect(" [x] Done", timeout=min(0.3, max(0.01, deadline - time.monotonic()))))
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
    for w in workers:
        w.stop()
    got = [w.received(" [x] Received ") for w in workers]
    assert sorted(got[0] + got[1]) == sorted(repr(t) for t in tasks)
    assert got[0] and got[1]


def test_work_queue_prefetch_one_keeps_busy_worker_free_of_new_tasks(tutorials, conn):
    """With prefetch_count=1 a worker busy with an unacked task gets nothing more; the other worker gets the rest."""
    env = {"TUTORIAL_DOT_SECONDS": "0.1"}
    workers = tutorials.consumers([("worker.py",)] * 2, env=env)
    slow = "slow.........."  # 10 dots: busy for about 1 s
    quick = [f"quick {i}" for i in range(4)]  # no dots: done at once
    tutorials.run("new_task.py", slow)
    slow_worker = _first_to_print(workers, " [x] Received 'slow")
    other = workers[1] if slow_worker is workers[0] else workers[0]
    channel = conn.channel()
    for body in quick:
        channel.basic_publish("", tutorials.name("task_queue"), body,
                              pika.BasicProperties(delivery_mode=2))
    for body in quick:
        other.expect(f" [x] Done {body!r}")
    slow_worker.expect(f" [x] Done {slow!r}")
    for w in workers:
        w.stop()
    assert slow_worker.received(" [x] Received ") == [repr(slow)]
    assert other.received(" [x] Received ") == [repr(b) for b in quick]


def _first_to_print(programs, text, timeout=WAIT):
    """The program among ``programs`` that prints a line containing ``text`` first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in programs:
            try:
                p.expect(text, timeout=0.1)
            except AssertionError:
                continue
            return p
    raise AssertionError(f"no program printed {text!r}")


def test_work_queue_unacked_task_is_redelivered_when_worker_dies(tutorials):
    """A task a worker received but never acked goes to another worker when the first one's connection dies."""
    env = {"TUTORIAL_DOT_SECONDS": "1"}
    first = tutorials.consumer("worker.py", env=env)
    tutorials.run("new_task.py", "long task..........")  # 10 s of work: never finishes here
    first.expect(" [x] Received 'long task..........'")
    second = tutorials.consumer("worker.py", "--max-messages", "1", env={"TUTORIAL_DOT_SECONDS": "0"})
    first.kill()
    assert second.finish() == 0
    assert second.received(" [x] Received ") == ["'long task..........'"]
    assert second.received(" [x] Done ") == ["'long task..........'"]


def test_work_queue_as_quorum_queue(tutorials, conn):
    """The work queue flow also works when 'task_queue' is declared with x-queue-type=quorum."""
    env = {"TUTORIAL_QUEUE_TYPE": "quorum", "TUTORIAL_DOT_SECONDS": "0"}
    worker = tutorials.consumer("worker.py", "--max-messages", "2", env=env)
    tutorials.run("new_task.py", "quorum task 1", env=env)
    tutorials.run("new_task.py", "--queue-type", "quorum", "quorum task 2")
    assert worker.finish() == 0
    assert worker.received(" [x] Done ") == ["'quorum task 1'", "'quorum task 2'"]
    # The queue really is a quorum queue: an equivalent re-declaration succeeds.
    conn.channel().queue_declare(tutorials.name("task_queue"), durable=True,
                                 arguments={"x-queue-type": "quorum"})


# --- 3. Publish/Subscribe ----------------------------------------------------------

def test_publish_subscribe_every_receiver_gets_the_message(tutorials):
    """A fanout exchange copies one message to the exclusive server-named queue of every receiver."""
    receivers = tutorials.consumers([("receive_logs.py", "--max-messages", "1")] * 3)
    tutorials.run("emit_log.py", "info:", "to", "everyone")
    for r in receivers:
        assert r.finish() == 0
        assert r.received() == ["info: to everyone"]


def test_publish_subscribe_message_without_receivers_is_lost(tutorials):
    """A fanout message published while no queue is bound is dropped; later receivers never see it."""
    tutorials.run("emit_log.py", "nobody", "listens")
    receiver = tutorials.consumer("receive_logs.py", "--max-messages", "1")
    tutorials.run("emit_log.py")
    assert receiver.finish() == 0
    assert receiver.received() == ["info: Hello World!"]


# --- 4. Routing ------------------------------------------------------------------------

def test_routing_direct_receivers_get_only_their_severities(tutorials):
    """A direct exchange delivers a message only to queues bound with exactly its routing key, once each."""
    errors_only, all_but_debug = tutorials.consumers([
        ("receive_logs_direct.py", "--max-messages", "2", "warning", "error"),
        ("receive_logs_direct.py", "--max-messages", "3", "info", "warning", "error"),
    ])
    # Every message a receiver must not get is sent before its last expected one, so a
    # wrongly routed message would show up in its output.
    for severity in ("debug", "info", "warning", "error"):
        out = tutorials.run("emit_log_direct.py", severity, f"a {severity} message").stdout
        assert f"Sent {severity}:a {severity} message" in out
    assert errors_only.finish() == 0
    assert all_but_debug.finish() == 0
    assert errors_only.received() == ["warning:a warning message", "error:a error message"]
    assert all_but_debug.received() == [
        "info:a info message", "warning:a warning message", "error:a error message"]


def test_routing_direct_defaults_to_info(tutorials):
    """emit_log_direct.py without arguments sends 'Hello World!' with routing key 'info'."""
    receiver = tutorials.consumer("receive_logs_direct.py", "--max-messages", "1", "info")
    tutorials.run("emit_log_direct.py")
    assert receiver.finish() == 0
    assert receiver.received() == ["info:Hello World!"]


# --- 5. Topics -------------------------------------------------------------------------

def test_topics_receivers_get_matching_routing_keys(tutorials):
    """Topic bindings: '*' matches one word, '#' any number; a message matching two bindings of one queue arrives once."""
    kern, critical, everything, both = tutorials.consumers([
        ("receive_logs_topic.py", "--max-messages", "3", "kern.*"),
        ("receive_logs_topic.py", "--max-messages", "3", "*.critical"),
        ("receive_logs_topic.py", "--max-messages", "6", "#"),
        ("receive_logs_topic.py", "--max-messages", "4", "kern.*", "*.critical"),
    ])
    sent = [
        ("anonymous.info", "m1"),
        ("kern.warning.extra", "m2"),  # three words: neither kern.* nor *.critical
        ("kern.info", "m3"),
        ("auth.critical", "m4"),
        ("kern.critical", "m5"),  # matches both bindings of `both`
        ("kern.critical", "m6"),  # so a duplicate of m5 would show up before this one
    ]
    for key, body in sent:
        tutorials.run("emit_log_topic.py", key, body)
    for r in (kern, critical, everything, both):
        assert r.finish() == 0
    assert kern.received() == ["kern.info:m3", "kern.critical:m5", "kern.critical:m6"]
    assert critical.received() == ["auth.critical:m4", "kern.critical:m5", "kern.critical:m6"]
    assert everything.received() == [f"{k}:{b}" for k, b in sent]
    assert both.received() == ["kern.info:m3", "auth.critical:m4", "kern.critical:m5", "kern.critical:m6"]


# --- 6. RPC ------------------------------------------------------------------------------

def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def test_rpc_client_gets_fibonacci_numbers(tutorials):
    """Replies sent to reply_to with the request's correlation_id reach the RPC client in order."""
    numbers = [0, 1, 2, 10, 20]
    server = tutorials.consumer("rpc_server.py", "--max-messages", str(len(numbers)),
                                ready="Awaiting RPC requests")
    out = tutorials.run("rpc_client.py", "--timeout", "5", *map(str, numbers)).stdout
    assert re.findall(r"Got (\d+)", out) == [str(_fib(n)) for n in numbers]
    assert server.finish() == 0
    assert server.received(" [.] ") == [f"fib({n})" for n in numbers]


def test_rpc_concurrent_clients_each_get_their_own_reply(tutorials):
    """Two clients calling at once each get the reply to their own request on their own callback queue."""
    server = tutorials.consumer("rpc_server.py", "--max-messages", "4", ready="Awaiting RPC requests")
    clients = {
        (7, 15): tutorials.start("rpc_client.py", "--timeout", "5", "7", "15"),
        (19, 3): tutorials.start("rpc_client.py", "--timeout", "5", "19", "3"),
    }
    for numbers, client in clients.items():
        assert client.finish() == 0
        assert client.received(" [.] Got ") == [str(_fib(n)) for n in numbers]
    assert server.finish() == 0
    assert sorted(server.received(" [.] ")) == sorted(f"fib({n})" for n in (7, 15, 19, 3))


def test_rpc_client_default_request_is_fib_30(tutorials):
    """rpc_client.py without arguments asks for fib(30), as in the tutorial, and gets 832040."""
    server = tutorials.consumer("rpc_server.py", "--max-messages", "1", ready="Awaiting RPC requests")
    out = tutorials.run("rpc_client.py", "--timeout", "10").stdout
    assert " [x] Requesting fib(30)" in out
    assert " [.] Got 832040" in out
    assert server.finish(timeout=15) == 0


# --- 7. Publisher confirms ---------------------------------------------------------------

def test_publisher_confirms_all_three_strategies(tutorials):
    """Every message published on a confirm channel is acked (individually, in batches, asynchronously) and enqueued."""
    out = tutorials.run("publisher_confirms.py", "--messages", "300", "--batch-size", "50").stdout
    results = re.findall(r"Published 300 messages (.+?) in [\d,]+ ms: (\d+) confirmed, (\d+) nacked, "
                         r"queue held (\d+)", out)
    assert results == [
        ("individually", "300", "0", "300"),
        ("in batches of 50", "300", "0", "300"),
        ("asynchronously", "300", "0", "300"),
    ], out
    assert out.rstrip().endswith("All messages confirmed")


@pytest.mark.parametrize("strategy", ["individually", "batches", "async"])
def test_publisher_confirms_single_strategy(tutorials, strategy):
    """Each confirm strategy on its own gets one ack per message for an uneven count and batch size."""
    out = tutorials.run("publisher_confirms.py", "--messages", "123", "--batch-size", "20",
                        "--strategy", strategy).stdout
    assert re.findall(r"(\d+) confirmed, (\d+) nacked, queue held (\d+)", out) == [("123", "0", "123")], out
