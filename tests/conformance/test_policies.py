"""Policies (rabbitmqctl set_policy / clear_policy), as RabbitMQ 3.10.8 applies them.

The ``pol`` fixture works against both brokers: with LEVERET_TEST_URL set it drives RabbitMQ through
``rabbitmqctl``; otherwise it starts an in-process Leveret (tests/inproc.ThreadedBroker) and calls
``broker.set_policy / clear_policy / list_policies`` on its loop. Either way a refused policy is a
ValueError carrying RabbitMQ's validation message, and the tests talk AMQP to ``pol.url``.

RabbitMQ 3.10 rules pinned here (rabbit_policy.erl, rabbit_queue_type_util:args_policy_lookup/3,
rabbit_amqqueue_process:process_args_policy/1, rabbit_quorum_queue:ra_machine_config/1):
  * pattern: a regex searched (unanchored) in the entity name; apply-to 'queues' | 'exchanges' | 'all'.
  * exactly ONE policy applies to an entity: the matching one with the highest priority; definitions
    of different policies are never merged. A policy containing a key the queue type does not support
    (3.10: classic queues do not support 'delivery-limit' and 'dead-letter-strategy'; quorum queues do
    not support 'queue-mode', 'max-priority', 'ha-*', ...) does not match that queue at all.
  * policy vs the queue's own x-argument:
      classic: message-ttl, expires, max-length, max-length-bytes -> the lower wins;
               dead-letter-exchange, dead-letter-routing-key, overflow (and queue-mode) -> the argument wins.
      quorum:  message-ttl, max-length, max-length-bytes, delivery-limit -> the lower wins;
               overflow, expires -> the POLICY wins; dead-letter-exchange/-routing-key -> the argument wins.
      exchange alternate-exchange -> the argument wins.
  * set/clear take effect on existing entities at once (a queue over a new max-length is truncated);
    a new message-ttl only affects messages enqueued afterwards.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import uuid

import pika
import pytest

from brokeradmin import rabbit_password_hash

from .helpers import bodies, count, published, queue_exists
from .helpers import wait_count as _wait_count

EXTERNAL = os.environ.get("LEVERET_TEST_URL")


# --------------------------------------------------------------------------- the fixture
class _Base:
    url: str

    def __init__(self):
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.conns: list[pika.BlockingConnection] = []
        self.names: set[tuple[str, str]] = set()

    # AMQP side
    def connect(self) -> pika.BlockingConnection:
        c = pika.BlockingConnection(pika.URLParameters(self.url))
        self.conns.append(c)
        return c

    def channel(self):
        return self.connect().channel()

    def queue(self, ch, name, quorum=False, **args):
        """Declare a (durable, if quorum) queue that is deleted after the test."""
        if quorum:
            args["x-queue-type"] = "quorum"
        ch.queue_declare(name, durable=quorum, arguments=args or None)
        self.queues.append(name)
        return name

    def exchange(self, ch, name, xtype="fanout", **args):
        ch.exchange_declare(name, xtype, arguments=args or None)
        self.exchanges.append(name)
        return name

    def cleanup(self):
        for c in self.conns:
            if c.is_open:
                c.close()
        self.conns.clear()
        if self.queues or self.exchanges:
            c = pika.BlockingConnection(pika.URLParameters(self.url))
            try:
                for n in self.queues:
                    c.channel().queue_delete(n)
                for n in self.exchanges:
                    c.channel().exchange_delete(n)
            finally:
                c.close()
        self.queues.clear()
        self.exchanges.clear()
        self.clear_leftovers()

    def try_set_many(self, specs) -> list:
        """Validation only: for each (name, pattern, definition, priority, apply_to) try to set it and
        return RabbitMQ's refusal message, or None if it was accepted (it is then removed again)."""
        out = []
        for name, pattern, definition, priority, apply_to in specs:
            try:
                self.set(name, pattern, definition, priority=priority, apply_to=apply_to)
            except ValueError as e:
                out.append(str(e))
            else:
                self.clear(name)
                out.append(None)
        return out


def _erl_bin(s: str) -> str:
    """An Erlang expression for the binary ``s`` (base64: no quoting trouble through the CLI)."""
    return f'base64:decode(<<"{base64.b64encode(s.encode()).decode()}">>)'


def _cli_message(text: str) -> str:
    """The message of a refused policy as rabbitmqctl prints it (after "Validation failed" and a blank line)."""
    if "Validation failed" in text:
        return text.split("Validation failed", 1)[1].strip()
    if "Error:" in text:
        return text.split("Error:", 1)[1].strip()
    return text.strip()


class RabbitPolicies(_Base):
    """rabbitmqctl set_policy / clear_policy / list_policies (about 0.6 s per call). Policies a test
    leaves behind are cleared together at the end of the module (one ``rabbitmqctl eval``): their
    patterns are unique to their test, so they do not disturb the others meanwhile."""

    def __init__(self, url):
        super().__init__()
        self.url = url
        self.leftover: set[tuple[str, str]] = set()

    @staticmethod
    def _error(r) -> ValueError:
        return ValueError(_cli_message(r.stderr or r.stdout or ""))

    def _eval(self, expr: str):
        r = subprocess.run(["rabbitmqctl", "eval", "-q", "--formatter", "json", expr],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["value"]

    def try_set_many(self, specs) -> list:
        """One ``rabbitmqctl eval`` running what set_policy runs (rabbit_policy:parse_set/7) per spec;
        accepted ones are deleted again."""
        items = ",".join(f"{{{_erl_bin(n)},{_erl_bin(p)},{_erl_bin(json.dumps(d))},{pr:d},{_erl_bin(a)}}}"
                         for n, p, d, pr, a in specs)
        expr = ('lists:map(fun({N,P,D,Pr,A}) -> case rabbit_policy:parse_set(<<"/">>, N, P, D, Pr, A, '
                '<<"leveret-tests">>) of ok -> rabbit_policy:delete(<<"/">>, N, <<"leveret-tests">>), ok; '
                '{error_string, S} -> iolist_to_binary(S); {error, F, As} -> iolist_to_binary(io_lib:format(F, As)) '
                f'end end, [{items}]).')
        return [None if v == "ok" else _cli_message(v) for v in self._eval(expr)]

    def clear_leftovers(self):
        self.leftover |= self.names
        self.names.clear()

    def clear_all_leftovers(self):
        if not self.leftover:
            return
        items = ",".join(f"{{{_erl_bin(v)},{_erl_bin(n)}}}" for n, v in self.leftover)
        self._eval(f'[rabbit_policy:delete(V, N, <<"leveret-tests">>) || {{V, N}} <- [{items}]], ok.')
        self.leftover.clear()

    def set(self, name, pattern, definition, *, vhost="/", priority=0, apply_to="all"):
        r = subprocess.run(["rabbitmqctl", "set_policy", "-p", vhost, "--priority", str(priority),
                            "--apply-to", apply_to, name, pattern, json.dumps(definition)],
                           capture_output=True, text=True, timeout=30, check=False)
        if r.returncode != 0:
            raise self._error(r)
        self.names.add((name, vhost))

    def clear(self, name, vhost="/"):
        self.names.discard((name, vhost))
        r = subprocess.run(["rabbitmqctl", "clear_policy", "-p", vhost, name],
                           capture_output=True, text=True, timeout=30, check=False)
        if r.returncode != 0:
            raise self._error(r)

    def list(self, vhost=None):
        if vhost is None:
            r = subprocess.run(["rabbitmqctl", "list_vhosts", "-q", "--formatter", "json", "name"],
                               capture_output=True, text=True, timeout=30, check=False)
            vhosts = [v["name"] for v in json.loads(r.stdout)]
        else:
            vhosts = [vhost]
        out = []
        for v in vhosts:
            r = subprocess.run(["rabbitmqctl", "list_policies", "-q", "-p", v, "--formatter", "json"],
                               capture_output=True, text=True, timeout=30, check=False)
            if r.returncode != 0:
                raise self._error(r)
            for p in json.loads(r.stdout or "[]"):
                p["definition"] = json.loads(p["definition"])   # the CLI gives it as a JSON string
                out.append(p)
        return out


class LeveretPolicies(_Base):
    """The in-process broker's API, called on its loop."""

    def __init__(self, tb):
        super().__init__()
        self.tb = tb
        self.url = tb.url

    def set(self, name, pattern, definition, *, vhost="/", priority=0, apply_to="all"):
        self.tb.call(lambda: self.tb.broker.set_policy(name, pattern, definition, vhost=vhost,
                                                       priority=priority, apply_to=apply_to))
        self.names.add((name, vhost))

    def clear(self, name, vhost="/"):
        self.names.discard((name, vhost))
        self.tb.call(lambda: self.tb.broker.clear_policy(name, vhost=vhost))

    def list(self, vhost=None):
        return self.tb.call(lambda: self.tb.broker.list_policies(vhost))

    def clear_leftovers(self):
        for name, vhost in list(self.names):
            try:
                self.clear(name, vhost)
            except ValueError:
                pass
        self.names.clear()

    def clear_all_leftovers(self):
        pass


@pytest.fixture(scope="module")
def _pol_module():
    if EXTERNAL:
        p = RabbitPolicies(EXTERNAL)
        yield p
        p.cleanup()
        p.clear_all_leftovers()
        return
    from inproc import ThreadedBroker
    tb = ThreadedBroker()
    p = LeveretPolicies(tb)
    try:
        yield p
        p.cleanup()
    finally:
        tb.stop()


@pytest.fixture
def pol(_pol_module):
    """Policies + AMQP for one test: policies set through it, queues/exchanges declared through
    ``pol.queue``/``pol.exchange`` and connections from ``pol.connect`` are removed afterwards."""
    yield _pol_module
    _pol_module.cleanup()


@pytest.fixture
def pre(request) -> str:
    """A unique, regex-safe name prefix for this test."""
    return f"pol.{re.sub(r'[^a-zA-Z0-9]', '_', request.node.name[:30])}.{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- helpers
def wait_for(fn, timeout=2.0, interval=0.02):
    """Poll ``fn`` until it returns a truthy value (returned) or ``timeout`` passes (last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def wait_count(ch, q, n, timeout=2.0) -> int:
    """``helpers.wait_count`` with this module's longer default wait (2 s)."""
    return _wait_count(ch, q, n, timeout)


def publish_n(ch, q, n, prefix="m"):
    for i in range(n):
        ch.basic_publish("", q, f"{prefix}{i}".encode())


# --------------------------------------------------------------------------- lifecycle
def test_policy_applies_at_once_and_clearing_reverts(pol, pre):
    """A max-length policy truncates an existing queue at once (drop-head: the newest stay) and applies
    to queues declared later; clearing it lifts the limit at once."""
    ch = pol.channel()
    q1 = pol.queue(ch, pre + ".q1")
    publish_n(ch, q1, 5)
    assert wait_count(ch, q1, 5) == 5
    pol.set(pre, "^" + re.escape(pre) + r"\.", {"max-length": 2})
    assert wait_count(ch, q1, 2) == 2
    q2 = pol.queue(ch, pre + ".q2")
    publish_n(ch, q2, 4)
    assert wait_count(ch, q2, 2) == 2
    assert bodies(ch, q1) == [b"m3", b"m4"]
    pol.clear(pre)
    publish_n(ch, q1, 4)
    publish_n(ch, q2, 2, "n")
    assert wait_count(ch, q1, 4) == 4
    assert wait_count(ch, q2, 4) == 4
    assert bodies(ch, q2) == [b"m2", b"m3", b"n0", b"n1"]


def test_message_ttl_policy_affects_new_messages_only(pol, pre):
    """message-ttl from a policy: messages already queued keep living (their expiry was fixed at
    enqueue), messages published afterwards expire."""
    ch = pol.channel()
    q = pol.queue(ch, pre + ".q")
    ch.basic_publish("", q, b"old")
    assert wait_count(ch, q, 1) == 1
    pol.set(pre, "^" + re.escape(pre), {"message-ttl": 100})
    time.sleep(0.05)
    ch.basic_publish("", q, b"new")
    time.sleep(0.25)
    assert bodies(ch, q) == [b"old"]


def test_expires_policy_deletes_unused_queue(pol, pre):
    """expires from a policy deletes an unused existing queue. (Do not poll with passive declares:
    queue.declare, passive or not, counts as a use and restarts the expiry timer.)"""
    ch = pol.channel()
    q = pol.queue(ch, pre + ".q")
    pol.set(pre, "^" + re.escape(pre), {"expires": 300})
    time.sleep(0.15)
    assert queue_exists(pol.connect, q)           # a passive declare is a use: the 300 ms start again here
    time.sleep(0.6)
    assert not queue_exists(pol.connect, q)


def test_overflow_reject_publish_policy(pol, pre):
    """max-length + overflow reject-publish from a policy: the publish over the limit is nacked."""
    ch = pol.channel()
    q = pol.queue(ch, pre + ".q")
    pol.set(pre, "^" + re.escape(pre), {"max-length": 1, "overflow": "reject-publish"})
    ch.confirm_delivery()
    assert [published(ch, q, b) for b in (b"1", b"2")] == [True, False]
    assert bodies(ch, q) == [b"1"]


def test_dead_letter_policy(pol, pre):
    """dead-letter-exchange + dead-letter-routing-key from a policy: a rejected message is
    dead-lettered to that exchange with that routing key."""
    ch = pol.channel()
    dlx = pol.exchange(ch, pre + ".dlx", "direct")
    sink = pol.queue(ch, pre + ".sink")
    ch.queue_bind(sink, dlx, "dead")
    q = pol.queue(ch, pre + ".q")
    pol.set(pre, "^" + re.escape(pre) + r"\.q$", {"dead-letter-exchange": dlx, "dead-letter-routing-key": "dead"})
    ch.basic_publish("", q, b"m")
    assert wait_count(ch, q, 1) == 1
    m, _, _ = ch.basic_get(q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert wait_count(ch, sink, 1) == 1
    m, p, b = ch.basic_get(sink, auto_ack=True)
    assert (b, m.exchange, m.routing_key) == (b"m", dlx, "dead")
    assert p.headers["x-death"][0]["reason"] == "rejected"


def test_delivery_limit_policy_quorum(pol, pre):
    """delivery-limit 1 from a policy on a quorum queue: the message is delivered twice
    (x-delivery-count 0 then 1), and dropped when returned the second time."""
    ch = pol.channel()
    q = pol.queue(ch, pre + ".q", quorum=True)
    pol.set(pre, "^" + re.escape(pre), {"delivery-limit": 1})
    ch.basic_publish("", q, b"m")
    seen = []
    for _ in range(3):
        m = wait_for(lambda: ch.basic_get(q)[0], timeout=0.5)
        if m is None:
            break
        seen.append(m.redelivered)
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert seen == [False, True]
    assert count(ch, q) == 0


def test_alternate_exchange_policy(pol, pre):
    """alternate-exchange from a policy: unroutable messages go there."""
    ch = pol.channel()
    ae = pol.exchange(ch, pre + ".ae", "fanout")
    sink = pol.queue(ch, pre + ".sink")
    ch.queue_bind(sink, ae, "")
    x = pol.exchange(ch, pre + ".x", "direct")
    pol.set(pre, "^" + re.escape(pre) + r"\.x$", {"alternate-exchange": ae}, apply_to="exchanges")
    ch.basic_publish(x, "nowhere", b"m")
    assert wait_count(ch, sink, 1) == 1


def test_redefining_a_policy_replaces_it(pol, pre):
    """set_policy with an existing name replaces the whole definition (nothing of the old one remains)
    and takes effect at once."""
    ch = pol.channel()
    q = pol.queue(ch, pre + ".q")
    pol.set(pre, "^" + re.escape(pre), {"max-length": 3})
    publish_n(ch, q, 5)
    assert wait_count(ch, q, 3) == 3
    pol.set(pre, "^" + re.escape(pre), {"max-length-bytes": 4})       # "m2","m3","m4" = 6 bytes
    assert wait_count(ch, q, 2) == 2
    publish_n(ch, q, 1, "x")                                          # max-length gone, bytes limit holds
    assert wait_count(ch, q, 2) == 2
    assert bodies(ch, q) == [b"m4", b"x0"]


# --------------------------------------------------------------------------- matching
def test_pattern_is_an_unanchored_regex(pol, pre):
    """The pattern is searched anywhere in the name (like re:run / re.search); '.' is a regex dot."""
    ch = pol.channel()
    qs = {n: pol.queue(ch, f"{pre}.{n}") for n in ("a-mid.dle-b", "a-midXdle-b", "a-mid_le-b")}
    pol.set(pre, re.escape(pre) + r"\..*mid.dle", {"max-length": 1})
    for q in qs.values():
        publish_n(ch, q, 3)
    time.sleep(0.1)
    assert {n: wait_count(ch, q, 1 if "dle" in n else 3) for n, q in qs.items()} == \
        {"a-mid.dle-b": 1, "a-midXdle-b": 1, "a-mid_le-b": 3}


def test_apply_to(pol, pre):
    """apply-to 'queues' skips exchanges and 'exchanges' skips queues, on the same names."""
    ch = pol.channel()
    ae = pol.exchange(ch, pre + ".ae", "fanout")
    sink = pol.queue(ch, pre + ".sink")
    ch.queue_bind(sink, ae, "")
    name = pre + ".both"
    x = pol.exchange(ch, name, "direct")
    q = pol.queue(ch, name)
    pattern = "^" + re.escape(name) + "$"
    pol.set(pre + ".x", pattern, {"max-length": 1}, apply_to="exchanges")
    pol.set(pre + ".q", pattern, {"alternate-exchange": ae}, apply_to="queues")
    publish_n(ch, q, 3)
    ch.basic_publish(x, "nowhere", b"lost")
    time.sleep(0.15)
    assert (count(ch, q), count(ch, sink)) == (3, 0)


def test_highest_priority_wins_and_definitions_do_not_merge(pol, pre):
    """Two matching policies: only the higher-priority one applies (its definition alone); clearing it
    brings the lower one in at once."""
    ch = pol.channel()
    q = pol.queue(ch, pre + ".q")
    pat = "^" + re.escape(pre)
    pol.set(pre + ".low", pat, {"max-length": 1}, priority=1)
    pol.set(pre + ".high", pat, {"message-ttl": 60000}, priority=5)
    publish_n(ch, q, 3)
    time.sleep(0.1)
    assert count(ch, q) == 3                      # max-length from "low" is not applied
    pol.clear(pre + ".high")
    assert wait_count(ch, q, 1) == 1
    assert bodies(ch, q) == [b"m2"]


def test_one_policy_per_exchange(pol, pre):
    """The same for exchanges: a higher-priority matching policy without alternate-exchange hides a
    lower one that has it."""
    ch = pol.channel()
    ae = pol.exchange(ch, pre + ".ae", "fanout")
    sink = pol.queue(ch, pre + ".sink")
    ch.queue_bind(sink, ae, "")
    x = pol.exchange(ch, pre + ".x", "direct")
    pat = "^" + re.escape(pre) + r"\.x$"
    pol.set(pre + ".ae", pat, {"alternate-exchange": ae}, priority=1)
    pol.set(pre + ".other", pat, {"max-length": 10}, priority=2)
    ch.basic_publish(x, "nowhere", b"m")
    time.sleep(0.15)
    assert count(ch, sink) == 0


def test_policy_with_a_key_the_queue_type_does_not_support_is_skipped(pol, pre):
    """RabbitMQ 3.10: a policy holding a key the queue type does not support does not match that queue
    (rabbit_queue_type:is_policy_applicable). {max-length 1, delivery-limit 5} at priority 10 applies to
    a quorum queue, but a classic queue gets the priority-0 {max-length 3} instead."""
    ch = pol.channel()
    cq = pol.queue(ch, pre + ".classic")
    qq = pol.queue(ch, pre + ".quorum", quorum=True)
    pat = "^" + re.escape(pre)
    pol.set(pre + ".hi", pat, {"max-length": 1, "delivery-limit": 5}, priority=10)
    pol.set(pre + ".lo", pat, {"max-length": 3}, priority=0)
    publish_n(ch, cq, 5)
    publish_n(ch, qq, 5)
    assert (wait_count(ch, cq, 3), wait_count(ch, qq, 1)) == (3, 1)


# --------------------------------------------------------------------------- policy vs x-arguments
@pytest.fixture(scope="module")
def precedence(_pol_module):
    """One policy for the precedence tests: every queue/exchange named '<prefix>.*' gets
    max-length 2, message-ttl 300, expires 60000, dead-letter-exchange/-routing-key P,
    overflow reject-publish, alternate-exchange P."""
    prefix = "prec." + uuid.uuid4().hex[:8]
    pol = _pol_module
    helpers = [f"{prefix}-{x}" for x in ("dlx-p", "dlx-a", "ae-p", "ae-a")]
    c = pika.BlockingConnection(pika.URLParameters(pol.url))
    ch = c.channel()
    for x in helpers:
        ch.exchange_declare(x, "fanout")
    pol.set(prefix, "^" + re.escape(prefix) + r"\.",
            {"max-length": 2, "message-ttl": 300, "expires": 60000, "dead-letter-exchange": prefix + "-dlx-p",
             "dead-letter-routing-key": "from-policy", "overflow": "reject-publish",
             "alternate-exchange": prefix + "-ae-p"})
    c.close()
    pol.names.discard((prefix, "/"))           # not a per-test policy: cleared below, after the module's tests
    yield prefix
    pol.names.add((prefix, "/"))
    pol.clear_leftovers()
    c = pika.BlockingConnection(pika.URLParameters(pol.url))
    for x in helpers:
        c.channel().exchange_delete(x)
    c.close()


def test_max_length_lower_wins(pol, precedence):
    ch = pol.channel()
    a = pol.queue(ch, precedence + ".ml-a", **{"x-max-length": 5, "x-overflow": "drop-head"})
    b = pol.queue(ch, precedence + ".ml-b", **{"x-max-length": 1, "x-overflow": "drop-head"})
    for q in (a, b):
        publish_n(ch, q, 4)
    time.sleep(0.1)
    assert (bodies(ch, a), bodies(ch, b)) == ([b"m2", b"m3"], [b"m3"])


def test_message_ttl_lower_wins(pol, precedence):
    ch = pol.channel()
    a = pol.queue(ch, precedence + ".ttl-a", **{"x-message-ttl": 60000})
    b = pol.queue(ch, precedence + ".ttl-b", **{"x-message-ttl": 50})
    for q in (a, b):
        ch.basic_publish("", q, b"m")
    time.sleep(0.1)
    assert (count(ch, a), count(ch, b)) == (1, 0)       # policy 300 vs 60000 -> 300; 50 vs 300 -> 50
    # a's message expires after 300 ms, not 60 s (waited for with a generous bound: a loaded
    # broker's expiry timer may fire late)
    deadline = time.monotonic() + 10
    while count(ch, a) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(ch, a) == 0


def test_expires_lower_wins_on_classic_policy_wins_on_quorum(pol, precedence):
    """x-expires 300 with policy expires 60000: the classic queue goes after 300 ms (lower wins), the
    quorum queue stays (quorum queues let the policy win)."""
    ch = pol.channel()
    cq = pol.queue(ch, precedence + ".exp-classic", **{"x-expires": 300})
    qq = pol.queue(ch, precedence + ".exp-quorum", quorum=True, **{"x-expires": 300})
    time.sleep(0.8)                 # no polling: a passive declare would restart the expiry timer
    assert (queue_exists(pol.connect, cq), queue_exists(pol.connect, qq)) == (False, True)


def test_dead_letter_arguments_win(pol, precedence):
    """x-dead-letter-exchange / x-dead-letter-routing-key beat the policy's, on classic and quorum
    queues; a queue with only x-dead-letter-exchange still takes the policy's routing key."""
    ch = pol.channel()
    sink_p, sink_a = pol.queue(ch, precedence + "-sink-p"), pol.queue(ch, precedence + "-sink-a")
    ch.queue_bind(sink_p, precedence + "-dlx-p", "")
    ch.queue_bind(sink_a, precedence + "-dlx-a", "")
    both = {"x-dead-letter-exchange": precedence + "-dlx-a", "x-dead-letter-routing-key": "from-arg"}
    qs = [pol.queue(ch, precedence + ".dl-classic", **both),
          pol.queue(ch, precedence + ".dl-quorum", quorum=True, **both),
          pol.queue(ch, precedence + ".dl-only-x", **{"x-dead-letter-exchange": precedence + "-dlx-a"}),
          pol.queue(ch, precedence + ".dl-none")]
    for q in qs:
        ch.basic_publish("", q, q.encode())
        m = wait_for(lambda q=q: ch.basic_get(q)[0], timeout=1.0)
        ch.basic_reject(m.delivery_tag, requeue=False)
    assert wait_count(ch, sink_a, 3) == 3
    assert wait_count(ch, sink_p, 1) == 1
    got_a = [ch.basic_get(sink_a, auto_ack=True) for _ in range(3)]
    assert sorted((b.decode().rsplit(".", 1)[1], m.routing_key) for m, _, b in got_a) == \
        [("dl-classic", "from-arg"), ("dl-only-x", "from-policy"), ("dl-quorum", "from-arg")]
    m, _, b = ch.basic_get(sink_p, auto_ack=True)
    assert (b.decode().rsplit(".", 1)[1], m.routing_key) == ("dl-none", "from-policy")


def test_overflow_argument_wins_on_classic_policy_wins_on_quorum(pol, precedence):
    """x-overflow drop-head vs policy overflow reject-publish (limit 2 from the policy): the classic
    queue drops its head (argument wins), the quorum queue nacks (policy wins). RabbitMQ 3.10 quorum
    reject-publish refuses only once the queue is already OVER the limit, so it holds 3 (limit+1)."""
    ch = pol.channel()
    ch.confirm_delivery()
    cq = pol.queue(ch, precedence + ".ov-classic", **{"x-overflow": "drop-head"})
    qq = pol.queue(ch, precedence + ".ov-quorum", quorum=True, **{"x-overflow": "drop-head"})
    assert [published(ch, cq, str(i).encode()) for i in range(4)] == [True] * 4
    assert [published(ch, qq, str(i).encode()) for i in range(5)] == [True, True, True, False, False]
    assert (bodies(ch, cq), bodies(ch, qq)) == ([b"2", b"3"], [b"0", b"1", b"2"])


def test_alternate_exchange_argument_wins(pol, precedence):
    ch = pol.channel()
    sink_p, sink_a = pol.queue(ch, precedence + "-aesink-p"), pol.queue(ch, precedence + "-aesink-a")
    ch.queue_bind(sink_p, precedence + "-ae-p", "")
    ch.queue_bind(sink_a, precedence + "-ae-a", "")
    xa = pol.exchange(ch, precedence + ".x-arg", "direct", **{"alternate-exchange": precedence + "-ae-a"})
    xp = pol.exchange(ch, precedence + ".x-pol", "direct")
    ch.basic_publish(xa, "nowhere", b"a")
    ch.basic_publish(xp, "nowhere", b"p")
    assert wait_count(ch, sink_a, 1) == 1
    assert wait_count(ch, sink_p, 1) == 1
    assert (bodies(ch, sink_a), bodies(ch, sink_p)) == ([b"a"], [b"p"])


# --------------------------------------------------------------------------- the API itself
def test_list_policies_shape(pol, pre):
    """list_policies gives RabbitMQ's definitions-JSON shape."""
    pol.set(pre, "^" + re.escape(pre) + r"\.", {"max-length": 7, "overflow": "reject-publish"}, priority=3,
            apply_to="queues")
    mine = [p for p in pol.list("/") if p["name"] == pre]
    assert mine == [{"vhost": "/", "name": pre, "pattern": "^" + re.escape(pre) + r"\.", "apply-to": "queues",
                     "definition": {"max-length": 7, "overflow": "reject-publish"}, "priority": 3}]


VALIDATION_CASES = [
    # (id, definition, pattern, apply_to, expected message; a str ending in "..." pins only the suffix after "...")
    ("ttl-negative", {"message-ttl": -1}, "^x", "all", "-1 is not a valid message TTL"),
    ("ttl-float", {"message-ttl": 1.5}, "^x", "all", "1.5 is not a valid message TTL"),
    ("expires-zero", {"expires": 0}, "^x", "all", "0 is not a valid queue expiry"),
    ("max-length-bool", {"max-length": True}, "^x", "all", "true is not a valid maximum length"),
    ("max-length-null", {"max-length": None}, "^x", "all", "null is not a valid maximum length"),
    ("bytes-negative", {"max-length-bytes": -1}, "^x", "all", "-1 is not a valid maximum length in bytes"),
    ("delivery-limit", {"delivery-limit": -1}, "^x", "all", "-1 is not a valid delivery limit"),
    ("dlx-int", {"dead-letter-exchange": 5}, "^x", "all", "5 is not a valid dead letter exchange name"),
    ("dlrk-int", {"dead-letter-routing-key": 1}, "^x", "all", "1 is not a valid dead letter routing key"),
    ("ae-int", {"alternate-exchange": 5}, "^x", "all", "5 is not a valid alternate exchange name"),
    ("empty", {}, "^x", "all", "no policy provided"),
    ("value-before-unknown-key", {"zzz": 2, "max-length": -1}, "^x", "all", "-1 is not a valid maximum length"),
    ("max-length-string", {"max-length": "abc"}, "^x", "all", '<<"abc">> is not a valid maximum length'),
    ("overflow", {"overflow": "bogus"}, "^x", "all", '<<"bogus">> is not a valid overflow value'),
    ("unknown-key", {"foo": 1, "max-length": 1}, "^x", "all", "...are not recognised policy settings"),
    ("bad-pattern", {"max-length": 1}, "(", "all", 'pattern should be regular expression but is invalid: {"missing )",1}'),
    ("apply-to", {"max-length": 1}, "^x", "bogus",
     "apply-to 'bogus' unrecognised; should be 'queues', 'exchanges' or 'all'"),
    ("valid", {"max-length": 0, "message-ttl": 0, "expires": 1, "overflow": "reject-publish-dlx"}, "^x", "all", None),
]


@pytest.fixture(scope="module")
def validation_results(_pol_module):
    """All VALIDATION_CASES tried at once (one rabbitmqctl eval on RabbitMQ) -> {id: message or None}."""
    tag = "val." + uuid.uuid4().hex[:8]
    specs = [(f"{tag}.{cid}", pattern, d, 0, apply_to) for cid, d, pattern, apply_to, _ in VALIDATION_CASES]
    got = _pol_module.try_set_many(specs)
    return dict(zip([c[0] for c in VALIDATION_CASES], got))


@pytest.mark.parametrize("cid,expected", [(c[0], c[4]) for c in VALIDATION_CASES], ids=[c[0] for c in VALIDATION_CASES])
def test_validation(validation_results, cid, expected):
    """What set_policy refuses, with RabbitMQ's message (values printed as Erlang terms: true, null, 1.5,
    <<"abc">>). Values are checked before unknown keys are reported."""
    got = validation_results[cid]
    if expected is not None and expected.startswith("..."):
        assert got is not None and got.endswith(expected[3:]), got
    else:
        assert got == expected


def test_clear_unknown_policy(pol, pre):
    with pytest.raises(ValueError):
        pol.clear(pre + ".nope")


# --------------------------------------------------------------------------- Leveret: persistence, definitions file
@pytest.mark.leveret_only
def test_policies_persist_across_restart_inproc(tmp_path):
    """Policies set through the API are durable: a broker restarted on the same data dir lists them
    and applies them."""
    from inproc import ThreadedBroker
    data = str(tmp_path / "data")
    tb = ThreadedBroker(data_dir=data)
    try:
        tb.call(lambda: tb.broker.set_policy("lim", r"^lim\.", {"max-length": 1}, priority=2, apply_to="queues"))
    finally:
        tb.stop()
    tb = ThreadedBroker(data_dir=data)
    try:
        assert tb.call(lambda: tb.broker.list_policies("/")) == [
            {"vhost": "/", "name": "lim", "pattern": r"^lim\.", "apply-to": "queues",
             "definition": {"max-length": 1}, "priority": 2}]
        c = pika.BlockingConnection(pika.URLParameters(tb.url))
        ch = c.channel()
        ch.queue_declare("lim.q")
        publish_n(ch, "lim.q", 3)
        assert wait_count(ch, "lim.q", 1) == 1
        c.close()
        tb.call(lambda: tb.broker.clear_policy("lim"))
    finally:
        tb.stop()
    tb = ThreadedBroker(data_dir=data)
    try:
        assert tb.call(lambda: tb.broker.list_policies()) == []
    finally:
        tb.stop()


@pytest.mark.leveret_only
def test_definitions_file_loaded_at_start(leveret_server, tmp_path):
    """``leveret serve --definitions FILE`` loads RabbitMQ definitions JSON (vhosts, users, permissions,
    policies, exchanges, queues, bindings); what it loaded is durable and still there after a restart
    without the flag."""
    defs = {
        "rabbit_version": "3.10.8",
        "users": [{"name": "alice", "password_hash": rabbit_password_hash("sha256", "s3cret"),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"], "limits": {}}],
        "vhosts": [{"name": "/", "limits": [], "metadata": {"description": "Default virtual host", "tags": []}},
                   {"name": "v1", "limits": [], "metadata": {"description": "", "tags": []}}],
        "permissions": [{"user": "alice", "vhost": "v1", "configure": ".*", "write": ".*", "read": ".*"}],
        "policies": [
            {"vhost": "v1", "name": "lim", "pattern": r"^lim\.", "apply-to": "queues",
             "definition": {"max-length": 2}, "priority": 0},
            {"vhost": "v1", "name": "ae", "pattern": "^in$", "apply-to": "exchanges",
             "definition": {"alternate-exchange": "unrouted"}, "priority": 1}],
        "exchanges": [
            {"name": "in", "vhost": "v1", "type": "direct", "durable": True, "auto_delete": False,
             "internal": False, "arguments": {}},
            {"name": "unrouted", "vhost": "v1", "type": "fanout", "durable": True, "auto_delete": False,
             "internal": False, "arguments": {}}],
        "queues": [
            {"name": "lim.q", "vhost": "v1", "durable": True, "auto_delete": False, "type": "classic",
             "arguments": {}},
            {"name": "lost", "vhost": "v1", "durable": True, "auto_delete": False, "type": "classic",
             "arguments": {"x-queue-type": "classic"}}],
        "bindings": [
            {"source": "in", "vhost": "v1", "destination": "lim.q", "destination_type": "queue",
             "routing_key": "k", "arguments": {}},
            {"source": "unrouted", "vhost": "v1", "destination": "lost", "destination_type": "queue",
             "routing_key": "", "arguments": {}}],
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    data = str(tmp_path / "data")
    os.makedirs(data)

    def check(server, after_restart):
        c = pika.BlockingConnection(pika.URLParameters(f"amqp://alice:s3cret@127.0.0.1:{server.port}/v1"))
        ch = c.channel()
        for i in range(3):
            ch.basic_publish("in", "k", f"k{i}".encode())
        ch.basic_publish("in", "other", b"stray")
        assert wait_count(ch, "lost", 1) == 1
        assert wait_count(ch, "lim.q", 2) == 2
        assert (bodies(ch, "lim.q"), bodies(ch, "lost")) == ([b"k1", b"k2"], [b"stray"])
        ch.queue_declare("lim.later")                      # the policy applies to new queues too
        publish_n(ch, "lim.later", 3)
        assert wait_count(ch, "lim.later", 2) == 2
        ch.queue_delete("lim.later")
        c.close()

    s = leveret_server("--definitions", str(path), data_dir=data)
    check(s, False)
    s.stop()
    s2 = leveret_server(data_dir=data, port=s.port)
    check(s2, True)


@pytest.mark.leveret_only
def test_definitions_file_with_bad_policy_refuses_to_start(tmp_path):
    """A definitions file whose policy RabbitMQ would refuse: the server does not start (exit code != 0)."""
    path = tmp_path / "defs.json"
    path.write_text(json.dumps({"policies": [{"vhost": "/", "name": "bad", "pattern": ".*", "apply-to": "queues",
                                              "definition": {"max-length": -1}, "priority": 0}]}))
    data = tmp_path / "data"
    data.mkdir()
    import socket
    import sys
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        port = s_.getsockname()[1]
    p = subprocess.run([sys.executable, "-m", "leveret", "serve", "--host", "127.0.0.1", "--port", str(port),
                        "--data-dir", str(data), "--definitions", str(path)],
                       capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode != 0
    assert "-1 is not a valid maximum length" in p.stderr
