"""``broker/queue/ready.py``: requeued messages go back to their original positions; priority
levels are served highest first, FIFO within a level."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker_harness import make_broker, message
from leveret.broker.queue.ready import PriorityReady, Ready, by_id

BROKER = make_broker()


def msgs(n, **props):
    return [message(BROKER, str(i).encode(), **props) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.data())
def test_merge_puts_requeued_messages_back_in_id_order(n, data):
    all_ = msgs(n)
    taken = data.draw(st.lists(st.sampled_from(all_), unique_by=by_id, min_size=1))
    r = Ready(m for m in all_ if m not in taken)
    r.merge(sorted(taken, key=by_id))
    assert [m.id for m in r] == [m.id for m in all_]


def test_priority_levels_highest_first_fifo_within_a_level_capped_at_max():
    p = PriorityReady(5)
    order = [(1, b"a"), (9, b"b"), (0, b"c"), (5, b"d"), (1, b"e"), (None, b"f")]
    for prio, body in order:
        m = message(BROKER, body, **({"priority": prio} if prio is not None else {}))
        p.append(m)
    assert len(p) == 6 and p[0].body == b"b"
    out = [p.popleft().body for _ in range(6)]
    # 9 is capped at 5 and arrived before d: FIFO within the level; no priority counts as 0
    assert out == [b"b", b"d", b"a", b"e", b"c", b"f"]
    assert not p


def test_priority_merge_keeps_the_count():
    p = PriorityReady(3)
    ms = [message(BROKER, b"%d" % i, priority=i % 4) for i in range(8)]
    for m in ms:
        p.append(m)
    taken = [p.popleft() for _ in range(3)]
    p.merge(sorted(taken, key=by_id))
    assert len(p) == 8 and [m.id for m in p] == [m.id for m in sorted(ms, key=lambda m: (-m.priority, m.id))]
