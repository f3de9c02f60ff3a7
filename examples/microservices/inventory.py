#!/usr/bin/env python
"""The inventory service: reserve stock for every placed order, or reject it.

Consumes 'order.placed' events (queue 'inventory.orders'); keeps the stock in memory, starting
from ``--stock ITEM=N,...``. If the order's quantity is in stock it is reserved and a
'stock.reserved' event (with ``left``) is published, otherwise 'stock.rejected' (with
``reason``). Reports ``reserved`` / ``rejected`` (1 per order) and ``stock_<item>`` (what is left)
to the metrics exchange. The event is published with confirms before the order is acked.

  [>] o-1: 2 x widget reserved (1 left)
  [>] o-3: 2 x widget rejected (only 1 in stock)

Usage: inventory.py [--url URL] [--prefix P] [--stock widget=5,gadget=2] [--timeout S]
"""
import argparse
import sys

from shop import Service, add_options


def parse_stock(spec: str) -> dict[str, int]:
    try:
        stock = {item: int(n) for item, n in (part.split("=") for part in spec.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ITEM=N,ITEM=N: {spec!r}") from None
    if any(n < 0 for n in stock.values()):
        raise argparse.ArgumentTypeError("stock cannot be negative")
    return stock


def main() -> int:
    parser = add_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--stock", type=parse_stock, default={"widget": 5, "gadget": 2})
    args = parser.parse_args()
    stock = dict(args.stock)
    service = Service(args, "inventory", "inventory.orders", ("order.placed",))

    def on_order(key: str, order: dict) -> None:
        item, qty, order_id = order.get("item"), order.get("qty"), order.get("order", "?")
        have = stock.get(item, 0)
        if isinstance(qty, int) and 0 < qty <= have:
            stock[item] = have - qty
            service.emit("stock.reserved", {**order, "left": stock[item]}, order_id)
            service.report("reserved", 1)
            service.report(f"stock_{item}", stock[item])
            print(f" [>] {order_id}: {qty} x {item} reserved ({stock[item]} left)", flush=True)
        else:
            reason = f"only {have} in stock" if item in stock else f"unknown item {item!r}"
            service.emit("stock.rejected", {**order, "reason": reason}, order_id)
            service.report("rejected", 1)
            print(f" [>] {order_id}: {qty} x {item} rejected ({reason})", flush=True)

    service.run(on_order)
    return 0


if __name__ == "__main__":
    sys.exit(main())
