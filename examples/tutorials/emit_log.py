#!/usr/bin/env python
"""Tutorial 3, "Publish/Subscribe": broadcast one log message on the fanout exchange 'logs'.

Usage: emit_log.py [message words...]     (default message: "info: Hello World!")
"""
import sys

import pika

from tutorial_support import AMQP_URL, name

connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
channel = connection.channel()

exchange = name("logs")
channel.exchange_declare(exchange=exchange, exchange_type="fanout")

message = " ".join(sys.argv[1:]) or "info: Hello World!"
# A fanout exchange ignores the routing key and copies the message to every bound queue.
channel.basic_publish(exchange=exchange, routing_key="", body=message)
print(f" [x] Sent {message!r}", flush=True)
connection.close()
