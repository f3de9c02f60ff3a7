#!/usr/bin/env python
"""The mail worker: consumes 'registrations' and sends each user a welcome mail over SMTP.

A message is acked only after the SMTP server accepted the mail, so nothing is lost:

* SMTP server unreachable, or a 4xx (temporary) answer: the message is nacked with requeue
  after a short pause and tried again (the broker sets ``redelivered``);
* a 5xx (permanent) answer or a message that is not a registration: rejected without requeue
  (the queue has no dead-letter exchange here, so it is dropped, and the reason printed).

Output:

  [x] Sent welcome mail to alice@example.com (user 5f0c...)
  [!] SMTP unavailable ([Errno 111] Connection refused): mail to bob@example.com requeued

Usage: worker.py [--url URL] [--prefix P] [--smtp-host H] [--smtp-port P] [--max-mails N] [--timeout S]
"""
import json
import smtplib
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pika

from common import QUEUE, parser

SENDER = "welcome@example.com"
RETRY_PAUSE = 0.5  # seconds before a mail that could not be sent is put back


def welcome_mail(user: dict) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = user["email"]
    mail["Subject"] = f"Welcome to Leveret Shop, {user['name']}!"
    mail["Message-ID"] = make_msgid(idstring=user["user_id"], domain="example.com")
    mail.set_content(f"Hello {user['name']},\n\nthank you for registering (user id {user['user_id']}).\n")
    return mail


def is_permanent(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--max-mails", type=int, default=None, help="exit after sending this many mails")
    p.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    args = p.parse_args()
    queue = args.prefix + QUEUE
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.basic_qos(prefetch_count=1)
    sent = 0

    def on_message(ch, method, properties, body):
        nonlocal sent
        try:
            user = json.loads(body)
            mail = welcome_mail(user)
        except (ValueError, KeyError, TypeError) as exc:
            print(f" [!] not a registration ({exc!r}): {body[:60]!r} dropped", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        try:
            with smtplib.SMTP(args.smtp_host, args.smtp_port, timeout=10) as smtp:
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            if is_permanent(exc):
                print(f" [!] SMTP refused the mail to {user['email']} ({exc}): dropped", flush=True)
                ch.basic_reject(method.delivery_tag, requeue=False)
            else:
                print(f" [!] SMTP unavailable ({exc}): mail to {user['email']} requeued", flush=True)
                time.sleep(RETRY_PAUSE)
                ch.basic_nack(method.delivery_tag, requeue=True)
            return
        ch.basic_ack(method.delivery_tag)
        sent += 1
        again = " (redelivered)" if method.redelivered else ""
        print(f" [x] Sent welcome mail to {user['email']} (user {user['user_id']}){again}", flush=True)
        if args.max_mails is not None and sent >= args.max_mails:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    print(f" [*] Waiting for registrations on {queue} (SMTP {args.smtp_host}:{args.smtp_port})", flush=True)
    if args.timeout is not None:
        connection.call_later(args.timeout, channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
