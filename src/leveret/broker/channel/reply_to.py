"""Direct reply-to (``amq.rabbitmq.reply-to``), with RabbitMQ's rules and texts.

* A channel consumes from the pseudo-queue (no-ack only, one consumer per
  channel); its publishes with ``reply_to = amq.rabbitmq.reply-to`` get the
  channel's own reply name instead.
* A publish to ``amq.rabbitmq.reply-to.<key>`` on the default exchange is
  delivered straight to the channel owning the key, or dropped if it has gone;
  RabbitMQ's quirks are kept: the reply reuses the delivery tag, and a
  mandatory reply is delivered *and* returned (it routed to no queue).
* Declaring the pseudo-queue answers ``(name, 0, 1)``; a reply name exists
  while its consumer does.
"""
from __future__ import annotations


from ...amqp import spec
from ...amqp.codec import enc_shortstr
from ...amqp.errors import (not_allowed, not_found, precondition_failed)
from ..message import Message
from ..queue import Consumer
from ..vhost import gen_name

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = REPLY_TO + "."


class DirectReplyTo:
    """Mixin of :class:`~leveret.broker.channel.base.Channel`."""

    __slots__ = ()

    def _rewrite_reply_to(self, msg: Message) -> None:
        """Direct reply-to: ``reply_to = amq.rabbitmq.reply-to`` becomes this channel's name."""
        if self.reply_consumer is None:
            raise precondition_failed("fast reply consumer does not exist", 60, 40)
        props = msg.properties
        props.reply_to = self.reply_key
        msg.set_properties(props)

    def _direct_reply(self, msg: Message) -> bool:
        """A publish to ``amq.rabbitmq.reply-to.<key>`` on the default exchange: deliver it to
        the channel that owns the key (dropped if that channel has gone)."""
        ch = self.broker.reply_channels.get(msg.routing_key)
        if ch is not None and not ch.closed and ch.reply_consumer is not None:
            # RabbitMQ sends a reply with the channel's next delivery tag without using it up
            tag = ch.next_tag
            ch.deliver(ch.reply_consumer, None, msg, False)
            ch.next_tag = tag
            ch.stat_deliver_noack -= 1      # (not a delivery in the statistics either)
            return True
        return False

    def _consume_reply_to(self, m):
        """basic.consume on the direct reply-to pseudo-queue (no-ack only, one per channel)."""
        if not m.no_ack:
            raise precondition_failed("reply consumer cannot acknowledge", 60, 20)
        if self.reply_consumer is not None:
            raise precondition_failed("reply consumer already set", 60, 20)
        tag = m.consumer_tag or gen_name("amq.ctag-")
        if tag in self.consumers:
            raise not_allowed(f"attempt to reuse consumer tag '{tag}'", 60, 20)
        c = Consumer(tag, enc_shortstr(tag), self, None, True, False, 0, m.arguments)
        self.consumers[tag] = c
        self.reply_consumer = c
        if self.reply_key is None:
            self.reply_key = REPLY_PREFIX + gen_name("") + "." + gen_name("")
        self.broker.reply_channels[self.reply_key] = self
        if not m.nowait:
            self.conn.send_method(self.number, spec.BasicConsumeOk(consumer_tag=tag))

    def _declare_reply_to(self, m, name: str):
        """The direct reply-to pseudo-queue always "exists" (0 messages, 1 consumer); a reply
        name exists while its channel's reply consumer does."""
        if name != REPLY_TO:
            ch = self.broker.reply_channels.get(name)
            if ch is None or ch.reply_consumer is None:
                raise not_found(f"no queue '{name}' in vhost '{self.vhost.name}'", 50, 10)
        if not m.nowait:
            self.conn.send_method(self.number, spec.QueueDeclareOk(queue=name, message_count=0, consumer_count=1))
