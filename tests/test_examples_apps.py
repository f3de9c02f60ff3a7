"""The application examples, part 1 (examples/registration_email, notification_broadcast,
order_saga, invoice_queue, file_scan_rpc), run as programs.

As in tests/test_examples.py every program is a subprocess with AMQP_URL pointing at the broker
under test (LEVERET_TEST_URL, or the session's private ``leveret serve``) and EXAMPLE_PREFIX set
to the test's unique prefix; consumers are started first and publishing waits for their
"Waiting for" line. The stand-ins for outside services (an SMTP sink, a file store) are part
of the examples and write into the test's tmp_path, where the assertions look.
"""
from __future__ import annotations

import json
import mailbox
import socket
import urllib.error
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from subprocs import Programs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Named resources the examples create; removed after every test.
QUEUES = ("registrations",)
EXCHANGES = ()


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
