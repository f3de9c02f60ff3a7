#!/usr/bin/env python
"""A fake SMTP server: accepts every mail and stores it in a Maildir instead of sending it.

It stands in for the mail provider, so the example needs no external service. Built on
aiosmtpd (the asyncio SMTP server of the aio-libs project). Every accepted mail is written
to ``--maildir`` (a standard Maildir: ``new/`` holds one RFC 5322 file per mail) and printed:

  [x] Mail from welcome@example.com to alice@example.com: Welcome to Leveret Shop, Alice!

Usage: smtp_sink.py [--smtp-host 127.0.0.1] [--smtp-port 8025] [--maildir ./maildir] [--timeout S]
"""
import mailbox
import sys
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

from common import parser


class MaildirSink:
    """aiosmtpd handler: every DATA command ends here."""

    def __init__(self, path: str):
        self.maildir = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.maildir.add(envelope.content)
        print(f" [x] Mail from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}: "
              f"{message['Subject']}", flush=True)
        return "250 Message accepted for delivery"


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--maildir", default="maildir")
    p.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    args = p.parse_args()
    controller = Controller(MaildirSink(args.maildir), hostname=args.smtp_host, port=args.smtp_port)
    controller.start()
    print(f" [*] Waiting for mail on {args.smtp_host}:{args.smtp_port} (Maildir {args.maildir})", flush=True)
    try:
        threading.Event().wait(args.timeout)
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
