"""Transactions (``tx.select``/``commit``/``rollback``), as RabbitMQ's channel runs them.

A transactional publish is routed at once, to queue *names*, and enqueued at
``tx.commit`` into the queues that then have those names; acks, nacks and
rejects are held until the commit too. ``tx.commit-ok`` waits for the fsync
when persistent messages reached durable queues. A rollback (or the channel
closing) puts held acks back into the unacked map, in tag order.
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
        for fn, args in ops:
            fn(*args)
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
