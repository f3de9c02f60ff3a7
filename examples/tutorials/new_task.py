#!/usr/bin/env python
"""Tutorial 2, "Work Queues": put one task on the durable queue 'task_queue'.

Each dot in the message stands for one second of work for the worker.

Usage: new_task.py [--queue-type classic|quorum] [message words...]
       (default message: "Hello World!"; TUTORIAL_QUEUE_TYPE sets the queue type too)
"""
import argparse
import os

import pika

from tutorial_support import AMQP_URL, name

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--queue-type", choices=["classic", "quorum"],
                    default=os.environ.get("TUTORIAL_QUEUE_TYPE", "classic"),
                    help="declare 'task_queue' as a classic (default) or quorum queue; "
                         "worker.py must use the same type")
parser.add_argument("message", nargs="*")
args = parser.parse_args()

# A quorum queue is always durable; it is chosen with the x-queue-type argument.
# Producer and consumer must declare the queue with the same arguments.
arguments = {"x-queue-type": "quorum"} if args.queue_type == "quorum" else None

connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
channel = connection.channel()

queue = name("task_queue")
# durable=True: the queue survives a broker restart.
channel.queue_declare(queue=queue, durable=True, arguments=arguments)

message = " ".join(args.message) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key=queue,
    body=message,
    # delivery_mode=2 (Persistent): the broker writes the message to disk.
    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
)
print(f" [x] Sent {message!r}", flush=True)
connection.close()
