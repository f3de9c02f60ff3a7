#!/usr/bin/env python
"""The inventory service: reserves stock for placed orders, and releases it when the saga compensates.

  order.placed       -> enough stock: reserve it, emit inventory.reserved
                        not enough / unknown SKU: emit inventory.rejected (with the reason)
                        "database unavailable" (simulated, --flaky-reservations): retry later
  payment.failed     -> compensation: release the reservation, emit inventory.released
  payment.succeeded  -> the reserved units are sold

Stock and reservations live in a JSON file (``--state``, written atomically after every change,
read back at start), keyed by order id, so a redelivered or duplicated event changes nothing
twice: a second order.placed for a reserved order re-announces inventory.reserved, a second
payment.failed releases nothing.

Output: `` [inventory] o1: reserved 2 widget (available 8)``, ``... released 1 widget (compensation: card
declined; available 9)``, ``... sold 2 widget``, ``... rejected (out of stock: ...)``.

Usage: inventory.py [--url URL] [--prefix P] [--stock SKU=N ...] [--state inventory.json]
                    [--flaky-reservations N] [--max-retries 3] [--timeout S]
"""
import json
import os
import sys
from pathlib import Path

from saga import RETRY_DELAY_MS, Service, attempt, parser


class Inventory:
    def __init__(self, path: Path, initial: dict[str, int]):
        self.path = path
        state = json.loads(path.read_text()) if path.exists() else {"stock": {}, "orders": {}}
        self.stock: dict[str, dict] = state["stock"]
        self.orders: dict[str, dict] = state["orders"]  # order id -> {sku, qty, status}
        for sku, units in initial.items():
            self.stock.setdefault(sku, {"available": units, "reserved": 0, "sold": 0})
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stock": self.stock, "orders": self.orders}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def parse_stock(specs: list[str]) -> dict[str, int]:
    stock = {}
    for spec in specs:
        sku, _, units = spec.partition("=")
        if not sku or not units.isdigit():
            raise SystemExit(f"--stock: expected SKU=N, got {spec!r}")
        stock[sku] = int(units)
    return stock


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--stock", action="append", default=[], metavar="SKU=N",
                   help="initial stock of a SKU not yet in the state file")
    p.add_argument("--state", default="inventory.json")
    p.add_argument("--flaky-reservations", type=int, default=0,
                   help="the first N reservation attempts fail transiently and are retried")
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=None)
    args = p.parse_args()
    inventory = Inventory(Path(args.state), parse_stock(args.stock))
    service = Service(args, "inventory")
    flaky = args.flaky_reservations

    def say(order_id: str, text: str) -> None:
        print(f" [inventory] {order_id}: {text}", flush=True)

    def order_placed(event, properties, body):
        nonlocal flaky
        order_id, sku, qty = event["order_id"], event["sku"], int(event["qty"])
        known = inventory.orders.get(order_id)
        if known is not None:
            if known["status"] == "reserved":  # a duplicate: the first reservation stands
                service.publish("inventory.reserved", event)
            say(order_id, f"seen before ({known['status']}), nothing changed")
            return
        if flaky > 0:
            flaky -= 1
            n = attempt(properties)
            if n <= args.max_retries:
                service.retry_later(properties, body)
                say(order_id, f"attempt {n}: database unavailable -> retry in {RETRY_DELAY_MS} ms")
                return
            reason = f"inventory unavailable after {n} attempts"
        else:
            item = inventory.stock.get(sku)
            if item is None:
                reason = f"unknown sku {sku}"
            elif item["available"] < qty:
                reason = f"out of stock: {item['available']} {sku} available, {qty} ordered"
            else:
                item["available"] -= qty
                item["reserved"] += qty
                inventory.orders[order_id] = {"sku": sku, "qty": qty, "status": "reserved"}
                inventory.save()
                service.publish("inventory.reserved", event)
                say(order_id, f"reserved {qty} {sku} (available {item['available']})")
                return
        inventory.orders[order_id] = {"sku": sku, "qty": qty, "status": "rejected"}
        inventory.save()
        service.publish("inventory.rejected", {**event, "reason": reason})
        say(order_id, f"rejected ({reason})")

    def settle(event, new_status: str):
        """The order's reservation, moved to ``new_status`` (None if it is not reserved)."""
        order = inventory.orders.get(event["order_id"])
        if order is None or order["status"] != "reserved":
            say(event["order_id"], f"{new_status}: no reservation to settle, nothing changed")
            return None
        order["status"] = new_status
        item = inventory.stock[order["sku"]]
        item["reserved"] -= order["qty"]
        return order, item

    def payment_failed(event, properties, body):
        settled = settle(event, "released")
        if settled:
            order, item = settled
            item["available"] += order["qty"]  # the compensating action
            inventory.save()
            service.publish("inventory.released", event)
            say(event["order_id"], f"released {order['qty']} {order['sku']} "
                                   f"(compensation: {event.get('reason')}; available {item['available']})")

    def payment_succeeded(event, properties, body):
        settled = settle(event, "sold")
        if settled:
            order, item = settled
            item["sold"] += order["qty"]
            inventory.save()
            say(event["order_id"], f"sold {order['qty']} {order['sku']}")

    service.run({"order.placed": order_placed, "payment.failed": payment_failed,
                 "payment.succeeded": payment_succeeded})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
