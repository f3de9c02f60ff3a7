"""Demo: Celery beat schedules a price tick per symbol every 0.5 s, a Celery worker publishes
them to the 'prices' topic exchange; one subscriber follows 'stock.nasdaq.*', another
'stock.*.IBM' and 'stock.xetra.#', and each gets only its symbols.
Run it with ``python examples/run.py stock_prices [--url URL]`` (needs celery)."""
import re

QUEUES = ("stock.ticks",)
EXCHANGES = ("prices", "stock.ticks")


def demo(d):
    subscribers = [
        d.start("subscriber.py", "--max-messages", "4", "stock.nasdaq.*", ready="Waiting for ticks", label="nasdaq"),
        d.start("subscriber.py", "--max-messages", "4", "stock.*.IBM", "stock.xetra.#", ready="Waiting for ticks",
                label="ibm+xetra")]
    worker = d.start("worker.py", "--timeout", "60", env={"TICK_INTERVAL": "0.5"})
    worker.expect("Beat sends a tick per symbol every 0.5 s", timeout=40)
    for subscriber in subscribers:
        subscriber.finish(timeout=40)
    got = {s.label: sorted({m.group(1) for m in map(re.compile(r" \[x\] (\S+) ").search, s.output) if m})
           for s in subscribers}
    d.say(f"symbols received: {got}")
