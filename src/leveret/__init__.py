"""Leveret: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged."""
__version__ = "0.1.0"

from .broker.broker import Broker, Settings  # noqa: E402

__all__ = ["Broker", "Settings", "__version__"]
