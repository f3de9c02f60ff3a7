"""Publisher confirms (``confirm.select``), as RabbitMQ's ``rabbit_channel`` sends them.

* Every publish on a channel in confirm mode takes the next sequence number.
  It is confirmed at once when it wrote nothing to disk (transient, or no
  durable queue), otherwise once the group commit's fsync covering its
  records returns -- a confirm means the message is on disk. Confirms go out
  in order.
* Acks owed since the last flush leave as one ``basic.ack`` (``multiple``
  when it covers several) just before the connection writes.
* A publish refused by a queue's overflow rule (reject-publish) is nacked; a
  batch with nacks is sent as RabbitMQ's ``send_confirms_and_nacks`` /
  ``coalesce_and_send`` sends it (:meth:`PublisherConfirms._flush_with_nacks`).
  Its ``requeue`` bit is set: RabbitMQ builds the nack with the field's default
  (true), for quorum and classic queues alike.
"""
from __future__ import annotations


from ...amqp import spec
from ...amqp.errors import precondition_failed
from ...amqp.frames import ack_frame


class PublisherConfirms:
    """Mixin of :class:`~leveret.broker.channel.base.Channel`."""

    __slots__ = ()

    def m_confirm_select(self, m):
        if self.tx:
            raise precondition_failed("cannot switch from tx to confirm mode", 85, 10)
        self.confirm = True
        if not m.nowait:
            self.conn.send_method(self.number, spec.ConfirmSelectOk())

    def _confirm_after_write(self, writes: int) -> None:
        """Confirm the current publish: at once, or once the records it wrote are fsynced."""
        if self.confirm:
            commit = self.commit
            wait = self.confirm_wait
            if commit.writes != writes:
                # a persistent message reached a durable queue: confirm once it is fsynced
                epoch = commit.epoch
                if wait and wait[-1][0] == epoch:
                    wait[-1][1] = self.publish_seq
                else:
                    wait.append([epoch, self.publish_seq])
                    commit.when_durable(epoch, self._durable)
            elif wait:
                wait[-1][1] = self.publish_seq      # confirms go out in order
            else:
                self.confirm_upto = self.publish_seq
                self._confirm_soon()

    def _confirm_soon(self) -> None:
        """The ack goes out with the next flush (coalesced with the confirms around it)."""
        conn = self.conn
        pending = conn.confirm_channels
        if not pending and conn.wakeup is not None:
            conn.wakeup()
        pending[self] = None

    def _durable(self) -> None:
        """The committer fsynced an epoch: release the confirms that waited for it."""
        wait = self.confirm_wait
        durable = self.commit.durable
        upto = 0
        while wait and wait[0][0] <= durable:
            upto = wait.pop(0)[1]
        if upto and not self.closed:
            self.confirm_upto = upto
            self._confirm_soon()

    def flush_confirms(self) -> None:
        """Send the acks owed since the last flush: one frame, ``multiple`` when it covers several
        (RabbitMQ sends a single confirm with multiple=false)."""
        upto = self.confirm_upto
        if upto > self.confirm_sent and not self.closed:
            if self.nacked:
                self._flush_with_nacks(upto)
                return
            multiple = upto - self.confirm_sent > 1
            self.confirm_sent = upto
            self.conn.emit(ack_frame(self.number, upto, multiple))

    def _flush_with_nacks(self, upto: int) -> None:
        """A batch holding nacks, as RabbitMQ's ``send_confirms_and_nacks`` sends it: the acks
        first, then the nacks, each list coalesced by ``coalesce_and_send`` (tags below a cutoff
        -- the smallest still-unconfirmed publish and the other list's tags -- go as one
        ``multiple`` frame, the rest one by one; a lone ack is never ``multiple``)."""
        nacks = sorted(n for n in self.nacked if n <= upto)
        self.nacked.difference_update(nacks)
        self.stat_nacks += len(nacks)
        nset = set(nacks)
        acks = [t for t in range(self.confirm_sent + 1, upto + 1) if t not in nset]
        unconfirmed = upto + 1 if self.publish_seq > upto else None
        emit = self.conn.emit
        if len(acks) == 1:
            emit(ack_frame(self.number, acks[0], False))
        elif acks:
            self._coalesce(acks, nacks, unconfirmed, lambda t, m: emit(ack_frame(self.number, t, m)))
        send = self.conn.send_method
        self._coalesce(nacks, acks, unconfirmed, lambda t, m: send(
            self.number, spec.BasicNack(delivery_tag=t, multiple=m, requeue=True)))
        self.confirm_sent = upto

    @staticmethod
    def _coalesce(tags: list, others: list, unconfirmed, send) -> None:
        if not tags:
            return
        cutoff = unconfirmed if unconfirmed is not None else tags[-1] + 1
        if others:
            cutoff = min(cutoff, others[0])
        below = [t for t in tags if t < cutoff]
        if below:
            send(below[-1], True)
        for t in tags[len(below):]:
            send(t, False)
