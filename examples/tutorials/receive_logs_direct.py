#!/usr/bin/env python
"""Tutorial 4, "Routing": print the log messages of the given severities.

Usage: receive_logs_direct.py [--max-messages N] [--timeout S] severity [severity...]
   e.g. receive_logs_direct.py warning error
"""
import argparse
import sys

import pika

from tutorial_support import AMQP_URL, StopAfter, add_stop_options, name


def main():
    parser = add_stop_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("severities", nargs="*", metavar="severity")
    args = parser.parse_args()
    if not args.severities:
        sys.stderr.write(f"Usage: {sys.argv[0]} [info] [warning] [error]\n")
        sys.exit(1)
    stop = StopAfter(args)

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    exchange = name("direct_logs")
    channel.exchange_declare(exchange=exchange, exchange_type="direct")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    # One binding per severity: the same queue may be bound several times.
    for severity in args.severities:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=severity)

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
