#!/usr/bin/env python
"""Tutorial 5, "Topics": print the log messages whose routing key matches a binding pattern.

In a pattern, '*' stands for exactly one word and '#' for zero or more words.

Usage: receive_logs_topic.py [--max-messages N] [--timeout S] binding_key [binding_key...]
   e.g. receive_logs_topic.py "kern.*" "*.critical"      (or "#" for everything)
"""
import argparse
import sys

import pika

from tutorial_support import AMQP_URL, StopAfter, add_stop_options, name


def main():
    parser = add_stop_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("binding_keys", nargs="*", metavar="binding_key")
    args = parser.parse_args()
    if not args.binding_keys:
        sys.stderr.write(f"Usage: {sys.argv[0]} [binding_key]...\n")
        sys.exit(1)
    stop = StopAfter(args)

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    exchange = name("topic_logs")
    channel.exchange_declare(exchange=exchange, exchange_type="topic")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    for binding_key in args.binding_keys:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=binding_key)

    def callback(ch, method, properties, body):
        print(f" [x] {method.routing_key}:{body.decode()}", flush=True)
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
