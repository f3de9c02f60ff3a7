"""Access checks as the channel makes them (``rabbit_channel``'s ``check_*_permitted``).

Which permission each method needs, on which resource (RabbitMQ 3.10's table; the order
of each check among the method's other checks is kept where the method is handled):

==============================  =======================  ==================  ============
method                          configure                write               read
==============================  =======================  ==================  ============
exchange.declare                the exchange                                 the exchange, only
                                (passive: none)          alternate exchange  with an AE, when new
exchange.delete                 the exchange
queue.declare                   the queue (also server-  dead-letter exch.   the queue, only with
                                named; passive: none)    (new queue only)    a DLX, when new
queue.delete                    the queue
queue.purge                                                                  the queue
queue.bind / queue.unbind                                the queue           the exchange
exchange.bind / exchange.unbind                          the destination     the source
basic.publish                                            the exchange
basic.get / basic.consume                                                    the queue
==============================  =======================  ==================  ============

Topic permissions add a routing-key check for topic exchanges: write at basic.publish, read
at queue.bind / queue.unbind / exchange.bind / exchange.unbind when the *source* exists and
is a topic exchange (a topic destination is not checked; an unbind is checked even when the
binding does not exist; an unbind from a missing source has no topic check and succeeds).
``{username}`` and ``{vhost}`` in the regexps are expanded, ``{client_id}`` is not (it stays
literal for AMQP 0-9-1, whatever ``client_id`` client property the client sends). Direct
reply-to (consuming ``amq.rabbitmq.reply-to``) needs nothing; replying is a publish to the
default exchange (write on ``amq.default``). Dead-lettering and alternate exchanges are
checked only when the queue or exchange is declared (by its arguments), never per message:
a user without write permission on a DLX or an AE -- set by an admin's declare or by a
policy -- still has its rejected messages dead-lettered and its unroutable messages routed
there. All of this checked against RabbitMQ 3.10.8 (``tests/conformance/test_access_control.py``).

Successful checks are cached per channel until the access-control generation changes (any
user, permission or vhost change), so a repeated publish costs a set lookup.
"""
from __future__ import annotations


class AccessChecks:
    """Mixin of :class:`~leveret.broker.channel.base.Channel`."""

    __slots__ = ()

    def check_access(self, kind: str, name: str, perm: str) -> None:
        acc = self.access
        allowed = self._allowed
        if self._auth_gen != acc.generation:
            allowed.clear()
            self._auth_gen = acc.generation
        key = (kind, name, perm)
        if key in allowed:
            return
        acc.check(self.conn.user, self.vhost.name, kind, name, perm)
        if len(allowed) >= 64:
            allowed.clear()
        allowed.add(key)

    def check_topic_access(self, x, routing_key: str, perm: str) -> None:
        if x.type_name == "topic":
            self.access.check_topic(self.conn.user, self.vhost.name, x.name, routing_key, perm)
