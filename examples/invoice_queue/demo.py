"""Demo: two good invoices become PDFs; an invalid one and one that crashes the renderer twice
are dead-lettered to invoices.dead, which dead_letters.py then lists with their x-death.
Run it with ``python examples/run.py invoice_queue [--url URL]``."""
import json

QUEUES = ("invoices", "invoices.dead")
EXCHANGES = ()


def invoice(number, qty, **extra):
    return json.dumps({"invoice_no": number, "customer": "ACME Ltd",
                       "lines": [{"description": "Widget", "qty": qty, "unit_price": "9.95"}], **extra})


def demo(d):
    renderer = d.start("renderer.py", "--store", str(d.tmp / "store"), "--max-jobs", "4",
                       ready="Waiting for invoice jobs")
    d.run("submit.py", invoice("INV-001", 2), invoice("INV-002", 5, currency="USD"),
          invoice("INV-003", -1), invoice("INV-004", 1, simulate="crash"))
    renderer.finish()
    d.run("dead_letters.py")
