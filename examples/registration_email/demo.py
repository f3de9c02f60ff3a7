"""Demo: the SMTP sink, the worker and the FastAPI app start; two users register over HTTP
(a third request, a known address, is refused with 409); the worker mails both through the sink.
Run it with ``python examples/run.py registration_email [--url URL]``."""
QUEUES = ("registrations",)
EXCHANGES = ()


def demo(d):
    smtp_port, http_port = d.free_port(), d.free_port()
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)}
    sink = d.start("smtp_sink.py", "--maildir", str(d.tmp / "maildir"), ready="Waiting for mail", env=env)
    worker = d.start("worker.py", "--max-mails", "2", ready="Waiting for registrations", env=env)
    app = d.start("app.py", "--port", str(http_port), env=env)
    app.expect("Uvicorn running on", timeout=30)
    register = f"http://127.0.0.1:{http_port}/register"
    for user in ({"email": "alice@example.com", "name": "Alice"}, {"email": "bob@example.org", "name": "Bob"},
                 {"email": "alice@example.com", "name": "Alice again"}):
        d.http("POST", register, user)
    worker.finish()
    sink.expect("to bob@example.org")
