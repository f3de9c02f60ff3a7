#!/usr/bin/env python
"""The invoice renderer: a competing consumer of 'invoices' that writes one PDF per job.

For each job it validates the invoice, renders it with fpdf2 and writes ``<store>/<invoice_no>.pdf``
(to a temporary name first, then renamed, so the store never holds half a file), and only
then acks. Errors are told apart:

* a bad job (not JSON, a missing or malformed field, a currency not in ``--currencies``):
  retrying cannot help, so it is rejected with requeue=False and the queue's dead-letter
  settings move it to ``invoices.dead``, where the broker adds the ``x-death`` header
  ``{queue: invoices, reason: rejected, count: 1, ...}``;
* an unexpected error while rendering (here ``"simulate": "crash"``): the first time the job is
  nacked with requeue, in case it was passing; if it fails again on the redelivery
  (``redelivered`` is set) it is rejected into the dead-letter queue too, so one poison job
  cannot loop forever.

Output, one line per outcome:

  [x] INV-001: 2 lines, total EUR 29.85 -> store/INV-001.pdf
  [!] INV-003: invalid job (line 1: qty must be a positive integer) -> dead-lettered to invoices.dead
  [!] INV-004: renderer crashed (RuntimeError: simulated crash) -> requeued for one more try

Usage: renderer.py [--url URL] [--prefix P] [--store ./store] [--currencies EUR,USD]
                   [--max-jobs N] [--timeout S]
"""
import json
import os
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pika
from fpdf import FPDF

from common import declare, parser

INVOICE_NO = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")  # also a safe file name


class InvalidJob(Exception):
    pass


def validate(job, currencies: set[str]) -> dict:
    """The invoice with Decimal prices and a total, or InvalidJob with the reason."""
    if not isinstance(job, dict):
        raise InvalidJob("not a JSON object")
    number = job.get("invoice_no")
    if not isinstance(number, str) or not INVOICE_NO.fullmatch(number):
        raise InvalidJob("invoice_no must be 1-32 of A-Z, 0-9 and '-'")
    customer = job.get("customer")
    if not isinstance(customer, str) or not customer.strip():
        raise InvalidJob("customer is missing")
    currency = job.get("currency", "EUR")
    if currency not in currencies:
        raise InvalidJob(f"currency {currency!r} is not one of {','.join(sorted(currencies))}")
    lines = job.get("lines")
    if not isinstance(lines, list) or not lines:
        raise InvalidJob("lines must be a non-empty list")
    items = []
    for n, line in enumerate(lines, 1):
        if not isinstance(line, dict) or not isinstance(line.get("description"), str):
            raise InvalidJob(f"line {n}: description is missing")
        qty = line.get("qty")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise InvalidJob(f"line {n}: qty must be a positive integer")
        try:
            price = Decimal(str(line.get("unit_price")))
        except InvalidOperation:
            raise InvalidJob(f"line {n}: unit_price is not a number") from None
        if not price.is_finite() or price < 0:
            raise InvalidJob(f"line {n}: unit_price must be >= 0")
        items.append((line["description"], qty, price))
    total = sum((qty * price for _, qty, price in items), Decimal(0)).quantize(Decimal("0.01"))
    return {"invoice_no": number, "customer": customer, "currency": currency, "items": items,
            "total": total, "simulate": job.get("simulate")}


def render(invoice: dict) -> bytes:
    if invoice["simulate"] == "crash":
        raise RuntimeError("simulated crash")
    pdf = FPDF()
    pdf.set_title(f"Invoice {invoice['invoice_no']}")
    pdf.set_subject(f"Total {invoice['currency']} {invoice['total']}")
    pdf.add_page()
    pdf.set_font("Helvetica", size=16)
    pdf.cell(text=f"Invoice {invoice['invoice_no']}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.cell(text=f"Customer: {invoice['customer']}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln()
    with pdf.table(text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT")) as table:
        for row in [("Description", "Qty", "Unit price", "Amount"),
                    *((d, str(q), f"{p:.2f}", f"{q * p:.2f}") for d, q, p in invoice["items"]),
                    ("Total", "", invoice["currency"], f"{invoice['total']}")]:
            cells = table.row()
            for value in row:
                cells.cell(value)
    return bytes(pdf.output())


def store_file(store: Path, name: str, data: bytes) -> Path:
    target = store / name
    tmp = store / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)  # atomic: readers see the whole file or none
    return target


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--store", default="store", help="directory for the PDFs (default ./store)")
    p.add_argument("--currencies", default="EUR,USD")
    p.add_argument("--max-jobs", type=int, default=None, help="exit after this many jobs were done or dead-lettered")
    p.add_argument("--timeout", type=float, default=None)
    args = p.parse_args()
    store = Path(args.store)
    store.mkdir(parents=True, exist_ok=True)
    currencies = set(filter(None, args.currencies.split(",")))

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    jobs, dead = declare(channel, args.prefix)
    channel.basic_qos(prefetch_count=1)  # fair dispatch between several renderers
    finished = 0

    def on_message(ch, method, properties, body):
        nonlocal finished
        name = properties.message_id or "?"
        try:
            try:
                job = json.loads(body)
            except ValueError:
                raise InvalidJob(f"not JSON: {body[:40]!r}") from None
            invoice = validate(job, currencies)
        except InvalidJob as exc:  # retrying cannot help
            ch.basic_reject(method.delivery_tag, requeue=False)
            print(f" [!] {name}: invalid job ({exc}) -> dead-lettered to {dead}", flush=True)
        else:
            name = invoice["invoice_no"]
            try:
                path = store_file(store, f"{name}.pdf", render(invoice))
            except Exception as exc:  # anything else: retry once, then give up on the job
                what = f"renderer crashed ({type(exc).__name__}: {exc})"
                if not method.redelivered:
                    ch.basic_nack(method.delivery_tag, requeue=True)
                    print(f" [!] {name}: {what} -> requeued for one more try", flush=True)
                    return
                ch.basic_reject(method.delivery_tag, requeue=False)
                print(f" [!] {name}: {what} again on redelivery -> dead-lettered to {dead}", flush=True)
            else:
                ch.basic_ack(method.delivery_tag)
                print(f" [x] {name}: {len(invoice['items'])} lines, total {invoice['currency']} "
                      f"{invoice['total']} -> {path}", flush=True)
        finished += 1
        if args.max_jobs is not None and finished >= args.max_jobs:
            ch.stop_consuming()

    channel.basic_consume(jobs, on_message)
    print(f" [*] Waiting for invoice jobs on {jobs} (store {store}, dead letters to {dead})", flush=True)
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
