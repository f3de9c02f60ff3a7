"""Message statistics and their rates, as RabbitMQ's management plugin reports them.

The objects count (plain integer attributes, most of them derived from what the hot path
keeps anyway -- see ``Queue.stat_*``, ``Channel.stat_*``, ``Exchange.stat_*``); this module
only *reads* them. A :class:`Sampler` wakes every ``Settings.stats_interval`` seconds
(RabbitMQ's ``collect_statistics_interval``, 5 s) and takes one sample of every queue,
exchange, channel and connection and of the node totals; a rate (``*_details: {"rate": r}``)
is the change between the last two samples divided by the time between them, per second --
RabbitMQ's ``basic`` rates mode. Gauges (``messages``, ``messages_ready``,
``messages_unacknowledged``) get rates the same way. An object seen for the first time has
rate 0.0 until its second sample.

The node-wide ``message_stats`` (``/api/overview``) are the sum over open channels plus
what channels that have closed had counted (:meth:`Sampler.retire`), so they only grow, as
RabbitMQ's global counters do.

For Prometheus (``rabbitmq_global_*``, ``rabbitmq_*_opened_total`` & co.) the sampler also keeps
RabbitMQ's churn counters (:data:`CHURN`: connections opened at ``connection.open`` and closed
whenever a connection ends, as ``rabbit_reader`` counts them; channels opened and closed; queues
declared by a non-passive ``queue.declare``, created by one, deleted for any reason), the
confirm-mode publishes of closed channels, and the message counters of deleted queues by queue
type (:meth:`Sampler.retire_queue`), so the per-type totals only grow. None of them is on the
message path: they change when a connection, channel or queue comes or goes.

Each sample also sums what Prometheus' ``/metrics`` reports node-wide (:class:`Aggregates`:
the queue, channel and connection tables summed over every object, the per-queue-type
counters, the ``rabbitmq_global_*`` totals), in the same walk, so that a scrape reads those
sums instead of walking 10,000 queues: RabbitMQ's ``rabbitmq_prometheus`` likewise reads the
tables the objects' statistics emission fills every ``collect_statistics_interval``, so its
values lag by up to that interval too. The sums of one sample are consistent: every queue
(channel) is counted once, either live in the walk or in the retired totals of deleted queues
(closed channels) as they were when the walk began.

Field meanings (RabbitMQ's): ``publish`` messages published (by a channel; into a queue);
``deliver`` / ``deliver_no_ack`` deliveries to consumers in ack / no-ack mode; ``get`` /
``get_no_ack`` basic.get answered with a message; ``get_empty`` basic.get-empty;
``deliver_get`` the sum of those four; ``redeliver`` deliveries and gets with the redelivered
flag; ``ack`` acknowledgements; ``confirm`` publisher confirms (acks) sent;
``return_unroutable`` / ``drop_unroutable`` unroutable publishes returned (mandatory) /
dropped; ``publish_in`` / ``publish_out`` messages published to an exchange / routed from it
to queues.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time

log = logging.getLogger("leveret.stats")

CHANNEL_STATS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver", "deliver_no_ack",
                 "get", "get_no_ack", "get_empty", "redeliver", "ack")
QUEUE_STATS = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "redeliver", "ack")
QUEUE_GAUGES = ("messages", "messages_ready", "messages_unacknowledged")
EXCHANGE_STATS = ("publish_in", "publish_out")
SOCKET_STATS = ("recv_oct", "send_oct")
_DELIVER_GET = ("deliver", "deliver_no_ack", "get", "get_no_ack")
# a queue's levels (Prometheus' queue_coarse_metrics and queue_metrics)
QUEUE_ROW = ("messages_ready", "messages_unacknowledged", "messages", "consumers", "messages_ram",
             "messages_ready_ram", "messages_unacknowledged_ram", "message_bytes_ram", "message_bytes_ready",
             "messages_paged_out", "message_bytes_paged_out")
# a channel's gauges (channel_metrics), then its counters (CHANNEL_STATS)
CHANNEL_GAUGES = ("consumer_count", "messages_unacknowledged", "messages_unconfirmed", "messages_uncommitted",
                  "acks_uncommitted", "prefetch_count", "global_prefetch_count")
# a connection's (connection_coarse_metrics, connection_metrics); None where the socket cannot tell
CONNECTION_ROW = ("recv_oct", "send_oct", "recv_cnt", "send_cnt", "send_pend", "channels")
SLICE = 0.002       # seconds of reporting work (a sample, a listing) between two hand-backs of the loop


async def rest(worked: float) -> None:
    """Hand the loop back after ``worked`` seconds of reporting work, for as long again: a
    sample or a listing then takes at most half of the loop's time while messages wait (a
    plain ``sleep(0)`` gave traffic one loop turn -- a few dozen messages -- per slice)."""
    await asyncio.sleep(worked)


CHURN = ("connections_opened", "connections_closed", "channels_opened", "channels_closed", "queues_declared",
         "queues_created", "queues_deleted")


def channel_counts(ch) -> tuple:
    return (ch.stat_publish, ch.stat_confirm, ch.stat_return, ch.stat_drop, ch.stat_deliver,
            ch.stat_deliver_noack, ch.stat_get, ch.stat_get_noack, ch.stat_get_empty, ch.stat_redeliver,
            ch.stat_ack)


def queue_counters(q) -> tuple:
    """The queue's counters (``QUEUE_STATS``)."""
    return (q.stat_in, q.stat_deliver, q.stat_deliver_noack, q.stat_get, q.stat_get_noack, q.stat_get_empty,
            q.stat_redeliver, q.stat_ack)


def queue_counts(q) -> tuple:
    """The queue's counters, then its gauges (``QUEUE_STATS + QUEUE_GAUGES``)."""
    ready, unacked = q.message_count, q.unacked_count
    return (*queue_counters(q), ready + unacked, ready, unacked)


def queue_levels(q) -> tuple:
    """The queue's ``QUEUE_ROW`` values."""
    ready, unacked = q.message_count, q.unacked_count
    ram = len(q.ready)
    return (ready, unacked, ready + unacked, len(q.consumers), ram + unacked, ram, unacked,
            q.ready_bytes, q.ready_bytes + q.tail_bytes, q.tail, q.tail_bytes)


def channel_gauges(ch) -> tuple:
    """The channel's ``CHANNEL_GAUGES`` values."""
    tx_acks = sum(1 for fn, _ in ch.tx_ops if getattr(fn, "__name__", "") == "_settle") if ch.tx_ops else 0
    return (len(ch.consumers), len(ch.unacked), ch.publish_seq - ch.confirm_upto if ch.confirm else 0,
            len(ch.tx_ops) - tx_acks, tx_acks, ch.prefetch, ch.global_prefetch)


def connection_row(conn, sock: dict | None) -> tuple:
    """The connection's ``CONNECTION_ROW`` values (``sock``: its :func:`socket_stats`)."""
    s = sock or {}
    return tuple(s.get(k) for k in CONNECTION_ROW[:-1]) + (len(conn.sessions),)


def is_client(conn) -> bool:
    """A connection a client opened and that is past ``connection.open`` (not a direct one)."""
    return conn.peer is not None and conn.vhost is not None


class Sums:
    """Column sums of rows (tuples of numbers or None, left out), added a chunk at a time:
    ``rows.append`` then :meth:`fold` (a sample folds at each pause, so its last stretch does
    not sum 10,000 rows at once)."""

    __slots__ = ("sums", "rows")

    def __init__(self, width: int):
        self.sums, self.rows = [0] * width, []

    def fold(self) -> list:
        if self.rows:
            for i, col in enumerate(zip(*self.rows)):
                self.sums[i] += sum(v for v in col if v is not None)
            self.rows.clear()
        return self.sums


class Aggregates:
    """What one sample summed over the node (read by Prometheus' ``/metrics``).

    ``queues``: ``QUEUE_ROW`` summed over every queue; ``channels``: ``CHANNEL_GAUGES +
    CHANNEL_STATS`` over the client channels; ``connections``: ``CONNECTION_ROW`` over the client
    connections; ``by_type``: queue type -> ``QUEUE_STATS`` of its queues, deleted ones included;
    ``node``: the ``rabbitmq_global_*`` counters that are not per queue type -- the
    ``CHANNEL_STATS`` totals (closed channels included), ``received_confirm`` (publishes on
    channels in confirm mode), ``routed`` (publishes neither dropped nor returned) -- and the
    gauges ``publishers`` (open channels that have published) and ``consumers``; ``taken_at``:
    the wall-clock time the sample began."""

    __slots__ = ("taken_at", "queues", "channels", "connections", "by_type", "node")

    def __init__(self, taken_at, queues, channels, connections, by_type, node):
        self.taken_at, self.queues, self.channels, self.connections = taken_at, queues, channels, connections
        self.by_type, self.node = by_type, node


@functools.cache
def _zeros(n: int) -> tuple:
    return (0.0,) * n


def exchange_counts(x, pending: dict) -> tuple:
    """publish_in, publish_out; ``pending``: publishes open channels have not credited yet."""
    n = x.stat_in + pending.get(x, 0)
    return n, n - x.stat_unroutable + x.stat_out_extra


def pending_publishes(broker) -> dict:
    """exchange -> publishes the open channels made to it since they last credited it."""
    out: dict = {}
    for c in broker.connections:
        for ch in c.sessions.values():
            x = ch._pub_x
            if x is not None:
                n = ch.stat_publish - ch._pub_base
                if n:
                    out[x] = out.get(x, 0) + n
    return out


def channels(broker):
    for c in list(broker.connections):
        yield from c.sessions.values()


def with_rates(names: tuple, counts: tuple, rates: tuple | None) -> dict:
    """``{name: n, name_details: {"rate": r}, ...}`` for each of ``names``."""
    out = {}
    for i, name in enumerate(names):
        out[name] = counts[i]
        out[name + "_details"] = {"rate": rates[i] if rates is not None else 0.0}
    return out


def message_stats(names: tuple, counts: tuple, rates: tuple | None) -> dict:
    """RabbitMQ's ``message_stats`` object (with ``deliver_get`` where its parts are)."""
    out = with_rates(names, counts[:len(names)], rates)
    if "deliver" in names:
        idx = [names.index(n) for n in _DELIVER_GET]
        out["deliver_get"] = sum(counts[i] for i in idx)
        out["deliver_get_details"] = {"rate": sum(rates[i] for i in idx) if rates is not None else 0.0}
    return dict(sorted(out.items()))


class Sampler:
    """Samples every object's counters every ``stats_interval`` seconds; keeps the rates."""

    def __init__(self, broker):
        self.broker = broker
        self.interval = broker.settings.stats_interval
        self.last: dict = {}            # object (or "overview") -> (time, counts)
        self.rates: dict = {}           # object -> rates, in the order of its counts
        self.retired = [0] * len(CHANNEL_STATS)     # what closed channels had counted
        self.retired_confirm_publishes = 0          # closed channels' publishes in confirm mode
        self.retired_queues: dict[str, list] = {}   # queue type -> QUEUE_STATS of deleted queues
        self.churn = dict.fromkeys(CHURN, 0)
        self.aggregates: Aggregates | None = None     # the last sample's sums
        self._task = None

    # ------------------------------------------------------------ counters

    def retire(self, ch) -> None:
        """A channel closed: the node totals keep its counts."""
        for i, n in enumerate(channel_counts(ch)):
            self.retired[i] += n
        self.retired_confirm_publishes += ch.publish_seq
        self.churn["channels_closed"] += 1

    def retire_queue(self, q) -> None:
        """A queue was deleted: the per-queue-type totals keep its counts."""
        totals = self.retired_queues.get(q.queue_type, (0,) * len(QUEUE_STATS))
        self.retired_queues[q.queue_type] = [a + b for a, b in zip(totals, queue_counters(q))]
        self.churn["queues_deleted"] += 1

    def overview_counts(self) -> tuple:
        """``CHANNEL_STATS`` of the node, then its ``QUEUE_GAUGES``, now (``/api/overview``)."""
        totals = list(self.retired)
        for ch in channels(self.broker):
            for i, n in enumerate(channel_counts(ch)):
                totals[i] += n
        ready = unacked = 0
        for v in self.broker.vhosts.values():
            for q in v.queues.values():
                ready += q.message_count
                unacked += q.unacked_count
        return (*totals, ready + unacked, ready, unacked)

    def current(self) -> Aggregates:
        """The last sample's :class:`Aggregates`; summed now (without touching the rates) when
        the sampler does not run (``stats_interval`` 0, a broker not started) or has not finished
        its first sample."""
        if self._task is None or self.aggregates is None:
            for _ in self.steps(record=False):
                pass
        return self.aggregates

    # ------------------------------------------------------------ sampling

    def sample(self, now: float | None = None) -> None:
        """Take one sample of everything at once (``now``: the time to record for every object)."""
        for _ in self.steps(now):
            pass

    def steps(self, now: float | None = None, record: bool = True):
        """Take one sample, pausing (a bare ``yield``) after every ``SLICE`` seconds of work
        so that the caller can hand the event loop back: with 10,000 queues a sample is tens of
        milliseconds, which must not hold up messages. Each object's counts are recorded with
        the time they were read (its rate divides by its own interval); the new rates replace
        the old ones only at the end, so a reader always sees one whole sample, and so do the
        new :class:`Aggregates` (``record=False``: only those, the rates stay)."""
        fixed = now
        taken_at = time.time()
        now = time.monotonic() if fixed is None else fixed
        last, rates = self.last, self.rates
        new_last: dict = {}
        new_rates: dict = {}
        work = 0
        started = time.perf_counter()

        def take(key, counts) -> bool:
            """Record ``key``'s counts; True when it is time to hand the loop back."""
            nonlocal work
            if record:
                prev = last.get(key)
                if prev is not None and now > prev[0]:
                    if counts == prev[1]:       # (most of 10,000 queues are idle)
                        new_rates[key] = _zeros(len(counts))
                    else:
                        dt = now - prev[0]
                        new_rates[key] = tuple(round((c - p) / dt, 1) for c, p in zip(counts, prev[1]))
                else:
                    new_rates[key] = rates.get(key)
                new_last[key] = (now, counts)
            work += 1
            return not work & 63 and time.perf_counter() - started > SLICE

        b = self.broker
        # every queue is counted once: alive in this list, or deleted before it (retired)
        retired_queues = {t: tuple(v) for t, v in self.retired_queues.items()}
        queues = [q for v in list(b.vhosts.values()) for q in list(v.queues.values())]
        n = len(QUEUE_STATS)
        levels = Sums(len(QUEUE_ROW))
        by_type = {t: Sums(n) for t in retired_queues}
        for t, counts in retired_queues.items():
            by_type[t].rows.append(counts)
        for q in queues:
            counters = queue_counters(q)
            of_type = by_type.get(q.queue_type) or by_type.setdefault(q.queue_type, Sums(n))
            if any(counters):       # (idle queues add nothing)
                of_type.rows.append(counters)
            if q.deleted:       # (during a pause: its counters are not yet in retired_queues)
                continue
            lv = queue_levels(q)
            if any(lv):
                levels.rows.append(lv)
            if take(q, (*counters, lv[2], lv[0], lv[1])):
                levels.fold()
                for sums in by_type.values():
                    sums.fold()
                yield
                now, started = (time.monotonic() if fixed is None else fixed), time.perf_counter()
        for v in list(b.vhosts.values()):
            pending = pending_publishes(b)
            for x in list(v.exchanges.values()):
                if take(x, exchange_counts(x, pending)):
                    yield
                    now, started = (time.monotonic() if fixed is None else fixed), time.perf_counter()
                    pending = pending_publishes(b)
        # channels and connections in one go (no pause): closed ones are in the retired totals
        totals = Sums(len(CHANNEL_STATS))
        totals.rows.append(self.retired)
        confirm_publishes, publishers = self.retired_confirm_publishes, 0
        channel_rows, connection_rows = Sums(len(CHANNEL_GAUGES) + len(CHANNEL_STATS)), Sums(len(CONNECTION_ROW))
        for c in list(b.connections):
            client = is_client(c)
            for ch in list(c.sessions.values()):
                counts = channel_counts(ch)
                take(ch, counts)
                totals.rows.append(counts)
                confirm_publishes += ch.publish_seq
                publishers += 1 if ch.stat_publish else 0
                if client:
                    channel_rows.rows.append(channel_gauges(ch) + counts)
            sock = socket_stats(c)
            if sock is not None:
                take(c, tuple(sock[k] for k in SOCKET_STATS))
            if client:
                connection_rows.rows.append(connection_row(c, sock))
        q_sums = levels.fold()
        node = dict(zip(CHANNEL_STATS, totals.fold()))
        take("overview", (*node.values(), q_sums[2], q_sums[0], q_sums[1]))
        node["received_confirm"] = confirm_publishes
        node["routed"] = node["publish"] - node["drop_unroutable"] - node["return_unroutable"]
        node["publishers"] = publishers
        node["consumers"] = q_sums[QUEUE_ROW.index("consumers")]
        aggregates = Aggregates(taken_at, q_sums, channel_rows.fold(), connection_rows.fold(),
                                {t: sums.fold() for t, sums in by_type.items()}, node)
        if record:
            self.last, self.rates = new_last, new_rates
        self.aggregates = aggregates

    def rates_of(self, key) -> tuple | None:
        return self.rates.get(key)

    async def _run(self) -> None:
        while True:
            try:
                t = time.perf_counter()
                for _ in self.steps():
                    await rest(time.perf_counter() - t)
                    t = time.perf_counter()
            except Exception:
                log.exception("statistics sample failed")
            await asyncio.sleep(self.interval)

    def start(self, loop) -> None:
        if self._task is None and self.interval > 0:
            self._task = loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


def socket_stats(conn) -> dict | None:
    """The socket's byte and packet counts, from the I/O layer (None without a socket)."""
    fn = getattr(conn, "socket_stats", None)
    if fn is None:
        return None
    try:
        return fn()
    except OSError:
        return None
