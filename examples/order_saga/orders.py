#!/usr/bin/env python
"""The order service: follows every event of the saga and keeps each order's state.

  order.placed        PLACED
  inventory.reserved  RESERVED
  inventory.rejected  REJECTED (reason)                  final
  payment.succeeded   CONFIRMED                          final
  payment.failed      COMPENSATING (reason)
  inventory.released  CANCELLED (inventory released)     final

Its queue is bound to ``#`` on shop.events, so it sees the events in the order they were
published (each is published only after the event that caused it was routed). Every
transition prints `` [orders] o2: COMPENSATING (card declined)``.

Usage: orders.py [--url URL] [--prefix P] [--max-orders N] [--timeout S]
"""
import sys

from saga import Service, parser

STATUS = {
    "order.placed": ("PLACED", False),
    "inventory.reserved": ("RESERVED", False),
    "inventory.rejected": ("REJECTED", True),
    "payment.succeeded": ("CONFIRMED", True),
    "payment.failed": ("COMPENSATING", False),
    "inventory.released": ("CANCELLED", True),
}


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--max-orders", type=int, default=None, help="exit after this many orders are final")
    p.add_argument("--timeout", type=float, default=None)
    args = p.parse_args()
    service = Service(args, "orders")
    orders: dict[str, str] = {}
    finished = 0

    def on_event(event, properties, body):
        nonlocal finished
        status, final = STATUS[properties.type]
        order_id = event["order_id"]
        orders[order_id] = status
        reason = "inventory released" if status == "CANCELLED" else event.get("reason")
        print(f" [orders] {order_id}: {status}" + (f" ({reason})" if reason else ""), flush=True)
        if final:
            finished += 1
            return args.max_orders is not None and finished >= args.max_orders
        return False

    service.run(dict.fromkeys(STATUS, on_event))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
