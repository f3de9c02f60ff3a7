"""``broker/queue/arguments.py``: the one argument table, and what each type reads from it.

The orders and sets pinned here are RabbitMQ 3.10's (``rabbit_amqqueue:declare_args/0``,
``rabbit_queue_type`` per type); the conformance tests check the resulting replies against a
running RabbitMQ.
"""
from __future__ import annotations

import pytest

from broker_harness import typed
from leveret.amqp.codec import Typed
from leveret.amqp.errors import ChannelError
from leveret.broker.policy import ACCEPTED, CHECKS, REGISTERED
from leveret.broker.queue import ClassicQueue, QuorumQueue
from leveret.broker.queue.arguments import ARGUMENTS, VALIDATED, check_queue_args, effective_settings

CLASSIC, QUORUM = ClassicQueue.RULES, QuorumQueue.RULES
WHAT = "queue 'q' in vhost '/'"


def test_validation_and_equivalence_orders():
    assert [a.name for a in VALIDATED] == [
        "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
        "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-max-priority", "x-overflow",
        "x-queue-mode", "x-single-active-consumer", "x-consumer-timeout", "x-message-deduplication",
        "x-cache-size", "x-cache-ttl"]
    # each type's queue_arguments list (rabbit_classic_queue / rabbit_quorum_queue capabilities())
    assert CLASSIC.equivalence == (
        "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
        "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode", "x-queue-version",
        "x-single-active-consumer", "x-queue-type", "x-queue-master-locator")
    assert QUORUM.equivalence == (
        "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-expires",
        "x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-overflow",
        "x-single-active-consumer", "x-queue-type", "x-quorum-initial-group-size", "x-delivery-limit",
        "x-message-ttl", "x-queue-leader-locator")


def test_what_each_type_refuses_and_which_policy_keys_it_ignores():
    assert CLASSIC.refused == {"x-delivery-limit", "x-quorum-initial-group-size", "x-dead-letter-strategy",
                               "x-max-in-memory-length", "x-max-in-memory-bytes", "x-queue-leader-locator"}
    assert QUORUM.refused == {"x-max-priority", "x-queue-mode", "x-queue-master-locator", "x-queue-version"}
    assert CLASSIC.policy_unsupported == {"delivery-limit", "dead-letter-strategy", "max-in-memory-length",
                                          "max-in-memory-bytes", "queue-leader-locator"}
    assert QUORUM.policy_unsupported == {"queue-mode", "queue-version", "queue-master-locator", "ha-mode",
                                         "ha-params", "ha-sync-mode", "ha-sync-batch-size",
                                         "ha-promote-on-shutdown", "ha-promote-on-failure"}
    # every key of the table is supported by some type
    assert {a.key for a in ARGUMENTS} == CLASSIC.supported | QUORUM.supported


def test_policies_read_the_same_table():
    # (features such as federation add their own keys when imported: REGISTERED)
    assert set(CHECKS) - REGISTERED == {a.policy for a in ARGUMENTS if a.policy_check} | {"alternate-exchange"}
    assert set(ACCEPTED) == {a.policy for a in ARGUMENTS if a.policy and not a.policy_check}


@pytest.mark.parametrize("args, rules, text", [
    (typed(x_delivery_limit=3), CLASSIC,
     "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type "
     "rabbit_classic_queue"),
    (typed(x_max_priority=3), QUORUM,
     "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type "
     "rabbit_quorum_queue"),
    (typed(x_expires=0), CLASSIC, "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'q' in vhost '/': "
                                  "{value_zero,0}"),
    (typed(x_overflow="sideways"), QUORUM,
     "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow"),
    ({"x-dead-letter-exchange": Typed("l", 1)}, CLASSIC,
     "PRECONDITION_FAILED - invalid type 'long' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"),
    # the first failure in table order, whatever the declare's order
    ({**typed(x_max_length=-1), **typed(x_message_ttl=-5)}, CLASSIC,
     "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-5}"),
])
def test_check_queue_args_texts(args, rules, text):
    with pytest.raises(ChannelError) as e:
        check_queue_args(args, WHAT, rules)
    assert e.value.reply_code == 406 and e.value.reply_text == text


def test_unknown_arguments_are_accepted():
    check_queue_args({"x-whatever": Typed("S", b"v")}, WHAT, CLASSIC)


def test_policy_precedence():
    args = typed(x_message_ttl=5000, x_max_length=10, x_dead_letter_exchange="mine", x_overflow="reject-publish")
    pol = {"message-ttl": 1000, "max-length": 50, "dead-letter-exchange": "theirs", "overflow": "drop-head",
           "expires": 9000}
    eff = effective_settings(args, pol, CLASSIC)
    # numeric limits: the lower wins; others: the queue's own argument wins
    assert (eff["message-ttl"], eff["max-length"], eff["dead-letter-exchange"]) == (1000, 10, "mine")
    assert (eff["overflow"], eff["expires"]) == ("reject-publish", 9000)
    # a quorum queue takes expires and overflow from the policy
    assert effective_settings(args, pol, QUORUM)["overflow"] == "drop-head"
    assert effective_settings(typed(x_expires=100), pol, QUORUM)["expires"] == 9000
    assert effective_settings(typed(x_expires=100), pol, CLASSIC)["expires"] == 100
