"""Leveret: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged."""
__version__ = "0.1.0"

from .node import Node  # noqa: E402
from .settings import Settings  # noqa: E402

Broker = Node      # what a program embeds: the broker with its listeners (``leveret.node``)

__all__ = ["Broker", "Node", "Settings", "__version__"]
