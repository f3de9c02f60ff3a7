"""Demo: three reminders published at once with x-delay 0, 700 and 1500 ms reach the notifier
in due order, none early. Needs the x-delayed-message exchange type (built into Leveret; the
rabbitmq_delayed_message_exchange plugin on RabbitMQ: without it the demo says so and stops).
Run it with ``python examples/run.py delayed_reminders [--url URL]``."""
QUEUES = ("reminders",)
EXCHANGES = ("reminders",)


def has_delayed_exchange(d) -> bool:
    """Declare (and delete) a probe exchange of type x-delayed-message; 503 means no such type."""
    import pika
    from pika.exceptions import ConnectionClosedByBroker

    connection = pika.BlockingConnection(pika.URLParameters(d.url))
    try:
        channel = connection.channel()
        channel.exchange_declare(d.name("reminders.probe"), "x-delayed-message", auto_delete=True,
                                 arguments={"x-delayed-type": "direct"})
        channel.exchange_delete(d.name("reminders.probe"))
        return True
    except ConnectionClosedByBroker as exc:
        if exc.reply_code == 503:
            return False
        raise
    finally:
        if connection.is_open:
            connection.close()


def demo(d):
    if not has_delayed_exchange(d):
        d.say("this broker has no x-delayed-message exchange type "
              "(RabbitMQ: enable the rabbitmq_delayed_message_exchange plugin); nothing to show")
        return
    notifier = d.start("notifier.py", "--max-messages", "3", ready="Waiting for reminders")
    d.say("schedule three reminders, out of order")
    d.run("scheduler.py", "1500:stand up", "0:hello", "700:drink water")
    notifier.expect("Reminder 'stand up'")
    notifier.finish()
