"""The application examples, part 1 (examples/registration_email, notification_broadcast,
order_saga, invoice_queue, file_scan_rpc), run as programs.

As in tests/test_examples.py every program is a subprocess with AMQP_URL pointing at the broker
under test (LEVERET_TEST_URL, or the session's private ``leveret serve``) and EXAMPLE_PREFIX set
to the test's unique prefix; consumers are started first and publishing waits for their
"Waiting for" line. The stand-ins for outside services (an SMTP sink, a file store) are part
of the examples and write into the test's tmp_path, where the assertions look.
"""
from __future__ import annotations

import hashlib
import json
import mailbox
import re
import socket
import urllib.error
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker
from subprocs import Programs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Named resources the examples create; removed after every test.
QUEUES = ("registrations", "notifications.email", "notifications.sms", "notifications.log",
          "inventory", "inventory.retry", "payment", "payment.retry", "orders",
          "invoices", "invoices.dead", "scan.requests")
EXCHANGES = ("notifications", "shop.events")


@pytest.fixture
def apps(broker_url, uniq):
    with Programs(EXAMPLES, broker_url, uniq + ".", "EXAMPLE_", QUEUES, EXCHANGES) as programs:
        yield programs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _message_count(channel, name: str) -> int:
    return channel.queue_declare(name, passive=True).method.message_count


# --- 1. Welcome mail after registration (FastAPI + pika + SMTP sink) ---------------------

def _post(url: str, payload) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _mails(maildir: Path) -> dict[str, object]:
    """The mails in the sink's Maildir, by recipient."""
    box = mailbox.Maildir(maildir, create=False)
    mails = [message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.keys()]
    return {str(mail["To"]): mail for mail in mails}


@pytest.fixture
def registration(apps, tmp_path):
    """Start functions for the three programs, with the SMTP and HTTP ports of this test."""
    smtp_port, http_port = _free_port(), _free_port()
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)}
    maildir = tmp_path / "maildir"

    class Registration:
        base = f"http://127.0.0.1:{http_port}"
        mails = maildir

        @staticmethod
        def sink():
            return apps.consumer("registration_email/smtp_sink.py", "--maildir", str(maildir),
                                 ready="Waiting for mail", env=env)

        @staticmethod
        def worker(*args):
            return apps.consumer("registration_email/worker.py", *args,
                                 ready="Waiting for registrations", env=env)

        @staticmethod
        def app():
            app = apps.start("registration_email/app.py", "--port", str(http_port), env=env)
            app.expect("Uvicorn running on", timeout=20)
            return app

    return Registration


def test_registration_email_user_registered_over_http_gets_welcome_mail(registration, apps, conn):
    """POST /register answers 202 at once; the worker mails every new user through the SMTP sink."""
    sink = registration.sink()
    worker = registration.worker("--max-mails", "2")
    app = registration.app()
    users = [{"email": "alice@example.com", "name": "Alice"}, {"email": "bob@example.org", "name": "Bob"}]
    ids = {}
    for user in users:
        status, body = _post(registration.base + "/register", user)
        assert status == 202, body
        assert body["status"] == "welcome mail queued"
        ids[user["email"]] = body["user_id"]
    # Bad input is refused by the app and never reaches the queue.
    assert _post(registration.base + "/register", {"email": "alice@example.com", "name": "A"})[0] == 409
    assert _post(registration.base + "/register", {"email": "not-an-address", "name": "X"})[0] == 422
    assert _post(registration.base + "/register", {"email": "c@example.com"})[0] == 422

    assert worker.finish() == 0
    assert sorted(worker.received(" [x] Sent welcome mail to ")) == sorted(
        f"{u['email']} (user {ids[u['email']]})" for u in users)
    sink.expect("to bob@example.org")
    mails = _mails(registration.mails)
    assert sorted(mails) == ["alice@example.com", "bob@example.org"]
    for user in users:
        mail = mails[user["email"]]
        assert mail["From"] == "welcome@example.com"
        assert mail["Subject"] == f"Welcome to Leveret Shop, {user['name']}!"
        assert ids[user["email"]] in mail.get_content()
    assert _message_count(conn.channel(), apps.name("registrations")) == 0
    app.stop()
    assert app.text().count("welcome mail queued") == 2


def test_registration_email_mail_waits_in_the_queue_while_smtp_is_down(registration, apps, conn):
    """With the SMTP server down the worker requeues the mail; once the sink is up the mail is sent."""
    worker = registration.worker("--max-mails", "1")
    registration.app()
    status, body = _post(registration.base + "/register", {"email": "carol@example.net", "name": "Carol"})
    assert status == 202
    worker.expect("SMTP unavailable")
    worker.expect("mail to carol@example.net requeued")
    sink = registration.sink()
    assert worker.finish() == 0
    assert worker.received(" [x] Sent welcome mail to ") == [
        f"carol@example.net (user {body['user_id']}) (redelivered)"]
    sink.expect("to carol@example.net")
    assert list(_mails(registration.mails)) == ["carol@example.net"]
    assert _message_count(conn.channel(), apps.name("registrations")) == 0


# --- 2. Notification broadcaster (fanout to email / SMS / log services) -------------------

def _services(apps, outbox: Path, *args: str, kinds=("email", "sms", "log")):
    return apps.consumers([("notification_broadcast/service.py", "--kind", kind, "--outbox", str(outbox), *args)
                           for kind in kinds], ready="Waiting for notifications")


def test_notification_broadcast_every_service_gets_every_notification(apps, tmp_path):
    """Four notifications reach all three services, in order, each written in its own format."""
    email, sms, log = _services(apps, tmp_path, "--max-messages", "4")
    long_text = "Your invoice is ready. " * 10
    sent = [("alice", "Your order shipped"), ("bob", "Password changed"),
            ("alice", long_text), ("carol", "Welcome!")]
    out = apps.run("notification_broadcast/notify.py", *(f"{u}:{t}" for u, t in sent)).stdout
    assert out.splitlines() == [f" [x] Sent #{n} for {u}: {t}" for n, (u, t) in enumerate(sent, 1)]
    for service, kind in ((email, "email"), (sms, "sms"), (log, "log")):
        assert service.finish() == 0
        assert service.received(f" [{kind}] ") == [f"#{n} for {u}: {t}" for n, (u, t) in enumerate(sent, 1)]
    emails = (tmp_path / "email.txt").read_text().splitlines()
    assert emails[0] == "To: alice@example.com | Subject: Your order shipped | Your order shipped"
    assert [line.split(" | ")[0] for line in emails] == [
        "To: alice@example.com", "To: bob@example.com", "To: alice@example.com", "To: carol@example.com"]
    texts = (tmp_path / "sms.txt").read_text().splitlines()
    assert texts[1] == "bob: Password changed"
    assert len(texts[2]) == 160 and texts[2] == ("alice: " + long_text)[:157] + "..."
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == [{"id": n, "user": u, "text": t} for n, (u, t) in enumerate(sent, 1)]


def test_notification_broadcast_stopped_service_catches_up_from_its_durable_queue(apps, tmp_path, conn):
    """The SMS service is down while two notifications are sent: its queue keeps them until it is back."""
    (sms,) = _services(apps, tmp_path, kinds=("sms",))
    sms.stop()
    email, log = _services(apps, tmp_path, "--max-messages", "2", kinds=("email", "log"))
    apps.run("notification_broadcast/notify.py", "dave:first", "dave:second")
    assert email.finish() == 0 and log.finish() == 0
    assert _message_count(conn.channel(), apps.name("notifications.sms")) == 2
    (sms,) = _services(apps, tmp_path, "--max-messages", "2", kinds=("sms",))
    assert sms.finish() == 0
    assert sms.received(" [sms] ") == ["#1 for dave: first", "#2 for dave: second"]
    assert (tmp_path / "sms.txt").read_text().splitlines() == ["dave: first", "dave: second"]
    assert len((tmp_path / "email.txt").read_text().splitlines()) == 2


def test_notification_broadcast_without_any_service_the_notification_is_returned(apps):
    """No queue bound to the fanout: the mandatory publish comes back and notify.py exits 1."""
    done = apps.run("notification_broadcast/notify.py", "erin:hello", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f" [!] #1 returned: no service is subscribed to {apps.name('notifications')}"]
    bad = apps.run("notification_broadcast/notify.py", "no-colon", check=False)
    assert bad.returncode == 2 and "expected USER:TEXT" in bad.stderr


# --- 3. Order saga: inventory reservation, payment with retries, compensation -------------

def _saga(apps, tmp_path, *inventory_args: str, payment_args: tuple[str, ...] = ()):
    state = tmp_path / "inventory.json"
    inventory, payment = apps.consumers([
        ("order_saga/inventory.py", "--state", str(state), *inventory_args),
        ("order_saga/payment.py", *payment_args)], ready="Waiting for events")
    return inventory, payment, state


def _expect_all(program, texts: list[str]) -> None:
    """Wait until ``program`` printed every one of ``texts``, in any order."""
    for text in texts:
        if text not in program.text():
            program.expect(text)


def _final_states(orders) -> dict[str, list[str]]:
    history: dict[str, list[str]] = {}
    for line in orders.received(" [orders] "):
        order_id, status = line.split(": ", 1)
        history.setdefault(order_id, []).append(status)
    return history


def test_order_saga_payment_failure_is_compensated_and_transient_failures_retried(apps, tmp_path, conn):
    """Five orders at once: two confirmed (one after two gateway timeouts), one declined and
    compensated (its stock released), two rejected by the inventory; the stock adds up."""
    inventory, payment, state = _saga(apps, tmp_path, "--stock", "widget=10", "--stock", "gadget=1")
    orders = apps.consumer("order_saga/orders.py", "--max-orders", "5", ready="Waiting for events")
    apps.run("order_saga/place_order.py", "o1:widget:2:ok", "o2:widget:1:declined", "o3:widget:1:flaky:2",
             "o4:widget:50:ok", "o5:sprocket:1:ok")
    assert orders.finish() == 0
    history = _final_states(orders)
    assert re.fullmatch(r"REJECTED \(out of stock: [67] widget available, 50 ordered\)", history["o4"][1])
    assert history == {
        "o1": ["PLACED", "RESERVED", "CONFIRMED"],
        "o2": ["PLACED", "RESERVED", "COMPENSATING (card declined)", "CANCELLED (inventory released)"],
        "o3": ["PLACED", "RESERVED", "CONFIRMED"],
        # 6 or 7 available: o4 and o2's compensation race (both widget; o1 and o3 hold 3)
        "o4": ["PLACED", history["o4"][1]],
        "o5": ["PLACED", "REJECTED (unknown sku sprocket)"],
    }
    _expect_all(inventory, ["o1: sold 2 widget", "o3: sold 1 widget"])
    assert "o2: released 1 widget (compensation: card declined; available" in inventory.text()
    payments = ["o1 attempt 1: charged 20", "o2 attempt 1: FAILED (card declined)",
                "o3 attempt 1: gateway timeout -> retry in 100 ms",
                "o3 attempt 2: gateway timeout -> retry in 100 ms", "o3 attempt 3: charged 10"]
    _expect_all(payment, payments)
    payment.stop()
    assert sorted(payment.received(" [payment] ")) == sorted(payments)
    saved = json.loads(state.read_text())
    assert saved["stock"] == {"widget": {"available": 7, "reserved": 0, "sold": 3},
                              "gadget": {"available": 1, "reserved": 0, "sold": 0}}
    assert {k: v["status"] for k, v in saved["orders"].items()} == {
        "o1": "sold", "o2": "released", "o3": "sold", "o4": "rejected", "o5": "rejected"}
    channel = conn.channel()
    for queue in ("inventory", "inventory.retry", "payment", "payment.retry", "orders"):
        assert _message_count(channel, apps.name(queue)) == 0, queue


def test_order_saga_retries_run_out_then_the_saga_compensates(apps, tmp_path):
    """The inventory database fails once (retried); the payment gateway keeps timing out: after
    two retries the payment fails and the reservation is released."""
    inventory, payment, state = _saga(apps, tmp_path, "--stock", "widget=3", "--flaky-reservations", "1",
                                      payment_args=("--max-retries", "2"))
    orders = apps.consumer("order_saga/orders.py", "--max-orders", "1", ready="Waiting for events")
    apps.run("order_saga/place_order.py", "o9:widget:3:flaky:9")
    assert orders.finish() == 0
    assert _final_states(orders) == {"o9": [
        "PLACED", "RESERVED", "COMPENSATING (gateway timeout, gave up after 3 attempts)",
        "CANCELLED (inventory released)"]}
    inventory.expect("o9: released 3 widget")
    assert inventory.received(" [inventory] ")[:2] == [
        "o9: attempt 1: database unavailable -> retry in 100 ms", "o9: reserved 3 widget (available 0)"]
    payment.expect("o9 attempt 3: FAILED")
    payment.stop()
    assert payment.received(" [payment] ") == [
        "o9 attempt 1: gateway timeout -> retry in 100 ms", "o9 attempt 2: gateway timeout -> retry in 100 ms",
        "o9 attempt 3: FAILED (gateway timeout, gave up after 3 attempts)"]
    assert json.loads(state.read_text())["stock"] == {"widget": {"available": 3, "reserved": 0, "sold": 0}}
    # A duplicate of the order changes nothing: it was settled already.
    apps.run("order_saga/place_order.py", "o9:widget:3:ok")
    inventory.expect("o9: seen before (released), nothing changed")
    assert json.loads(state.read_text())["stock"]["widget"]["available"] == 3


# --- 4. PDF invoices: a work queue with error handling and a dead-letter queue ------------

def _invoice(number: str, *lines: tuple[str, int, str], **extra) -> str:
    return json.dumps({"invoice_no": number, "customer": "ACME Ltd",
                       "lines": [{"description": d, "qty": q, "unit_price": p} for d, q, p in lines], **extra})


def _dead_letters(channel, queue: str) -> list[tuple]:
    """Take every message of the dead-letter queue: (message_id, body, x-death, headers)."""
    found = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        found.append((props.message_id, body, props.headers.get("x-death"), props.headers))


def test_invoice_queue_good_jobs_become_pdfs_and_bad_ones_land_in_the_dlq(apps, tmp_path, conn):
    """Two good invoices become PDFs in the store; an invalid one, an unreadable one and one that
    crashes the renderer twice are dead-lettered with x-death {queue: invoices, reason: rejected}."""
    store = tmp_path / "store"
    renderer = apps.consumer("invoice_queue/renderer.py", "--store", str(store), "--max-jobs", "5",
                             ready="Waiting for invoice jobs")
    apps.run("invoice_queue/submit.py",
             _invoice("INV-001", ("Widget", 2, "9.95"), ("Gadget", 1, "10")),
             _invoice("INV-002", ("Consulting", 3, "120.50"), currency="USD"),
             _invoice("INV-003", ("Widget", -1, "9.95")),
             _invoice("INV-004", ("Widget", 1, "1"), simulate="crash"),
             "--raw", "this is not an invoice")
    assert renderer.finish() == 0
    jobs, dead = apps.name("invoices"), apps.name("invoices.dead")
    assert renderer.received(" [x] ") == [
        f"INV-001: 2 lines, total EUR 29.90 -> {store / 'INV-001.pdf'}",
        f"INV-002: 1 lines, total USD 361.50 -> {store / 'INV-002.pdf'}"]
    assert sorted(renderer.received(" [!] ")) == sorted([
        f"INV-003: invalid job (line 1: qty must be a positive integer) -> dead-lettered to {dead}",
        "INV-004: renderer crashed (RuntimeError: simulated crash) -> requeued for one more try",
        f"INV-004: renderer crashed (RuntimeError: simulated crash) again on redelivery -> dead-lettered to {dead}",
        f"raw: invalid job (not JSON: b'this is not an invoice') -> dead-lettered to {dead}"])
    assert sorted(path.name for path in store.iterdir()) == ["INV-001.pdf", "INV-002.pdf"]  # no temp files
    for number, total in (("INV-001", b"EUR 29.90"), ("INV-002", b"USD 361.50")):
        pdf = (store / f"{number}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
        assert f"/Title (Invoice {number})".encode() in pdf and b"/Subject (Total " + total + b")" in pdf

    # dead_letters.py lists them and leaves them where they are.
    listing = apps.run("invoice_queue/dead_letters.py").stdout.splitlines()
    assert listing[-1] == f" [=] 3 dead letter(s) in {dead}"
    assert sorted(line.split(":")[0] for line in listing[:-1]) == [" [dead] INV-003", " [dead] INV-004", " [dead] raw"]
    assert all(f"rejected from {jobs} (count 1, at " in line for line in listing[:-1])
    channel = conn.channel()
    assert _message_count(channel, jobs) == 0
    letters = _dead_letters(channel, dead)
    assert sorted(m for m, *_ in letters) == ["INV-003", "INV-004", "raw"]
    for message_id, body, deaths, headers in letters:
        assert [(d["queue"], d["reason"], d["count"], d["exchange"], d["routing-keys"]) for d in deaths] == [
            (jobs, "rejected", 1, "", [jobs])]
        assert headers["x-first-death-queue"] == jobs and headers["x-first-death-reason"] == "rejected"
    assert {m: b for m, b, *_ in letters}["raw"] == b"this is not an invoice"


def test_invoice_queue_dead_letters_replayed_after_the_fix_are_rendered(apps, tmp_path, conn):
    """A GBP invoice is refused by a renderer that knows EUR only; replayed once the renderer
    accepts GBP, it becomes a PDF and the dead-letter queue is empty."""
    store = tmp_path / "store"
    renderer = apps.consumer("invoice_queue/renderer.py", "--store", str(store), "--currencies", "EUR",
                             "--max-jobs", "1", ready="Waiting for invoice jobs")
    apps.run("invoice_queue/submit.py", _invoice("INV-100", ("Tea", 4, "2.25"), currency="GBP"))
    assert renderer.finish() == 0
    assert renderer.received(" [!] ") == [
        f"INV-100: invalid job (currency 'GBP' is not one of EUR) -> dead-lettered to {apps.name('invoices.dead')}"]
    assert not store.exists() or not list(store.iterdir())
    renderer = apps.consumer("invoice_queue/renderer.py", "--store", str(store), "--currencies", "EUR,GBP",
                             "--max-jobs", "1", ready="Waiting for invoice jobs")
    replay = apps.run("invoice_queue/dead_letters.py", "--replay").stdout.splitlines()
    assert replay[1:] == [f" [>] INV-100: replayed to {apps.name('invoices')}",
                          f" [=] 1 dead letter(s) in {apps.name('invoices.dead')}, replayed"]
    assert renderer.finish() == 0
    assert renderer.received(" [x] ") == [f"INV-100: 1 lines, total GBP 9.00 -> {store / 'INV-100.pdf'}"]
    assert (store / "INV-100.pdf").read_bytes().startswith(b"%PDF-")
    channel = conn.channel()
    assert _message_count(channel, apps.name("invoices.dead")) == 0
    assert _message_count(channel, apps.name("invoices")) == 0


# --- 5. File-scan RPC with exclusive callback queues --------------------------------------

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SCAN_REPLY = re.compile(r" \[\.\] (\S+): (.+?) \((?:sha256 (\w+), )?(\d+) bytes, corr (\S+)\)$")
SCANNED = re.compile(r" \[\.\] scanned (\S+) \((\d+) bytes\) for (\S+) corr (\S+): (.+)$")


def _files(directory: Path, contents: dict[str, bytes]) -> list[str]:
    directory.mkdir()
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return [str(directory / name) for name in contents]


def _callback_queue(program) -> str:
    line = next(line for line in program.output if line.startswith(" [*] callback queue "))
    return line.split("callback queue ", 1)[1]


def _queue_exists(broker_url: str, name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return False
    finally:
        connection.close()


def test_file_scan_rpc_concurrent_clients_get_their_own_verdicts(apps, tmp_path):
    """Two clients scan three files each at once through two slow scanners: every verdict reaches
    the client that asked, on its own amq.gen- callback queue, which is gone once it exits."""
    scanners = apps.consumers([("file_scan_rpc/scanner.py", "--delay-ms", "150")] * 2,
                              ready="Waiting for scan requests")
    contents = {
        "a": {"report.txt": b"quarterly numbers\n", "eicar.com": EICAR, "photo.bin": bytes(range(256)) * 8},
        "b": {"notes.md": b"# notes\n", "setup.exe": b"MZ" + EICAR + b"\0" * 10, "empty.dat": b""},
    }
    clients = {key: apps.start("file_scan_rpc/client.py", "--timeout", "10", *_files(tmp_path / key, files))
               for key, files in contents.items()}
    callback = {}
    for key, client in clients.items():
        assert client.finish(timeout=15) == 0, client.text()
        callback[key] = _callback_queue(client)
        assert callback[key].startswith("amq.gen-")
        replies = {m.group(1): m.groups()[1:] for m in map(SCAN_REPLY.search, client.output) if m}
        assert set(replies) == set(contents[key])
        for name, data in contents[key].items():
            verdict, sha, size, _ = replies[name]
            assert verdict == ("infected: EICAR-Test-File" if EICAR in data else "clean"), name
            assert (sha, int(size)) == (hashlib.sha256(data).hexdigest(), len(data))
        assert not [line for line in client.output if "[?]" in line]
        assert client.output[-1] == " [=] 3 of 3 files scanned, 1 infected"
    assert callback["a"] != callback["b"]
    for scanner in scanners:
        scanner.stop()
    served = [m.groups() for s in scanners for m in map(SCANNED.search, s.output) if m]
    assert sorted((name, reply_to) for name, _, reply_to, _, _ in served) == sorted(
        (name, callback[key]) for key, files in contents.items() for name in files)
    assert all(any(SCANNED.search(line) for line in s.output) for s in scanners)  # both took work
    # Exclusive callback queues are deleted with their connection.
    for queue in callback.values():
        assert not _queue_exists(apps.broker_url, queue)


def test_file_scan_rpc_oversized_file_gets_an_error_reply(apps, tmp_path):
    """A file over the scanner's --max-bytes is answered with an error verdict; the client exits 1."""
    apps.consumer("file_scan_rpc/scanner.py", "--max-bytes", "1000", ready="Waiting for scan requests")
    paths = _files(tmp_path / "f", {"small.txt": b"x" * 1000, "big.iso": b"x" * 1001})
    done = apps.run("file_scan_rpc/client.py", "--timeout", "10", *paths, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(" [.] small.txt: clean (sha256 ") for line in lines)
    assert any(line.startswith(" [.] big.iso: error: file too large (1001 bytes, the limit is 1000) (1001 bytes")
               for line in lines), lines
    assert lines[-1] == " [=] 1 of 2 files scanned, 0 infected"


def test_file_scan_rpc_without_scanner_the_request_is_returned(apps, tmp_path):
    """No scanner ever declared 'scan.requests': the mandatory request comes back as 312 NO_ROUTE."""
    paths = _files(tmp_path / "f", {"a.txt": b"a"})
    done = apps.run("file_scan_rpc/client.py", "--timeout", "5", *paths, check=False)
    assert done.returncode == 1
    assert " [!] a.txt: request returned, 312 NO_ROUTE (is a scanner running?)" in done.stdout.splitlines()
    missing = apps.run("file_scan_rpc/client.py", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
