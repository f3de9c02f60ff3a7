#!/usr/bin/env python
"""The payment service: charges reserved orders; transient gateway errors are retried.

  inventory.reserved -> card "ok":        emit payment.succeeded
                        card "declined":  emit payment.failed (permanent: the saga compensates)
                        card "flaky:N":   the gateway times out on the first N attempts; each
                                          time the message goes through payment.retry and comes
                                          back RETRY_DELAY_MS later; after --max-retries retries
                                          the payment counts as failed (and the saga compensates)

Output: `` [payment] o3 attempt 1: gateway timeout -> retry in 100 ms``, ``... attempt 3: charged 10``,
``... attempt 1: FAILED (card declined)``.

Usage: payment.py [--url URL] [--prefix P] [--max-retries 3] [--timeout S]
"""
import sys

from saga import RETRY_DELAY_MS, Service, attempt, parser


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=None)
    args = p.parse_args()
    service = Service(args, "payment")

    def inventory_reserved(event, properties, body):
        order_id, card, n = event["order_id"], str(event.get("card")), attempt(properties)
        kind, _, fails = card.partition(":")
        if card == "ok" or (kind == "flaky" and fails.isdigit() and n > int(fails)):
            service.publish("payment.succeeded", event)
            print(f" [payment] {order_id} attempt {n}: charged {event['amount']}", flush=True)
            return
        if kind == "flaky" and fails.isdigit():
            if n <= args.max_retries:
                service.retry_later(properties, body)
                print(f" [payment] {order_id} attempt {n}: gateway timeout -> retry in {RETRY_DELAY_MS} ms",
                      flush=True)
                return
            reason = f"gateway timeout, gave up after {n} attempts"
        elif card == "declined":
            reason = "card declined"
        else:
            reason = f"invalid card {card!r}"
        service.publish("payment.failed", {**event, "reason": reason})
        print(f" [payment] {order_id} attempt {n}: FAILED ({reason})", flush=True)

    service.run({"inventory.reserved": inventory_reserved})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
