"""Demo: the orders API, the inventory and the notifier, plus the metrics dashboard of
examples/metrics_dashboard; three orders are placed over HTTP, the inventory confirms two and
rejects one (out of stock), the notifier writes a mail for each, the dashboard counts it all.
Run it with ``python examples/run.py microservices [--url URL]``."""
import re

QUEUES = ("orders.updates", "inventory.orders", "notifications", "metrics.dashboard")
EXCHANGES = ("shop", "metrics")


def demo(d):
    d.start("inventory.py", "--stock", "widget=3,gadget=1", ready="waiting for events")
    d.start("notifier.py", "--outbox", str(d.tmp / "outbox"), ready="waiting for events")
    dashboard = d.start("../metrics_dashboard/dashboard.py", "--port", "0", "--timeout", "60")
    orders = d.start("orders.py", "--port", "0", "--timeout", "60")
    api = re.search(r"(http://[\d.]+:\d+)", orders.expect("orders API on")).group(1) + "/orders"
    metrics = re.search(r"(http://[\d.]+:\d+)", dashboard.expect("Dashboard on")).group(1) + "/api/metrics"
    for item, qty, who in (("widget", 2, "alice"), ("gadget", 1, "bob"), ("widget", 2, "carol")):
        d.http("POST", api, {"item": item, "qty": qty, "email": f"{who}@example.com"})
    final = d.poll(api, lambda found: len(found) == 3 and all(o["notified"] for o in found))
    for order in final:
        d.say(f"{order['order']}: {order['status']} {order.get('reason', '')}".rstrip())
    d.say("outbox: " + ", ".join(sorted(p.name for p in (d.tmp / "outbox").iterdir())))
    data = d.poll(metrics, lambda m: m["services"].get("notifier", {}).get("sent", {}).get("count") == 3)
    d.say("dashboard counts: " + ", ".join(f"{service}.{metric}={stats['count']}"
                                          for service, ms in data["services"].items() for metric, stats in ms.items()))
