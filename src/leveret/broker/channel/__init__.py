"""Channels: per-channel AMQP semantics (RabbitMQ's ``rabbit_channel``), one module per concept.

==================  ====================================================================
module              what lives there
==================  ====================================================================
``base.py``         the channel: delivery tags, the unacked map, publish and routing,
                    ack/nack/reject/recover, consumers and prefetch, ``basic.*`` and
                    ``channel.*`` methods, consumer timeouts; :data:`HANDLERS`
``entities.py``     ``exchange.*`` and ``queue.*`` methods
``confirms.py``     publisher confirms (acks/nacks coalesced as RabbitMQ does)
``transactions.py`` ``tx.*``
``reply_to.py``     direct reply-to
==================  ====================================================================
"""
from __future__ import annotations

from .base import HANDLERS, Channel

__all__ = ["Channel", "HANDLERS"]
