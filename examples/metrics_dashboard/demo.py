"""Demo: the dashboard starts (HTTP on a free port), two services publish samples to the
'metrics' topic exchange, and /api/metrics shows the running statistics.
Run it with ``python examples/run.py metrics_dashboard [--url URL]``."""
import re

QUEUES = ("metrics.dashboard",)
EXCHANGES = ("metrics",)


def demo(d):
    dashboard = d.start("dashboard.py", "--port", "0", "--timeout", "60")
    base = re.search(r"(http://[\d.]+:\d+)", dashboard.expect("Dashboard on")).group(1)
    d.run("service.py", "--service", "api", "--metric", "latency_ms=12,18,30", "--metric", "errors=0,0,1",
          label="api")
    d.run("service.py", "--service", "billing", "--metric", "invoices=4,6", label="billing")
    data = d.poll(base + "/api/metrics", lambda m: m["received"] >= 8)
    for service, metrics in data["services"].items():
        for metric, stats in metrics.items():
            d.say(f"{service}.{metric}: count {stats['count']}, avg {stats['avg']:g}, max {stats['max']:g}")
