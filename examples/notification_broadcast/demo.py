"""Demo: the email, SMS and log services each bind their own queue to the fanout exchange; two
notifications published once reach all three.
Run it with ``python examples/run.py notification_broadcast [--url URL]``."""
QUEUES = ("notifications.email", "notifications.sms", "notifications.log")
EXCHANGES = ("notifications",)


def demo(d):
    services = [d.start("service.py", "--kind", kind, "--outbox", str(d.tmp), "--max-messages", "2",
                        ready="Waiting for notifications", label=kind) for kind in ("email", "sms", "log")]
    d.run("notify.py", "alice:Your order shipped", "bob:Password changed")
    for service in services:
        service.finish()
    for name in ("email.txt", "sms.txt", "log.jsonl"):
        d.say(f"{name}: " + " / ".join((d.tmp / name).read_text().splitlines()))
