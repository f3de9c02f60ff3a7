"""The application examples, part 2 (examples/stock_prices, image_pipeline, chat, rate_limiter,
metrics_dashboard, microservices), run as programs against the broker under test.

As in tests/test_examples.py, every program is a subprocess with AMQP_URL pointing at the broker
(LEVERET_TEST_URL, or the session's private ``leveret serve``) and EXAMPLE_PREFIX set to the
test's unique prefix; named queues and exchanges are deleted afterwards. Consumers and servers
are started first and waited for until they print their ready line.
"""
from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pika
import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as ws_connect
from subprocs import Programs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

RATE_QUEUES = ("api.requests", "api.requests.delay", "api.requests.rejected")
IMAGE_QUEUES = ("images.resize", "images.watermark", "images.thumbnail", "images.done", "images.failed")
SHOP_QUEUES = ("orders.updates", "inventory.orders", "notifications")
QUEUES = (*RATE_QUEUES, "metrics.dashboard", *IMAGE_QUEUES, "stock.ticks", *SHOP_QUEUES)
EXCHANGES = ("metrics", "chat", "prices", "stock.ticks", "shop")


@pytest.fixture
def apps(broker_url, uniq):
    with Programs(EXAMPLES, broker_url, uniq + ".", "EXAMPLE_", QUEUES, EXCHANGES) as programs:
        yield programs


def _message_count(channel, name: str) -> int:
    return channel.queue_declare(name, passive=True).method.message_count


def _http_url(program, ready: str) -> str:
    """The http://host:port of a server program, from its ready line."""
    return re.search(r"(http://[\d.]+:\d+)", program.expect(ready)).group(1)


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers.get_content_type(), response.read().decode()


def _post_json(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _ws_url(program) -> str:
    """The ws://host:port of a chat server, from its ready line."""
    return re.search(r"(ws://[\d.]+:\d+)", program.expect("Chat server")).group(1)


def _poll_json(url: str, done, timeout: float = 10.0):
    """GET ``url`` until ``done(json)`` holds; return that JSON (the last one seen on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        data = json.loads(_get(url)[1])
        if done(data) or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


# --- Rate limiter with delayed retry (TTL + DLX) -----------------------------------------

PROCESSED = re.compile(r" \[>\] (\S+) processed \(retries (\d+), expired (\d+)x in (\S+), t=(\d+)\)$")


def test_rate_limiter_delays_the_excess_and_never_exceeds_the_rate(apps, conn):
    """20 requests at once, 10/s with a burst of 5: all are processed, the excess after trips through
    the delay queue (x-death agrees with the limiter's own count), and no window breaks the bucket's bound."""
    limiter = apps.consumer("rate_limiter/limiter.py", "--rate", "10", "--burst", "5",
                            "--retry-delay-ms", "200", "--max-retries", "50", "--max-requests", "20",
                            ready="Waiting for requests")
    assert apps.run("rate_limiter/client.py", "--count", "20").stdout.rstrip() == (
        f" [x] Sent 20 requests to {apps.name('api.requests')}")
    assert limiter.finish(timeout=20) == 0, limiter.text()
    processed = [PROCESSED.search(line).groups() for line in limiter.output if PROCESSED.search(line)]
    assert sorted(int(rid.split("-")[1]) for rid, *_ in processed) == list(range(1, 21))
    delay = apps.name("api.requests.delay")
    assert {via for _, _, _, via, _ in processed} == {delay}
    for rid, retries, expired, _, _ in processed:
        assert retries == expired, (rid, retries, expired)  # every delayed copy came back by TTL expiry
    delayed = [p for p in processed if int(p[1]) > 0]
    assert len(delayed) >= 5, "a burst of 20 over a bucket of 5 must delay requests"
    delayed_lines = [line for line in limiter.output if " over the rate -> " in line]
    assert len(delayed_lines) == sum(int(p[1]) for p in processed)
    # Token bucket bound, checked on the limiter's own clock: at most burst + rate * T in any T.
    times = sorted(int(p[4]) for p in processed)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            span_s = (times[j] - start) / 1000
            assert j - i + 1 <= 5 + 10 * span_s + 1e-9, (times, i, j)
    channel = conn.channel()
    for q in RATE_QUEUES:
        assert _message_count(channel, apps.name(q)) == 0, q


def test_rate_limiter_rejects_after_max_retries_into_the_rejected_queue(apps, conn):
    """At 0.02/s (a token per 50 s, so a loaded machine cannot slip one in) with a burst of 1 and
    one retry allowed, of 3 requests one is processed and two end in api.requests.rejected, each with x-retries 1 and x-death entries for the delay and the rejection."""
    limiter = apps.consumer("rate_limiter/limiter.py", "--rate", "0.02", "--burst", "1",
                            "--retry-delay-ms", "100", "--max-retries", "1", "--max-requests", "3",
                            ready="Waiting for requests")
    apps.run("rate_limiter/client.py", "--count", "3", "--path", "/slow")
    assert limiter.finish() == 0, limiter.text()
    assert [line for line in limiter.output if "processed" in line][0].startswith(" [>] req-1 processed (retries 0")
    requests, delay, rejected = (apps.name(q) for q in RATE_QUEUES)
    assert sorted(line for line in limiter.output if "rejected into" in line) == [
        f" [!] req-{n} over the rate after 1 retries -> rejected into {rejected}" for n in (2, 3)]
    channel = conn.channel()
    got = []
    for _ in range(2):
        method, props, body = channel.basic_get(rejected, auto_ack=True)
        assert method is not None
        got.append(json.loads(body)["id"])
        assert json.loads(body)["path"] == "/slow"
        assert props.headers["x-retries"] == 1
        deaths = {(d["queue"], d["reason"]): d["count"] for d in props.headers["x-death"]}
        assert deaths == {(requests, "rejected"): 1, (delay, "expired"): 1}
        assert props.headers["x-first-death-queue"] == delay
    assert sorted(got) == ["req-2", "req-3"]
    assert channel.basic_get(rejected)[0] is None


# --- Live metrics dashboard --------------------------------------------------------------

def test_metrics_dashboard_aggregates_samples_from_several_services(apps, conn):
    """Two services publish 7 samples (and a bad one arrives): /api/metrics shows exact count, sum,
    min, max, avg and last per service and metric; the HTML page shows the same rows."""
    dashboard = apps.start("metrics_dashboard/dashboard.py", "--port", "0", "--timeout", "20")
    base = _http_url(dashboard, "Dashboard on")
    assert apps.run("metrics_dashboard/service.py", "--service", "api",
                    "--metric", "latency_ms=10,20,30", "--metric", "errors=0,1").stdout.rstrip() == (
        f" [x] api sent 5 samples to {apps.name('metrics')}")
    apps.run("metrics_dashboard/service.py", "--service", "billing", "--metric", "invoices=4,6")
    conn.channel().basic_publish(apps.name("metrics"), "metrics.api.latency_ms", b"not json")
    data = _poll_json(base + "/api/metrics", lambda d: d["received"] + d["rejected"] >= 8)
    assert data == {"received": 7, "rejected": 1, "services": {
        "api": {"latency_ms": {"count": 3, "sum": 60.0, "min": 10.0, "max": 30.0, "avg": 20.0, "last": 30.0},
                "errors": {"count": 2, "sum": 1.0, "min": 0.0, "max": 1.0, "avg": 0.5, "last": 1.0}},
        "billing": {"invoices": {"count": 2, "sum": 10.0, "min": 4.0, "max": 6.0, "avg": 5.0, "last": 6.0}}}}
    content_type, page = _get(base + "/")
    assert content_type == "text/html"
    assert "<p>7 samples, 1 rejected</p>" in page
    assert "<tr><td>api</td><td>latency_ms</td><td>3</td><td>10</td><td>20.00</td><td>30</td><td>30</td></tr>" in page
    assert "<tr><td>billing</td><td>invoices</td><td>2</td>" in page
    dashboard.expect(" [!] rejected sample b'not json' (JSONDecodeError: ")
    assert _message_count(conn.channel(), apps.name("metrics.dashboard")) == 0


def test_metrics_dashboard_keeps_samples_sent_while_it_was_down(apps):
    """The durable queue holds samples until the dashboard starts; a --bind pattern selects services."""
    with pika.BlockingConnection(pika.URLParameters(apps.broker_url)) as connection:
        channel = connection.channel()
        channel.exchange_declare(apps.name("metrics"), "topic", durable=True)
        channel.queue_declare(apps.name("metrics.dashboard"), durable=True)
        channel.queue_bind(apps.name("metrics.dashboard"), apps.name("metrics"), "metrics.api.*")
    apps.run("metrics_dashboard/service.py", "--service", "api", "--metric", "latency_ms=5,7")
    apps.run("metrics_dashboard/service.py", "--service", "billing", "--metric", "invoices=1")
    dashboard = apps.start("metrics_dashboard/dashboard.py", "--port", "0", "--timeout", "20",
                           "--bind", "metrics.api.*")
    data = _poll_json(_http_url(dashboard, "Dashboard on") + "/api/metrics", lambda d: d["received"] >= 2)
    assert data["received"] == 2 and list(data["services"]) == ["api"]
    assert data["services"]["api"]["latency_ms"]["avg"] == 6.0


# --- Real-time chat backend (aio-pika + websockets) --------------------------------------

class ChatClient:
    """A websocket chat client in the test process; ``events`` are the JSON frames received."""

    def __init__(self, stack: contextlib.ExitStack, server: str, room: str, user: str):
        self.ws = stack.enter_context(ws_connect(f"{server}/rooms/{room}?user={user}", open_timeout=5))
        self.events: list[dict] = []

    def next(self) -> dict:
        self.events.append(json.loads(self.ws.recv(timeout=8)))
        return self.events[-1]

    def until(self, **fields) -> dict:
        """Receive events until one has all ``fields``; return it."""
        while True:
            event = self.next()
            if all(event.get(k) == v for k, v in fields.items()):
                return event


def test_chat_messages_cross_servers_within_a_room_only(apps):
    """Two chat servers share the 'chat' topic exchange: alice on s1 and bob on s2 in 'lobby' see each
    other's joins, messages and leave; carol in 'other' on s2 sees only her own room."""
    s1 = apps.start("chat/server.py", "--port", "0", "--name", "s1", "--timeout", "20")
    s2 = apps.start("chat/server.py", "--port", "0", "--name", "s2", "--timeout", "20")
    url1, url2 = _ws_url(s1), _ws_url(s2)
    stack = contextlib.ExitStack()
    with stack:
        _chat(stack, url1, url2, s1, s2)


def _chat(stack, url1, url2, s1, s2) -> None:
    alice = ChatClient(stack, url1, "lobby", "alice")
    assert alice.next() == {"type": "join", "room": "lobby", "user": "alice", "server": "s1"}
    bob = ChatClient(stack, url2, "lobby", "bob")
    assert bob.next() == {"type": "join", "room": "lobby", "user": "bob", "server": "s2"}
    assert alice.next() == {"type": "join", "room": "lobby", "user": "bob", "server": "s2"}
    carol = ChatClient(stack, url2, "other", "carol")
    assert carol.next()["user"] == "carol"

    alice.ws.send("hello bob")
    hello = {"type": "message", "room": "lobby", "user": "alice", "server": "s1", "text": "hello bob"}
    assert bob.next() == hello
    assert alice.next() == hello  # her own message, echoed through the exchange
    bob.ws.send("hi alice \u2603")
    assert alice.next() == {"type": "message", "room": "lobby", "user": "bob", "server": "s2",
                            "text": "hi alice \u2603"}
    carol.ws.send("anyone?")
    assert carol.next()["text"] == "anyone?"
    # Had anything from 'lobby' reached carol's queue it would have arrived before her own echo.
    assert [(e["type"], e["user"]) for e in carol.events] == [("join", "carol"), ("message", "carol")]

    bob.ws.close()
    assert alice.until(type="leave") == {"type": "leave", "room": "lobby", "user": "bob", "server": "s2"}
    s2.expect(" [-] bob left lobby")
    alice.ws.close()
    carol.ws.close()
    s1.expect(" [-] alice left lobby")
    assert " [+] alice joined lobby" in s1.output
    assert " [+] carol joined other" in s2.output


@pytest.mark.parametrize("path, reason", [
    ("/rooms/lobby.all?user=eve", "room and user: 1-32 letters, digits, '_' or '-'"),
    ("/rooms/lobby?user=%23", "room and user: 1-32 letters, digits, '_' or '-'"),
    ("/rooms/lobby", "room and user: 1-32 letters, digits, '_' or '-'"),
    ("/chat", "connect to /rooms/<room>?user=<name>"),
])
def test_chat_bad_room_or_user_is_refused_with_1008(apps, path, reason):
    """Names that would change the routing key ('.', '#') or are missing close the socket with 1008."""
    server = apps.start("chat/server.py", "--port", "0", "--timeout", "20")
    with ws_connect(_ws_url(server) + path, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, reason)


# --- Image-processing pipeline (resize -> watermark -> thumbnail) ------------------------

def _drain(channel, queue: str) -> list[tuple]:
    got = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((props, json.loads(body)))


def test_image_pipeline_runs_every_stage_and_parks_a_broken_image(apps, conn, tmp_path):
    """Three images go through resize, watermark and thumbnail workers (separate processes chained
    by queues); the store holds every stage's output with the right sizes; a file that is not an
    image ends in images.failed with the stage and the error."""
    from PIL import Image, ImageChops

    sources = {"wide": (1600, 1200), "tall": (300, 900), "small": (80, 60)}
    for name, size in sources.items():
        Image.new("RGB", size, (20, 120, 200)).save(tmp_path / f"{name}.png")
    (tmp_path / "broken.png").write_bytes(b"this is not a PNG")
    store = tmp_path / "store"
    env = {"IMAGE_STORE": str(store)}
    workers = [apps.consumer("image_pipeline/worker.py", "--max-messages", str(n), stage,
                             ready="Waiting for images", env=env)
               for stage, n in (("resize", 4), ("watermark", 3), ("thumbnail", 3))]
    out = apps.run("image_pipeline/ingest.py", *(str(tmp_path / f"{n}.png") for n in (*sources, "broken")),
                   env=env).stdout
    assert len(out.splitlines()) == 4
    for worker in workers:
        assert worker.finish() == 0, worker.text()

    channel = conn.channel()
    done = {job["job"]: job for _, job in _drain(channel, apps.name("images.done"))}
    assert set(done) == set(sources)
    expected = {"wide": ((512, 384), (96, 72)), "tall": ((171, 512), (32, 96)), "small": ((80, 60), (80, 60))}
    for name, (resized, thumb) in expected.items():
        job = done[name]
        assert [h["stage"] for h in job["history"]] == ["resize", "watermark", "thumbnail"]
        assert [h["in"] for h in job["history"]] == [f"incoming/{name}.png", f"resize/{name}.png",
                                                     f"watermark/{name}.png"]
        assert job["path"] == f"thumbnail/{name}.png"
        assert [tuple(h["size"]) for h in job["history"]] == [resized, resized, thumb]
        with Image.open(store / "resize" / f"{name}.png") as r, Image.open(store / "watermark" / f"{name}.png") as w, \
                Image.open(store / "thumbnail" / f"{name}.png") as t:
            assert (r.size, w.size, t.size) == (resized, resized, thumb)
            diff = ImageChops.difference(r.convert("RGB"), w.convert("RGB")).getbbox()
            # the watermark changed the bottom-right quarter and nothing else
            assert diff is not None and diff[0] >= resized[0] - resized[0] // 4 - 1
            assert diff[1] >= resized[1] - resized[1] // 4 - 1 and diff[2:] == resized
    ((props, failed),) = _drain(channel, apps.name("images.failed"))
    assert failed == {"job": "broken", "path": "incoming/broken.png", "history": []}
    assert props.headers["failed-stage"] == "resize"
    assert "cannot identify image file" in props.headers["error"]
    assert any(" [!] broken resize: FAILED (cannot identify image file" in line for line in workers[0].output)
    assert not (store / "resize" / "broken.png").exists()
    for q in IMAGE_QUEUES:
        assert _message_count(channel, apps.name(q)) == 0, q


# --- Stock prices: Celery beat schedules ticks, subscribers pick symbols by pattern ------

TICK = re.compile(r" \[x\] (\w+)\.(\w+) (\d+\.\d\d) \(#(\d+), key (\S+)\)$")


def test_stock_prices_beat_ticks_reach_only_the_matching_subscribers(apps):
    """Celery beat sends a publish_tick task per symbol every 0.2 s, a Celery worker runs them and
    publishes to the 'prices' topic exchange: 'stock.nasdaq.*' gets AAPL and MSFT only, 'stock.*.IBM'
    + 'stock.xetra.#' gets IBM and SAP only, each symbol's ticks in sequence from #1 (none lost)."""
    nasdaq, others = apps.consumers([("stock_prices/subscriber.py", "--max-messages", "6", "stock.nasdaq.*"),
                                     ("stock_prices/subscriber.py", "--max-messages", "6", "stock.*.IBM",
                                      "stock.xetra.#")], ready="Waiting for ticks")
    worker = apps.start("stock_prices/worker.py", "--timeout", "30", env={"TICK_INTERVAL": "0.2"})
    worker.expect("Beat sends a tick per symbol every 0.2 s")
    for subscriber in (nasdaq, others):
        assert subscriber.finish(timeout=20) == 0, subscriber.text()
    worker.stop()
    assert worker.proc.returncode == 0, worker.text()

    def ticks(subscriber) -> dict[str, list[int]]:
        seqs: dict[str, list[int]] = {}
        for line in subscriber.output:
            m = TICK.search(line)
            if m:
                market, symbol, price, seq, key = m.groups()
                assert key == f"stock.{market}.{symbol}" and float(price) > 0
                seqs.setdefault(f"{market}.{symbol}", []).append(int(seq))
        assert sum(map(len, seqs.values())) == 6
        return seqs

    for subscriber, symbols in ((nasdaq, {"nasdaq.AAPL", "nasdaq.MSFT"}), (others, {"nyse.IBM", "xetra.SAP"})):
        seqs = ticks(subscriber)
        assert set(seqs) == symbols, subscriber.text()
        for symbol, got in seqs.items():
            assert got == list(range(1, len(got) + 1)), (symbol, got)
    log = worker.text()
    for name in ("tick-nasdaq-AAPL", "tick-nasdaq-MSFT", "tick-nyse-IBM", "tick-xetra-SAP"):
        assert f"Scheduler: Sending due task {name} (stocks.publish_tick)" in log
    assert re.search(r"Task stocks\.publish_tick\[[0-9a-f-]{36}\] succeeded", log)


# --- Event-driven microservices: orders -> inventory -> notifier, all -> metrics dashboard

def test_microservices_orders_flow_through_inventory_and_notifier_to_the_dashboard(apps, tmp_path):
    """Four orders over HTTP: the inventory reserves three and rejects one (out of stock), the notifier
    writes a mail for each to its outbox, the order service follows every order to its end state from
    the events alone, and the metrics dashboard (examples/metrics_dashboard) counts all of it."""
    from email import message_from_bytes, policy

    outbox = tmp_path / "outbox"
    apps.consumers([("microservices/inventory.py", "--stock", "widget=3,gadget=1"),
                    ("microservices/notifier.py", "--outbox", str(outbox))], ready="waiting for events")
    dashboard = apps.start("metrics_dashboard/dashboard.py", "--port", "0", "--timeout", "20")
    orders = apps.start("microservices/orders.py", "--port", "0", "--timeout", "20")
    api = _http_url(orders, "orders API on") + "/orders"
    metrics_url = _http_url(dashboard, "Dashboard on") + "/api/metrics"

    placed = [("widget", 2, "alice"), ("gadget", 1, "bob"), ("widget", 2, "carol"), ("widget", 1, "dave")]
    ids = []
    for item, qty, who in placed:
        status, body = _post_json(api, {"item": item, "qty": qty, "email": f"{who}@example.com"})
        assert (status, body["status"]) == (202, "placed")
        ids.append(body["order"])
    assert ids == ["o-1", "o-2", "o-3", "o-4"]
    assert _post_json(api, {"item": "widget", "qty": 0, "email": "x@example.com"})[0] == 400
    assert _post_json(api, ["not", "an", "order"])[0] == 400

    everything = _poll_json(api, lambda os_: all(o["notified"] for o in os_) and len(os_) == 4)
    by_id = {o["order"]: o for o in everything}
    assert {i: (o["status"], o["notified"]) for i, o in by_id.items()} == {
        "o-1": ("confirmed", True), "o-2": ("confirmed", True), "o-3": ("rejected", True),
        "o-4": ("confirmed", True)}
    assert by_id["o-3"]["reason"] == "only 1 in stock"
    assert json.loads(_get(api + "/o-2")[1])["item"] == "gadget"

    mails = {p.name: message_from_bytes(p.read_bytes(), policy=policy.default) for p in outbox.iterdir()}
    assert set(mails) == {"o-1-confirmed.eml", "o-2-confirmed.eml", "o-3-rejected.eml", "o-4-confirmed.eml"}
    assert mails["o-1-confirmed.eml"]["To"] == "alice@example.com"
    assert mails["o-1-confirmed.eml"]["Subject"] == "Order o-1 confirmed"
    assert mails["o-3-rejected.eml"]["Subject"] == "Order o-3 could not be filled"
    assert "only 1 in stock" in mails["o-3-rejected.eml"].get_content()

    data = _poll_json(metrics_url, lambda d: d["services"].get("notifier", {}).get("sent", {}).get("count") == 4)
    counts = {(svc, m): s["count"] for svc, ms in data["services"].items() for m, s in ms.items()}
    assert counts == {("orders", "placed"): 4, ("inventory", "reserved"): 3, ("inventory", "rejected"): 1,
                      ("inventory", "stock_widget"): 2, ("inventory", "stock_gadget"): 1,
                      ("notifier", "sent"): 4}
    assert data["services"]["inventory"]["stock_widget"]["last"] == 0.0
    assert data["services"]["inventory"]["stock_gadget"]["last"] == 0.0
    assert data["rejected"] == 0
