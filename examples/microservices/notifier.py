#!/usr/bin/env python
"""The notification service: mail the customer when an order is confirmed or rejected.

Consumes 'stock.reserved' and 'stock.rejected' (queue 'notifications') and "sends" an e-mail
by writing it to the outbox directory (``--outbox``, default ./outbox): the stand-in for an
SMTP server, one RFC 5322 file ``<order>-<kind>.eml`` per mail, written atomically (temp file,
then rename). Then publishes 'notification.sent' and reports ``sent`` to the metrics exchange.

  [>] o-1: confirmed mail to alice@example.com -> outbox/o-1-confirmed.eml

Usage: notifier.py [--url URL] [--prefix P] [--outbox DIR] [--timeout S]
"""
import argparse
import os
import sys
from email.message import EmailMessage
from pathlib import Path

from shop import Service, add_options


def compose(kind: str, event: dict) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "shop@example.com"
    mail["To"] = event.get("email") or "unknown@example.com"
    mail["X-Order"] = str(event.get("order"))
    if kind == "confirmed":
        mail["Subject"] = f"Order {event.get('order')} confirmed"
        mail.set_content(f"{event.get('qty')} x {event.get('item')} are reserved for you.\n")
    else:
        mail["Subject"] = f"Order {event.get('order')} could not be filled"
        mail.set_content(f"Sorry: {event.get('qty')} x {event.get('item')}: {event.get('reason')}.\n")
    return mail


def main() -> int:
    parser = add_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--outbox", type=Path, default=Path("outbox"))
    args = parser.parse_args()
    args.outbox.mkdir(parents=True, exist_ok=True)
    service = Service(args, "notifier", "notifications", ("stock.reserved", "stock.rejected"))

    def on_event(key: str, event: dict) -> None:
        kind = "confirmed" if key == "stock.reserved" else "rejected"
        order_id = str(event.get("order", "unknown"))
        mail = compose(kind, event)
        path = args.outbox / f"{order_id}-{kind}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(mail))
        os.replace(tmp, path)
        service.emit("notification.sent", {"order": order_id, "kind": kind, "file": path.name}, order_id)
        service.report("sent", 1)
        print(f" [>] {order_id}: {kind} mail to {mail['To']} -> {path}", flush=True)

    service.run(on_event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
