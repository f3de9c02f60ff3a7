#!/usr/bin/env python
"""Tutorial 3, "Publish/Subscribe": print every message broadcast on the exchange 'logs'.

Each receiver has its own temporary queue (server-named, exclusive), so every running
receiver gets a copy of every message.

Usage: receive_logs.py [--max-messages N] [--timeout S]
"""
import argparse
import sys

import pika

from tutorial_support import AMQP_URL, StopAfter, add_stop_options, name


def main():
    args = add_stop_options(argparse.ArgumentParser(description=__doc__)).parse_args()
    stop = StopAfter(args)

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    exchange = name("logs")
    channel.exchange_declare(exchange=exchange, exchange_type="fanout")

    # queue='' lets the broker pick a name (amq.gen-...); exclusive=True deletes the
    # queue when this connection closes.
    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    channel.queue_bind(exchange=exchange, queue=queue_name)

    def callback(ch, method, properties, body):
        print(f" [x] {body.decode()}", flush=True)
        stop.handled_one(ch)

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)

    print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)
    stop.arm(connection, channel)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
