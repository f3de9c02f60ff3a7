#!/usr/bin/env python
"""Send a burst of API requests to 'api.requests', all at once.

Each request is a persistent JSON message ``{"id": "req-7", "path": "/quote"}`` with
``message_id`` = its id, published with publisher confirms.

Usage: client.py [--url URL] [--prefix P] [--count 20] [--path /quote]
"""
import argparse
import json
import sys

import pika

from topology import Topology, add_connection_options


def main() -> int:
    parser = add_connection_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--count", type=int, default=20, help="requests to send (default 20)")
    parser.add_argument("--path", default="/quote", help="what each request asks for")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")

    topology = Topology(args.prefix)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    topology.declare_requests(channel)
    channel.confirm_delivery()
    for n in range(1, args.count + 1):
        request_id = f"req-{n}"
        channel.basic_publish("", topology.requests, json.dumps({"id": request_id, "path": args.path}),
                              pika.BasicProperties(content_type="application/json", message_id=request_id,
                                                   delivery_mode=pika.DeliveryMode.Persistent),
                              mandatory=True)
    print(f" [x] Sent {args.count} requests to {topology.requests}", flush=True)
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
