"""``broker/exchanges.py``: the topic trie against a small model of RabbitMQ's topic matching,
and the direct, fanout and headers strategies, in process.

The model: a binding key's words are matched against the routing key's words; ``*`` matches
exactly one word, ``#`` zero or more (RabbitMQ's ``rabbit_exchange_type_topic``); words are
split on ``.``, and an empty key has no words at all (``split_topic_key(<<>>) -> []``), so
``*`` does not match it and ``#`` does.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker_harness import make_broker, message, queue
from leveret.amqp.codec import Typed
from leveret.broker.exchanges import Binding


def model_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(model_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and model_match(rest, words[1:])


def words(key: str) -> list[str]:
    return key.split(".") if key else []


WORD = st.sampled_from(["a", "b", "c", ""])
KEY = st.lists(WORD, min_size=1, max_size=4).map(".".join)
PATTERN = st.lists(st.sampled_from(["a", "b", "*", "#", ""]), min_size=1, max_size=4).map(".".join)


def bound(kind: str, keys_args: list):
    b = make_broker()
    v = b.vhosts["/"]
    x = v.declare_exchange("x", kind, False, False, False, {})
    qs = []
    for i, (key, args) in enumerate(keys_args):
        q = queue(b, f"q{i}")
        v.bind(x, q, key, args or {})
        qs.append(q)
    return b, x, qs


def routed(b, x, key: str, **props) -> set:
    out: list = []
    x.route(key, message(b, routing_key=key, **props), out)
    assert len(out) == len(set(out)) or x.type_name == "topic"   # topic may repeat; the caller dedups
    return {q.name for q in out}


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERN, min_size=1, max_size=5), KEY)
def test_topic_trie_matches_the_model(patterns, key):
    b, x, qs = bound("topic", [(p, None) for p in patterns])
    want = {q.name for q, p in zip(qs, patterns) if model_match(words(p), words(key))}
    assert routed(b, x, key) == want


@settings(max_examples=100, deadline=None)
@given(st.lists(PATTERN, min_size=2, max_size=5), KEY)
def test_topic_unbind_leaves_the_rest_routing(patterns, key):
    b, x, qs = bound("topic", [(p, None) for p in patterns])
    v = b.vhosts["/"]
    v.unbind(x, qs[0], patterns[0], {})
    want = {q.name for q, p in list(zip(qs, patterns))[1:] if model_match(words(p), words(key))}
    assert routed(b, x, key) == want


def test_direct_and_fanout():
    b, x, qs = bound("direct", [("k", None), ("k", None), ("other", None)])
    assert routed(b, x, "k") == {"q0", "q1"} and routed(b, x, "nope") == set()
    b, x, qs = bound("fanout", [("k", None), ("", None)])
    assert routed(b, x, "whatever") == {"q0", "q1"}


def test_headers_all_any_and_x_prefixed_keys():
    S = lambda v: Typed("S", v.encode())     # noqa: E731
    b, x, qs = bound("headers", [
        ("", {"x-match": S("all"), "a": S("1"), "b": S("2")}),
        ("", {"x-match": S("any"), "a": S("1"), "b": S("9")}),
        ("", {"x-match": S("all-with-x"), "x-k": S("v")}),
        ("", {"x-match": S("all"), "x-k": S("v")}),          # x- keys are ignored by all/any
    ])
    assert routed(b, x, "", headers={"a": "1", "b": "2"}) == {"q0", "q1", "q3"}
    assert routed(b, x, "", headers={"a": "1"}) == {"q1", "q3"}
    assert routed(b, x, "", headers={"x-k": "v"}) == {"q2", "q3"}


def test_binding_identity_includes_arguments():
    b = make_broker()
    x = b.vhosts["/"].exchanges["amq.direct"]
    q = queue(b)
    one = Binding(x, q, "k", {"a": Typed("S", b"1")})
    two = Binding(x, q, "k", {"a": Typed("S", b"2")})
    assert one.identity != two.identity and one.identity == Binding(x, q, "k", {"a": Typed("S", b"1")}).identity
