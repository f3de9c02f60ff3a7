#!/usr/bin/env python
"""Tutorial 6, "RPC": ask the RPC server for fib(n) and wait for the answer.

The client owns an exclusive, server-named callback queue. Every request carries
reply_to=<callback queue> and a fresh correlation_id; a reply is matched to its request
by that correlation_id, and replies with an unknown id are ignored.

Usage: rpc_client.py [--timeout S] [n...]      (default: n = 30; --timeout is per call)
"""
import argparse
import time
import uuid

import pika

from tutorial_support import AMQP_URL, name


class FibonacciRpcClient:

    def __init__(self, url=AMQP_URL):
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()

        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue

        self.channel.basic_consume(
            queue=self.callback_queue,
            on_message_callback=self.on_response,
            auto_ack=True,
        )

        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n, timeout=None):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=name("rpc_queue"),
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
            ),
            body=str(n),
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.response is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no reply to fib({n}) within {timeout} s")
            self.connection.process_data_events(time_limit=0.1)
        return int(self.response)

    def close(self):
        self.connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up waiting for a reply after this many seconds")
    parser.add_argument("numbers", nargs="*", type=int, metavar="n")
    args = parser.parse_args()

    fibonacci_rpc = FibonacciRpcClient()
    try:
        for n in args.numbers or [30]:
            print(f" [x] Requesting fib({n})", flush=True)
            response = fibonacci_rpc.call(n, timeout=args.timeout)
            print(f" [.] Got {response}", flush=True)
    finally:
        fibonacci_rpc.close()


if __name__ == "__main__":
    main()
