#!/usr/bin/env python
"""The order service's front door: publish one ``order.placed`` event per ORDER_ID:SKU:QTY:CARD.

CARD is how the (simulated) payment will go: ``ok``, ``declined`` (a permanent failure:
the saga compensates), or ``flaky:N`` (the payment gateway fails transiently on the first N
attempts: the payment service retries). The amount is QTY * 10.

Usage: place_order.py [--url URL] [--prefix P] ORDER_ID:SKU:QTY:CARD [...]
"""
import sys

import pika

from saga import declare, parser, publish


def main() -> int:
    p = parser(__doc__)
    p.add_argument("orders", nargs="+", metavar="ORDER_ID:SKU:QTY:CARD")
    args = p.parse_args()
    orders = []
    for arg in args.orders:
        order_id, sku, qty, card = (arg.split(":", 3) + ["", "", ""])[:4]
        if not (order_id and sku and qty.isdigit() and int(qty) > 0 and card):
            p.error(f"expected ORDER_ID:SKU:QTY:CARD with QTY > 0, got {arg!r}")
        orders.append({"order_id": order_id, "sku": sku, "qty": int(qty), "amount": int(qty) * 10, "card": card})
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    try:
        channel = connection.channel()
        declare(channel, args.prefix)
        channel.confirm_delivery()
        for order in orders:
            publish(channel, args.prefix, "order.placed", order)
            print(f" [x] Placed {order['order_id']}: {order['qty']} x {order['sku']} (card {order['card']})",
                  flush=True)
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
