"""``broker/policy.py``: validation texts, matching and precedence between policies, in process.
(Each text is pinned against RabbitMQ by ``tests/conformance/test_policies.py``.)"""
from __future__ import annotations

import pytest

from broker_harness import make_broker, queue, typed
from leveret.broker.policy import Policy, best, validate


@pytest.mark.parametrize("args, text", [
    (("", ".*", {"max-length": 1}, 0, "all"), "policy name must not be empty"),
    (("p", ".*", {}, 0, "all"), "no policy provided"),
    (("p", ".*", {"max-length": -1}, 0, "all"), "-1 is not a valid maximum length"),
    (("p", ".*", {"overflow": "x"}, 0, "all"), '<<"x">> is not a valid overflow value'),
    (("p", ".*", {"nope": 1}, 0, "all"), '[{<<"nope">>,1}] are not recognised policy settings'),
    (("p", ".*", {"max-length": 1}, 0, "bindings"),
     "apply-to 'bindings' unrecognised; should be 'queues', 'exchanges' or 'all'"),
    (("p", ".*", {"max-length": 1}, "1", "all"), '<<"1">> is not a valid priority'),
])
def test_validation_texts(args, text):
    with pytest.raises(ValueError) as e:
        validate(*args)
    assert str(e.value) == text


def test_highest_priority_match_that_the_type_supports_wins():
    b = make_broker()
    classic = queue(b, "orders.eu")
    quorum = queue(b, "orders.us", durable=True, arguments=typed(x_queue_type="quorum"))
    low = Policy("/", "low", "^orders", {"max-length": 5}, 1)
    high = Policy("/", "high", "eu$", {"max-length": 3}, 9)
    limit = Policy("/", "limit", "^orders", {"delivery-limit": 2}, 5)
    ex_only = Policy("/", "ex", ".*", {"alternate-exchange": "ae"}, 20, "exchanges")
    pols = [low, high, limit, ex_only]
    assert best(pols, classic) is high
    assert best(pols, quorum) is limit            # delivery-limit does not apply to a classic queue
    assert best([low, limit], classic) is low
    assert best(pols, b.vhosts["/"].exchanges["amq.direct"]) is ex_only


def test_a_policy_applies_at_once_and_the_lower_limit_wins():
    b = make_broker()
    q = queue(b, "q", arguments=typed(x_max_length=10))
    b.set_policy("cap", "^q$", {"max-length": 4, "message-ttl": 100})
    assert (q.max_len, q.msg_ttl, q.policy.name) == (4, 100, "cap")
    b.clear_policy("cap")
    assert (q.max_len, q.msg_ttl, q.policy) == (10, None, None)
