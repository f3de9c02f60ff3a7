#!/usr/bin/env python
"""Submit invoice jobs: each argument is a JSON invoice, or @FILE to read one from a file.

  {"invoice_no": "INV-001", "customer": "ACME Ltd", "currency": "EUR",
   "lines": [{"description": "Widget", "qty": 2, "unit_price": "9.95"}]}

Jobs are published as persistent messages with publisher confirms (the program returns once
the broker has them). ``--raw TEXT`` sends TEXT as it is, to see what the renderer does with a
job it cannot read.

Usage: submit.py [--url URL] [--prefix P] [--raw TEXT ...] [JSON | @FILE ...]
"""
import json
import sys
from pathlib import Path

import pika

from common import declare, parser


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--raw", action="append", default=[], help="send this text unchanged (a bad job)")
    p.add_argument("jobs", nargs="*", metavar="JSON|@FILE")
    args = p.parse_args()
    bodies = []
    for arg in args.jobs:
        text = Path(arg[1:]).read_text() if arg.startswith("@") else arg
        try:
            job = json.loads(text)
        except ValueError as exc:
            p.error(f"not JSON ({exc}): {arg[:60]!r} (use --raw to send it anyway)")
        bodies.append((json.dumps(job).encode(), str(job.get("invoice_no", "?")) if isinstance(job, dict) else "?"))
    bodies += [(raw.encode(), "raw") for raw in args.raw]
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    try:
        channel = connection.channel()
        jobs, _ = declare(channel, args.prefix)
        channel.confirm_delivery()
        for body, name in bodies:
            channel.basic_publish("", jobs, body, pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=name), mandatory=True)
            print(f" [x] Submitted {name} ({len(body)} bytes)", flush=True)
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
