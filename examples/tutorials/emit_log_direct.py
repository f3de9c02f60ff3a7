#!/usr/bin/env python
"""Tutorial 4, "Routing": send a log message with a severity to the direct exchange 'direct_logs'.

Usage: emit_log_direct.py [severity] [message words...]
       (defaults: severity "info", message "Hello World!")
"""
import sys

import pika

from tutorial_support import AMQP_URL, name

connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
channel = connection.channel()

exchange = name("direct_logs")
channel.exchange_declare(exchange=exchange, exchange_type="direct")

severity = sys.argv[1] if len(sys.argv) > 1 else "info"
message = " ".join(sys.argv[2:]) or "Hello World!"
# The severity is the routing key; a direct exchange delivers to the queues bound with
# exactly that key.
channel.basic_publish(exchange=exchange, routing_key=severity, body=message)
print(f" [x] Sent {severity}:{message}", flush=True)
connection.close()
