#!/usr/bin/env python
"""RPC client over direct reply-to: send several fib(n) requests at once, match the replies.

1. Consume the pseudo-queue ``amq.rabbitmq.reply-to`` in no-ack mode. This must come
   first: the broker refuses a publish with reply_to=amq.rabbitmq.reply-to on a channel
   that is not consuming it.
2. Publish every request to 'rpc.fib' with ``reply_to="amq.rabbitmq.reply-to"`` and a
   fresh ``correlation_id``. The broker rewrites reply_to to a name that leads back to
   this channel; no reply queue is ever declared.
3. Replies arrive in whatever order the servers finish; each is matched to its request by
   correlation_id. Requests without a reply after --timeout seconds are reported and the
   exit status is 1. Requests carry ``expiration`` = the timeout, so a request that no
   server picked up in time is discarded rather than answered to nobody.

Output, one line per reply as it arrives, then a summary:

  [.] fib(3) = 2 (corr 5f0c..., 4 ms)
  [!] fib(30): no reply within 5.0 s (corr ...)

Usage: client.py [--url URL] [--prefix P] [--timeout 5] n [n ...]
"""
import argparse
import json
import os
import sys
import time
import uuid

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class FibonacciClient:

    def __init__(self, url, queue):
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.pending = {}   # correlation_id -> (n, sent at)
        self.results = {}   # correlation_id -> reply dict
        self.channel.basic_consume(DIRECT_REPLY_TO, self.on_reply, auto_ack=True)
        self.channel.add_on_return_callback(self.on_return)

    def send(self, n, timeout):
        corr = str(uuid.uuid4())
        self.pending[corr] = (n, time.monotonic())
        self.channel.basic_publish(
            exchange="",
            routing_key=self.queue,
            body=str(n),
            properties=pika.BasicProperties(
                reply_to=DIRECT_REPLY_TO,
                correlation_id=corr,
                expiration=str(int(timeout * 1000)),
            ),
            mandatory=True,  # no 'rpc.fib' queue (no server ever ran): returned at once
        )
        return corr

    def on_reply(self, ch, method, props, body):
        request = self.pending.pop(props.correlation_id, None)
        if request is None:
            print(f" [?] ignoring a reply with unknown correlation id {props.correlation_id}", flush=True)
            return
        n, sent = request
        reply = json.loads(body)
        self.results[props.correlation_id] = reply
        took = (time.monotonic() - sent) * 1000
        value = reply["result"] if "result" in reply else f"error: {reply.get('error')}"
        print(f" [.] fib({n}) = {value} (corr {props.correlation_id}, {took:.0f} ms)", flush=True)

    def on_return(self, ch, method, props, body):
        request = self.pending.pop(props.correlation_id, None)
        if request is not None:
            self.results[props.correlation_id] = {"error": method.reply_text}
            print(f" [!] fib({request[0]}): request returned, {method.reply_code} {method.reply_text} "
                  f"(is a server running?)", flush=True)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=min(0.05, max(0.0, deadline - time.monotonic())))

    def close(self):
        self.connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for all replies (default: %(default)s)")
    parser.add_argument("numbers", nargs="+", type=int, metavar="n")
    args = parser.parse_args()

    client = FibonacciClient(args.url, args.prefix + "rpc.fib")
    try:
        for n in args.numbers:
            corr = client.send(n, args.timeout)
            print(f" [x] Requesting fib({n}) (corr {corr})", flush=True)
        client.wait(args.timeout)
        for corr, (n, _) in client.pending.items():
            print(f" [!] fib({n}): no reply within {args.timeout} s (corr {corr})", flush=True)
        failed = len(client.pending) + sum("error" in r for r in client.results.values())
    finally:
        client.close()
    print(f" [=] {len(args.numbers) - failed} of {len(args.numbers)} requests answered", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
