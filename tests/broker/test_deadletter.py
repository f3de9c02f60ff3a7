"""``broker/deadletter.py``: the x-death builder and cycle detection, in process. (The bytes
on the wire are pinned against RabbitMQ by ``tests/conformance/test_dead_letter.py``.)"""
from __future__ import annotations

from broker_harness import make_broker, message
from leveret.amqp.codec import table_plain
from leveret.broker.deadletter import is_cycle, make_dead_letter

B = make_broker()


def deaths_of(m) -> list:
    return table_plain(m.properties.headers["x-death"])


def test_first_death_headers_and_entry():
    m = message(B, b"body", exchange="ex", routing_key="rk", expiration="5000", headers={"CC": ["cc1"]})
    new, keys, _ = make_dead_letter(m, "q1", "expired", "dlx", None, 1700000000)
    h = table_plain(new.properties.headers)
    (d,) = deaths_of(new)
    assert d == {"count": 1, "reason": "expired", "queue": "q1", "time": 1700000000, "exchange": "ex",
                 "routing-keys": ["rk", "cc1"], "original-expiration": "5000"}
    assert (h["x-first-death-reason"], h["x-first-death-queue"], h["x-first-death-exchange"]) == \
        ("expired", "q1", "ex")
    assert new.properties.expiration is None and new.body == b"body" and new.exchange == "dlx"
    assert keys == ["rk", "cc1"]           # without a DLX routing key: the original keys


def test_a_second_death_in_the_same_queue_for_the_same_reason_counts_up():
    m = message(B, b"x", routing_key="rk")
    once, _, _ = make_dead_letter(m, "q1", "rejected", "dlx", None, 1)
    twice, _, _ = make_dead_letter(once, "q1", "rejected", "dlx", None, 2)
    other, _, deaths = make_dead_letter(twice, "q2", "maxlen", "dlx", "new-key", 3)
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths_of(twice)] == [("q1", "rejected", 2)]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths_of(other)] == \
        [("q2", "maxlen", 1), ("q1", "rejected", 2)]
    assert other.routing_key == "new-key"
    assert not is_cycle("q1", deaths)        # a rejection on the way: not a cycle
    a, _, _ = make_dead_letter(m, "q1", "expired", "dlx", None, 1)
    _, _, deaths = make_dead_letter(a, "q2", "expired", "dlx", None, 2)
    assert is_cycle("q1", deaths) and not is_cycle("q3", deaths)


def test_the_dlx_routing_key_drops_cc():
    m = message(B, b"x", routing_key="rk", headers={"CC": ["a"]})
    new, keys, _ = make_dead_letter(m, "q", "rejected", "dlx", "dl", 1)
    assert keys == ["dl"] and "CC" not in new.properties.headers


def test_last_death_headers_only_in_313_mode():
    """RabbitMQ 3.10 sets no x-last-death-*; 3.13+ (``last_death``, which --rabbitmq4 turns on)
    sets them on every death, the second one overwriting the first."""
    m = message(B, b"x", exchange="ex", routing_key="rk")
    plain, _, _ = make_dead_letter(m, "q1", "expired", "dlx", None, 1)
    assert not [k for k in plain.properties.headers if k.startswith("x-last-death-")]
    once, _, _ = make_dead_letter(m, "q1", "expired", "dlx", None, 1, last_death=True)
    twice, _, _ = make_dead_letter(once, "q2", "rejected", "dlx2", None, 2, last_death=True)
    h = table_plain(twice.properties.headers)
    assert (h["x-last-death-reason"], h["x-last-death-queue"], h["x-last-death-exchange"]) == \
        ("rejected", "q2", "dlx")
    assert (h["x-first-death-reason"], h["x-first-death-queue"]) == ("expired", "q1")
