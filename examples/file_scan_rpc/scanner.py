#!/usr/bin/env python
"""The scan server: answers file-scan requests from 'scan.requests' on each client's callback queue.

A request is the file's bytes as the message body, its name in the ``filename`` header,
``reply_to`` = the client's callback queue and a ``correlation_id``. The scanner computes the
SHA-256, looks for known signatures (here the EICAR anti-virus test string, the standard
harmless "virus" for testing scanners) and publishes the verdict to the default exchange with
routing key ``reply_to`` and the request's ``correlation_id``, then acks the request (so a
scanner that dies mid-scan leaves the request to another one).

  reply: {"file": "a.txt", "verdict": "clean" | "infected: EICAR-Test-File" | "error: ...",
          "sha256": "...", "size": 123, "scanner": "<pid>"}

With ``prefetch_count=1`` several scanners share the work fairly: a slow scan never holds
requests that another scanner could take. A file over ``--max-bytes`` gets an error reply;
a request without ``reply_to`` cannot be answered and is rejected.

Output: `` [.] scanned a.txt (123 bytes) for amq.gen-... corr ...: clean``

Usage: scanner.py [--url URL] [--prefix P] [--delay-ms 0] [--max-bytes 1048576] [--timeout S]
"""
import argparse
import hashlib
import json
import os
import sys
import time

import pika

QUEUE = "scan.requests"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURES = {"EICAR-Test-File": EICAR}


def scan(data: bytes, max_bytes: int) -> dict:
    if len(data) > max_bytes:
        return {"verdict": f"error: file too large ({len(data)} bytes, the limit is {max_bytes})",
                "size": len(data)}
    found = [name for name, signature in SIGNATURES.items() if signature in data]
    return {"verdict": f"infected: {', '.join(found)}" if found else "clean",
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    p.add_argument("--delay-ms", type=int, default=0, help="extra time each scan takes (a slow engine)")
    p.add_argument("--max-bytes", type=int, default=1 << 20)
    p.add_argument("--timeout", type=float, default=None)
    args = p.parse_args()
    queue = args.prefix + QUEUE
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.basic_qos(prefetch_count=1)

    def on_request(ch, method, props, body):
        name = str((props.headers or {}).get("filename", "?"))
        if not props.reply_to:
            print(f" [!] request for {name} without reply_to: rejected", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        time.sleep(args.delay_ms / 1000)
        result = {"file": name, **scan(body, args.max_bytes), "scanner": str(os.getpid())}
        ch.basic_publish("", props.reply_to, json.dumps(result).encode(), pika.BasicProperties(
            correlation_id=props.correlation_id, content_type="application/json"))
        ch.basic_ack(method.delivery_tag)
        print(f" [.] scanned {name} ({len(body)} bytes) for {props.reply_to} corr {props.correlation_id}: "
              f"{result['verdict']}", flush=True)

    channel.basic_consume(queue, on_request)
    print(f" [*] Waiting for scan requests on {queue} (scanner {os.getpid()})", flush=True)
    if args.timeout is not None:
        connection.call_later(args.timeout, channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
