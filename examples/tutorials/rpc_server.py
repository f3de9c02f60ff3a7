#!/usr/bin/env python
"""Tutorial 6, "RPC": answer Fibonacci requests arriving on the queue 'rpc_queue'.

Each request body is a number n; the reply, sent to the request's reply_to queue with
the request's correlation_id, is fib(n).

Usage: rpc_server.py [--max-messages N] [--timeout S]
"""
import argparse
import sys

import pika

from tutorial_support import AMQP_URL, StopAfter, add_stop_options, name


def fib(n):
    # Deliberately the slow, recursive definition: it stands for "real work".
    if n == 0:
        return 0
    if n == 1:
        return 1
    return fib(n - 1) + fib(n - 2)


def main():
    args = add_stop_options(argparse.ArgumentParser(description=__doc__)).parse_args()
    stop = StopAfter(args)

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    queue = name("rpc_queue")
    channel.queue_declare(queue=queue)

    def on_request(ch, method, props, body):
        n = int(body)
        print(f" [.] fib({n})", flush=True)
        response = fib(n)

        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=str(response),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)
        stop.handled_one(ch)

    # Spread the load evenly when several servers run.
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=queue, on_message_callback=on_request)

    print(" [x] Awaiting RPC requests", flush=True)
    stop.arm(connection, channel)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
