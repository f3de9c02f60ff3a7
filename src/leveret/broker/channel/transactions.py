"""Transactions (``tx.select``/``commit``/``rollback``), as RabbitMQ's channel runs them.

A transactional publish is routed at once, to queue *names*, and enqueued at
``tx.commit`` into the queues that then have those names; acks, nacks and
rejects are held until the commit too. At the commit, as in RabbitMQ's
``rabbit_channel``:

* the publishes go first, then the held acks/nacks/rejects, in their order,
  consecutive ones of the same kind (ack, requeue, drop) applied as one
  (a multiple nack followed by another nack requeues as one nack would);
* ``tx.commit-ok`` comes at once -- before the redeliveries a requeue causes --
  when no publish reached a queue; otherwise after everything the commit
  delivered, and once persistent messages in durable queues are fsynced;
* a publish refused by a queue (``x-overflow: reject-publish``) fails the
  commit: 406 ``partial tx completion`` (the rest of the transaction stands).

A rollback (or the channel closing) puts held acks back into the unacked map,
in tag order.
"""
from __future__ import annotations

from collections import OrderedDict

from ...amqp import spec
from ...amqp.errors import precondition_failed


class Transactions:
    """Mixin of :class:`~leveret.broker.channel.base.Channel`."""

    __slots__ = ()

    def m_tx_select(self, m):
        if self.confirm:
            raise precondition_failed("cannot switch from confirm to tx mode", 90, 10)
        self.tx = True
        self.conn.send_method(self.number, spec.TxSelectOk())

    def m_tx_commit(self, m):
        if not self.tx:
            raise precondition_failed("channel is not transactional", 90, 20)
        ops, self.tx_ops = self.tx_ops, []
        commit = self.commit
        writes = commit.writes
        reached = refused = False
        settles: list = []              # [kind, items]: consecutive settles of one kind merged
        deferred = self.defer_dead_letters()    # (after everything the commit sends)
        try:
            for fn, args in ops:
                if fn == self._settle:
                    items, negative, requeue = args
                    kind = (negative, requeue)
                    if settles and settles[-1][0] == kind:
                        settles[-1][1].extend(items)
                    else:
                        settles.append([kind, list(items)])
                else:
                    r, f = fn(*args)
                    reached |= r
                    refused |= f
            if not reached:
                # nothing for the queues to confirm: RabbitMQ answers before they act on the settles
                self.conn.send_method(self.number, spec.TxCommitOk())
            for (negative, requeue), items in settles:
                items.sort(key=_tag)
                self._settle(items, negative, requeue)
        finally:
            self.publish_dead_letters(deferred)
        if refused:
            raise precondition_failed("partial tx completion", 90, 20)
        if not reached:
            return
        if commit.writes == writes:
            self.conn.send_method(self.number, spec.TxCommitOk())
        else:
            # persistent messages reached durable queues: commit-ok once they are fsynced
            commit.when_durable(commit.epoch, self._tx_durable)

    def _tx_durable(self) -> None:
        if not self.closed:
            self.conn.send_method(self.number, spec.TxCommitOk())

    def m_tx_rollback(self, m):
        if not self.tx:
            raise precondition_failed("channel is not transactional", 90, 30)
        self._discard_tx()
        self.conn.send_method(self.number, spec.TxRollbackOk())

    def _discard_tx(self) -> None:
        """Forget uncommitted work; acks/nacks it held go back to the unacked map, in tag order."""
        ops, self.tx_ops = self.tx_ops, []
        restored = [item for fn, args in ops if fn == self._settle for item in args[0]]
        if restored:
            self.unacked = OrderedDict(sorted(list(self.unacked.items()) + restored))


def _tag(item) -> int:
    return item[0]
