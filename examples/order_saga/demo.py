"""Demo: three orders through the saga: o1 is confirmed, o2's card is declined so its stock
reservation is released (compensation), o3's payment gateway times out twice, is retried and
confirmed. Run it with ``python examples/run.py order_saga [--url URL]``."""
QUEUES = ("inventory", "inventory.retry", "payment", "payment.retry", "orders")
EXCHANGES = ("shop.events",)


def demo(d):
    d.start("inventory.py", "--state", str(d.tmp / "inventory.json"), "--stock", "widget=10",
            ready="Waiting for events")
    d.start("payment.py", ready="Waiting for events")
    orders = d.start("orders.py", "--max-orders", "3", ready="Waiting for events")
    d.run("place_order.py", "o1:widget:2:ok", "o2:widget:1:declined", "o3:widget:1:flaky:2")
    orders.finish()
