"""``broker/flow.py``: one FlowControl per broker owns the thresholds, the held publishers and
the memory window (two brokers in one process no longer share a window)."""
from __future__ import annotations

from broker_harness import FakeChannel, consumer, make_broker, message, queue


class FakeConn:
    """What flow control needs of a connection."""

    def __init__(self, consumes: bool = False):
        self.consumes = consumes
        self.held_changes: list = []

    def has_consumers(self) -> bool:
        return self.consumes

    def set_flow_held(self, held: bool) -> None:
        self.held_changes.append(held)


class Timer:
    def __init__(self, fn):
        self.fn, self.cancelled = fn, False

    def cancel(self):
        self.cancelled = True


def setup(**settings):
    b = make_broker(flow_backlog=5, flow_resume=3, **settings)
    timers = []
    b.call_later = lambda delay, fn: timers.append(Timer(fn)) or timers[-1]
    q = queue(b)
    ch = FakeChannel()
    c = consumer(q, "c", ch, prefetch=1)
    for i in range(8):
        q.enqueue(message(b, b"%d" % i))
    return b, q, ch, c, timers


def drain_one(q, ch, c):
    ch.settle(c, q, ch.delivered.pop()[1])
    q.dispatch()


def test_a_drained_backlog_holds_a_publisher_until_below_the_resume_mark():
    b, q, ch, c, timers = setup()
    pub = FakeConn()
    b.flow.backlog_seen(pub, q)         # 7 ready, and the queue delivered since the last look
    assert pub.held_changes == [True] and q.flow_held and b.flow.is_held(pub)
    for _ in range(4):                  # 6, 5, 4, 3 ready: still held
        drain_one(q, ch, c)
    assert pub.held_changes == [True] and len(q.ready) == 3
    drain_one(q, ch, c)                 # 2 ready: below the resume mark (3)
    assert pub.held_changes == [True, False] and not q.flow_held and timers[0].cancelled
    # a queue that has not delivered since the last look holds nobody
    other = FakeConn()
    b.flow.backlog_seen(other, q)
    assert other.held_changes == [True]
    b.flow.release(q)
    b.flow.backlog_seen(other, q)
    assert other.held_changes == [True, False]


def test_a_connection_that_consumes_is_never_held_nor_for_an_undrained_queue():
    b, q, ch, c, timers = setup()
    me = FakeConn(consumes=True)
    b.flow.backlog_seen(me, q)
    assert me.held_changes == []
    idle = queue(b, "idle")
    for i in range(8):
        idle.enqueue(message(b, b"x"))
    other = FakeConn()
    b.flow.backlog_seen(other, idle)
    assert other.held_changes == []


def test_the_hold_ends_after_max_pause_and_when_the_queue_loses_its_consumers():
    b, q, ch, c, timers = setup()
    pub, pub2 = FakeConn(), FakeConn()
    b.flow.backlog_seen(pub, q)
    timers[0].fn()                                           # max_pause passed
    assert pub.held_changes == [True, False] and not b.flow.is_held(pub)
    drain_one(q, ch, c)
    b.flow.backlog_seen(pub2, q)
    assert pub2.held_changes == [True]
    q.remove_consumer(c)                                     # nobody drains it: let go
    assert pub2.held_changes == [True, False]


def test_memory_windows_are_per_broker():
    a, b = make_broker(), make_broker()
    qa, qb = queue(a), queue(b)
    a.flow.set_paging(True)
    assert (qa.ram_msgs, qa.ram_bytes) == (a.settings.paging_ram_msgs, a.settings.paging_ram_bytes)
    assert (qb.ram_msgs, qb.ram_bytes) == (b.settings.ram_msgs, b.settings.ram_bytes)
    assert queue(a, "new").ram_msgs == a.settings.paging_ram_msgs     # new queues get the current window
    a.flow.set_paging(False)
    assert qa.ram_msgs == a.settings.ram_msgs
