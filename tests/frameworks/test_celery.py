"""Celery (pyamqp:// broker, rpc:// result backend) with a real ``celery worker`` process.

One prefork worker (concurrency 2, ``worker_prefetch_multiplier=1``, events on) serves the
module in a virtual host of its own. What each test relies on from the broker:
retries and ETAs (the worker holds unacked messages and raises its prefetch), routing
through a direct exchange and the default exchange, ``basic.qos`` (prefetch), redelivery of an
unacked message when a pool process dies (``acks_late``), the pidbox fanout exchange with
its reply exchange (``inspect``, ``control``, ``revoke``), the ``celeryev`` topic exchange
(events), and the rpc backend's reply queue.
"""
from __future__ import annotations

import datetime
import threading
import time
import uuid

import pika
import pytest
from celery import chain, group
from celery.exceptions import TaskRevokedError
from kombu import Connection

from tests.frameworks import celery_app

TIMEOUT = 20  # seconds any single result may take (a safety net, not a speed assertion)


def start_worker(workers, url, prefix, scratch, queues, env=None):
    hostname = f"{prefix.rstrip('.')}.{len(queues)}{uuid.uuid4().hex[:4]}@leveret-test"
    worker = workers(
        ["celery", "-A", "celery_app", "worker", "-n", hostname, "-c", "2", "-P", "prefork",
         "-Q", ",".join(queues), "-E", "--without-mingle", "--without-gossip", "-l", "info"],
        {"LEVERET_FW_URL": url, "LEVERET_FW_PREFIX": prefix, "LEVERET_FW_SCRATCH": str(scratch),
         **(env or {})},
        name=f"celery worker {hostname}")
    worker.expect(" ready.", timeout=60)
    return hostname, worker


@pytest.fixture(scope="module")
def setup(fw_vhost, workers, tmp_path_factory):
    prefix = f"fw.{uuid.uuid4().hex[:6]}."
    scratch = tmp_path_factory.mktemp("celery")
    names = celery_app.queue_names(prefix)
    hostname, worker = start_worker(workers, fw_vhost, prefix, scratch,
                                    [names[k] for k in ("default", "a", "b", "prefetch")])
    app = celery_app.make_app(fw_vhost, prefix, str(scratch))
    yield {"app": app, "names": names, "hostname": hostname, "scratch": scratch,
           "url": fw_vhost, "worker": worker, "prefix": prefix, "workers": workers}
    app.close()


def task(setup, name):
    return setup["app"].tasks[name]


def wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_task_runs_and_returns_through_rpc_backend(setup):
    result = task(setup, "fw.add").delay(2, 3)
    assert result.get(timeout=TIMEOUT) == 5
    assert result.state == "SUCCESS"


def test_routing_to_several_queues(setup):
    names = setup["names"]
    where = task(setup, "fw.where")
    # by queue name (kombu publishes to the queue's exchange with its routing key)
    for q in ("a", "b"):
        info = where.apply_async(queue=names[q]).get(timeout=TIMEOUT)
        assert info["routing_key"] == names[q]
    # through the direct exchange with an explicit routing key
    info = where.apply_async(exchange=f"{setup['names']['default'][:-len('default')]}tasks",
                             routing_key=names["b"]).get(timeout=TIMEOUT)
    assert info == {**info, "exchange": f"{names['default'][:-len('default')]}tasks", "routing_key": names["b"]}
    # by task_routes
    assert task(setup, "fw.routed_b").delay().get(timeout=TIMEOUT) == names["b"]
    # and nothing was left behind in any of the queues
    conn = pika.BlockingConnection(pika.URLParameters(setup["url"]))
    try:
        ch = conn.channel()
        for q in ("default", "a", "b"):
            ok = ch.queue_declare(names[q], passive=True).method
            assert (ok.message_count, ok.consumer_count) == (0, 1), q
    finally:
        conn.close()


def test_retry_with_countdown(setup):
    result = task(setup, "fw.flaky").delay(2).get(timeout=TIMEOUT)
    assert result["retries"] == 2
    assert result["eta"] is not None  # the retried message carried the countdown as its ETA


def test_apply_async_eta_and_expires(setup):
    where = task(setup, "fw.where")
    eta = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    info = where.apply_async(eta=eta, expires=eta + datetime.timedelta(seconds=30)).get(timeout=TIMEOUT)
    assert datetime.datetime.fromisoformat(info["eta"]) == eta
    # expires before its ETA: the worker receives it, then drops it as revoked (expired)
    expired = where.apply_async(countdown=2, expires=1)
    with pytest.raises(TaskRevokedError):
        expired.get(timeout=TIMEOUT)


def test_revoke_waiting_and_running_tasks(setup):
    waiting = task(setup, "fw.where").apply_async(countdown=2)
    waiting.revoke()
    with pytest.raises(TaskRevokedError):
        waiting.get(timeout=TIMEOUT)
    tag = f"revoke-{uuid.uuid4().hex[:6]}"
    running = task(setup, "fw.block").delay(tag)
    wait_for(lambda: (setup["scratch"] / f"{tag}.started").exists(), "the blocking task to start")
    running.revoke(terminate=True)
    with pytest.raises(TaskRevokedError):
        running.get(timeout=TIMEOUT)
    assert task(setup, "fw.add").delay(1, 1).get(timeout=TIMEOUT) == 2  # the pool recovered


def test_acks_late_message_redelivered_when_worker_process_dies(setup):
    result = task(setup, "fw.die_once").delay(f"die-{uuid.uuid4().hex[:6]}").get(timeout=TIMEOUT)
    assert result == {"redelivered": True}


def test_worker_prefetch_multiplier_limits_unacked_deliveries(setup):
    """multiplier 1 x concurrency 2: the broker hands the worker 2 messages and keeps the rest
    ready until one is acknowledged (the tasks are acks_late: Celery acknowledges other tasks
    as soon as a pool process takes them)."""
    names, scratch = setup["names"], setup["scratch"]
    tags = [f"pf{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    results = [task(setup, "fw.block_late").apply_async((t,), queue=names["prefetch"]) for t in tags]
    wait_for(lambda: sum((scratch / f"{t}.started").exists() for t in tags) == 2,
             "two tasks to start")
    conn = pika.BlockingConnection(pika.URLParameters(setup["url"]))
    try:
        ok = conn.channel().queue_declare(names["prefetch"], passive=True).method
        assert (ok.message_count, ok.consumer_count) == (2, 1)
    finally:
        conn.close()
    for t in tags:
        (scratch / f"{t}.release").touch()
    assert [r.get(timeout=TIMEOUT) for r in results] == tags


def test_inspect_and_control_broadcasts(setup):
    app, names, hostname = setup["app"], setup["names"], setup["hostname"]
    inspect = app.control.inspect(timeout=5, destination=[hostname])
    assert inspect.ping() == {hostname: {"ok": "pong"}}
    queues = {q["name"] for q in inspect.active_queues()[hostname]}
    assert queues == {names[k] for k in ("default", "a", "b", "prefetch")}
    assert "fw.add" in inspect.registered()[hostname]
    stats = inspect.stats()[hostname]
    assert stats["prefetch_count"] == 2
    # control: consume from one more queue, run a task there, stop consuming again
    replies = app.control.add_consumer(names["extra"], reply=True, destination=[hostname])
    assert replies == [{hostname: {"ok": f"add consumer {names['extra']}"}}]
    info = task(setup, "fw.where").apply_async(queue=names["extra"]).get(timeout=TIMEOUT)
    assert info["routing_key"] == names["extra"]
    replies = app.control.cancel_consumer(names["extra"], reply=True, destination=[hostname])
    assert replies == [{hostname: {"ok": f"no longer consuming from {names['extra']}"}}]
    # (the worker replies first and cancels the consumer just after)
    conn = pika.BlockingConnection(pika.URLParameters(setup["url"]))
    try:
        ch = conn.channel()
        wait_for(lambda: ch.queue_declare(names["extra"], passive=True).method.consumer_count == 0,
                 "the worker to cancel its consumer")
    finally:
        conn.close()
    assert names["extra"] not in {q["name"] for q in inspect.active_queues()[hostname]}


def test_events_receiver_sees_task_succeeded(setup):
    app = setup["app"]
    seen: dict[str, dict] = {}
    sent: set[str] = set()
    stop = threading.Event()

    def on_event(event):
        seen.setdefault(event["uuid"], {})[event["type"]] = event

    def receive():
        with app.connection_for_read() as conn:
            recv = app.events.Receiver(conn, handlers={t: on_event for t in ("task-received", "task-succeeded")})
            while not stop.is_set():
                try:
                    recv.capture(limit=1, timeout=0.5, wakeup=False)
                except TimeoutError:
                    pass

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        # the receiver's queue binds asynchronously: send until all of one task's events arrive
        both = {"task-received", "task-succeeded"}
        deadline = time.monotonic() + TIMEOUT
        while not any(set(seen.get(u, {})) == both for u in sent):
            assert time.monotonic() < deadline, f"no task-succeeded event; saw {seen}"
            result = task(setup, "fw.add").delay(20, 22)
            sent.add(result.id)
            assert result.get(timeout=TIMEOUT) == 42
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(5)
    done = next(seen[u] for u in sent if set(seen.get(u, {})) == both)
    assert done["task-succeeded"]["result"] == "42"
    assert done["task-succeeded"]["hostname"] == setup["hostname"]


def test_chain_and_group(setup):
    """(Chords need a result backend that can count: Celery's rpc backend refuses them.)"""
    add = task(setup, "fw.add")
    assert chain(add.s(1, 2), add.s(3), add.s(4))().get(timeout=TIMEOUT) == 10
    assert group(add.s(i, i) for i in range(5))().get(timeout=TIMEOUT) == [0, 2, 4, 6, 8]


def eta_tasks_do_not_block(setup, queue):
    where = task(setup, "fw.where")
    waiting = [where.apply_async(queue=queue, countdown=8) for _ in range(3)]
    assert task(setup, "fw.add").apply_async((4, 4), queue=queue).get(timeout=TIMEOUT) == 8
    assert not any(r.ready() for r in waiting)
    for r in waiting:
        r.revoke()


def test_eta_tasks_do_not_block_the_queue(setup):
    """A worker holds ETA tasks unacknowledged until they are due and raises its prefetch by one
    for each (``basic.qos`` again on the same channel), so a task sent after more ETA tasks than
    the prefetch window still runs at once. That needs the channel-wide (``global``) prefetch
    Celery uses when the broker announces itself as RabbitMQ 3.3-3.x: a new per-consumer
    prefetch applies only to consumers started after it. (Leveret announces product RabbitMQ
    3.10.8 by default for this: settings.product_name.)"""
    eta_tasks_do_not_block(setup, setup["names"]["a"])


def test_kombu_takes_the_broker_for_rabbitmq_3(setup):
    """kombu's py-amqp transport picks RabbitMQ 3.3+'s prefetch semantics (global qos) from
    connection.start's product and version: the same answer on both brokers."""
    with Connection(setup["url"].replace("amqp://", "pyamqp://", 1)) as conn:
        conn.connect()
        assert conn.transport.qos_semantics_matches_spec(conn.connection) is False
