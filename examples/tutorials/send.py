#!/usr/bin/env python
"""Tutorial 1, "Hello World!": send one message to the queue 'hello'.

Usage: send.py [message]     (default message: "Hello World!")
"""
import sys

import pika

from tutorial_support import AMQP_URL, name

connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
channel = connection.channel()

# Declaring is idempotent: whichever of sender and receiver runs first creates the queue.
queue = name("hello")
channel.queue_declare(queue=queue)

message = " ".join(sys.argv[1:]) or "Hello World!"
# The default exchange ('') routes a message to the queue named by the routing key.
channel.basic_publish(exchange="", routing_key=queue, body=message)
print(f" [x] Sent {message!r}", flush=True)

connection.close()
