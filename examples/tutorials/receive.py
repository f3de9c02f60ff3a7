#!/usr/bin/env python
"""Tutorial 1, "Hello World!": print the messages arriving on the queue 'hello'.

Usage: receive.py [--max-messages N] [--timeout S]
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

    queue = name("hello")
    channel.queue_declare(queue=queue)

    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode()!r}", flush=True)
        stop.handled_one(ch)

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)

    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    stop.arm(connection, channel)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
