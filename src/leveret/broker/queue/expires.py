"""Queue expiry: ``x-expires`` (or the policy's ``expires``) deletes a queue once unused.

As RabbitMQ: a queue is *unused* while it has no consumers and nobody
redeclares it or calls ``basic.get`` on it (:meth:`touch`); the lease starts
again at each use and when its last consumer goes. One timer per queue fires
at the end of the lease and deletes the queue (queue.delete semantics:
consumers are gone by definition, messages go without dead-lettering). A
lease that ran out while the broker was down expires at start.
"""
from __future__ import annotations

from .ttl import now_ms

SLOTS = ("expires", "last_used", "idle_timer")


class QueueExpiry:
    """Mixin of :class:`~leveret.broker.queue.base.Queue`."""

    __slots__ = ()

    def _init_expiry(self) -> None:
        self.expires = None
        self.last_used = now_ms()
        self.idle_timer = None

    def set_expires(self, expires: int | None) -> None:
        if expires != self.expires:
            self.expires = expires
            self._arm_idle()

    def touch(self) -> None:
        """The queue was used (declared, basic.get): its x-expires lease starts again."""
        if self.expires is not None:
            self.last_used = now_ms()
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.expires is not None and not self.consumers and not self.deleted:
            self.idle_timer = self.vhost.broker.call_at_ms(self.last_used + self.expires, self._idle_tick)

    def _consumed(self) -> None:
        """A consumer came: the queue is in use until the last one goes."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _unconsumed(self) -> None:
        """The last consumer went: the lease starts now."""
        if self.expires is not None:
            self.last_used = now_ms()
            self._arm_idle()

    def _idle_tick(self) -> None:
        self.idle_timer = None
        if self.deleted or self.consumers or self.expires is None:
            return
        if now_ms() >= self.last_used + self.expires:
            self.vhost.delete_queue(self)
        else:
            self._arm_idle()

    def _stop_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
