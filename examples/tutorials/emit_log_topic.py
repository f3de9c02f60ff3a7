#!/usr/bin/env python
"""Tutorial 5, "Topics": send a log message with a routing key like "<facility>.<severity>"
to the topic exchange 'topic_logs'.

Usage: emit_log_topic.py [routing.key] [message words...]
       (defaults: routing key "anonymous.info", message "Hello World!")
"""
import sys

import pika

from tutorial_support import AMQP_URL, name

connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
channel = connection.channel()

exchange = name("topic_logs")
channel.exchange_declare(exchange=exchange, exchange_type="topic")

routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(exchange=exchange, routing_key=routing_key, body=message)
print(f" [x] Sent {routing_key}:{message}", flush=True)
connection.close()
