"""Leveret in a synchronous program: the broker runs in a background thread (its own event loop),
and the program publishes and consumes with pika's blocking API."""
import pika

from leveret import BackgroundBroker

with BackgroundBroker(port=0) as broker:                   # stopped, thread joined, on leaving
    # the broker object lives on its own thread: administer it through call()
    broker.call(broker.broker.add_vhost, "shop")
    broker.call(broker.broker.set_permissions, "guest", "shop", ".*", ".*", ".*")
    url = broker.url.replace("/%2F", "/shop")              # amqp://guest:guest@127.0.0.1:PORT/shop
    print("broker listening at", url)

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare("tasks", durable=True)
    for n in (1, 2, 3):
        channel.basic_publish("", "tasks", f"resize photo {n}".encode(),
                              pika.BasicProperties(delivery_mode=2))

    def on_message(ch, method, properties, body):
        print("received:", body.decode())
        ch.basic_ack(method.delivery_tag)
        if body.endswith(b"3"):
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=10)
    channel.basic_consume("tasks", on_message)
    channel.start_consuming()
    connection.close()
print("broker stopped")
