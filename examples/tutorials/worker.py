#!/usr/bin/env python
"""Tutorial 2, "Work Queues": take tasks from 'task_queue', one at a time, and ack them.

Each dot in a task costs one second of "work" (TUTORIAL_DOT_SECONDS or --dot-seconds
changes that). Run several workers to see the tasks shared between them.

Usage: worker.py [--queue-type classic|quorum] [--dot-seconds S]
                 [--max-messages N] [--timeout S]
"""
import argparse
import os
import sys
import time

import pika

from tutorial_support import AMQP_URL, StopAfter, add_stop_options, name


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue-type", choices=["classic", "quorum"],
                        default=os.environ.get("TUTORIAL_QUEUE_TYPE", "classic"))
    parser.add_argument("--dot-seconds", type=float,
                        default=float(os.environ.get("TUTORIAL_DOT_SECONDS", "1")))
    args = add_stop_options(parser).parse_args()
    stop = StopAfter(args)
    arguments = {"x-queue-type": "quorum"} if args.queue_type == "quorum" else None

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    queue = name("task_queue")
    channel.queue_declare(queue=queue, durable=True, arguments=arguments)

    def callback(ch, method, properties, body):
        task = body.decode()
        print(f" [x] Received {task!r}", flush=True)
        time.sleep(task.count(".") * args.dot_seconds)
        # Manual ack, once the work is done: if the worker dies before this line, the
        # broker hands the task to another worker.
        ch.basic_ack(delivery_tag=method.delivery_tag)
        print(f" [x] Done {task!r}", flush=True)
        stop.handled_one(ch)

    # Fair dispatch: no new task for this worker until it has acked the current one.
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=queue, on_message_callback=callback)

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
