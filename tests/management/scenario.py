"""Known traffic for the management API's object tests, and the shape of a JSON value.

:func:`build` declares an exchange and a queue with two bindings, opens a named pika
connection in confirm mode, publishes 5 routable messages and 1 unroutable mandatory one,
and consumes with prefetch 3 (3 unacked, 2 ready). ``tools/record_management.py`` runs it
against RabbitMQ and records the responses under ``tests/data/management``; the tests run it
against the broker under test and compare."""
from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import pika

from .conftest import call

DATA = Path(__file__).resolve().parent.parent / "data" / "management"


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


class Scenario:
    def __init__(self, amqp_url: str, api: str, tag: str):
        self.api, self.tag = api, tag
        self.x, self.queue = f"mgmt-{tag}-x", f"mgmt-{tag}-q"
        params = pika.URLParameters(amqp_url)
        params.client_properties = {"connection_name": f"mgmt-{tag}"}
        self.conn = pika.BlockingConnection(params)
        ch = self.ch = self.conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(self.x, "direct")
        ch.queue_declare(self.queue, arguments={"x-max-length": 100})
        ch.queue_bind(self.queue, self.x, "k")
        ch.queue_bind(self.queue, self.x, "k2", arguments={"a": 1, "b": "s"})
        for i in range(5):
            ch.basic_publish(self.x, "k", b"hello%d" % i)
        try:
            ch.basic_publish(self.x, "nowhere", b"lost", mandatory=True)
        except pika.exceptions.UnroutableError:
            pass
        ch.basic_qos(prefetch_count=3)
        ch.basic_consume(self.queue, lambda *a: None, consumer_tag=f"ctag-{tag}")
        self.conn.process_data_events(0.5)
        self.name = self.channel_name = None

    def wait_for_stats(self, timeout: float = 30.0) -> None:
        """Until the API shows the connection and the queue's deliveries (RabbitMQ emits its
        statistics every 5 s; Leveret's are current)."""
        deadline = time.monotonic() + timeout
        while True:
            self.conn.process_data_events(0.2)
            _, _, conns = call(self.api, "GET", "/api/connections")
            mine = [c for c in conns or [] if c.get("user_provided_name") == f"mgmt-{self.tag}"]
            _, _, qd = call(self.api, "GET", f"/api/queues/%2F/{q(self.queue)}")
            if mine and mine[0].get("channels") and (qd or {}).get("message_stats", {}).get("deliver") == 3:
                self.name = mine[0]["name"]
                self.channel_name = f"{self.name} (1)"
                return
            assert time.monotonic() < deadline, "statistics never showed the traffic"
            time.sleep(0.5)

    def paths(self) -> dict:
        """fixture name -> API path."""
        return {"overview": "/api/overview", "nodes": "/api/nodes",
                "connection": f"/api/connections/{q(self.name)}",
                "connection_channels": f"/api/connections/{q(self.name)}/channels",
                "channel": f"/api/channels/{q(self.channel_name)}",
                "queue": f"/api/queues/%2F/{q(self.queue)}",
                "exchange": f"/api/exchanges/%2F/{q(self.x)}",
                "bindings_between": f"/api/bindings/%2F/e/{q(self.x)}/q/{q(self.queue)}",
                "bindings_source": f"/api/exchanges/%2F/{q(self.x)}/bindings/source",
                "consumers": "/api/consumers/%2F",
                # one item of each listing, by shape (mine() keeps the scenario's)
                "queues_list": "/api/queues", "exchanges_list": "/api/exchanges",
                "connections_list": "/api/connections", "channels_list": "/api/channels"}

    def mine(self, fixture: str, body):
        """The part of a listing that is this scenario's (lists hold other engineers' objects)."""
        if fixture == "consumers":
            return [c for c in body if c["queue"]["name"] == self.queue]
        if fixture == "nodes":
            return body[:1]
        if fixture == "queues_list":
            return [x for x in body if (x["vhost"], x["name"]) == ("/", self.queue)]
        if fixture == "exchanges_list":
            return [x for x in body if (x["vhost"], x["name"]) == ("/", self.x)]
        if fixture == "connections_list":
            return [x for x in body if x["name"] == self.name]
        if fixture == "channels_list":
            return [x for x in body if x["name"] == self.channel_name]
        return body

    def close(self) -> None:
        try:
            self.ch.queue_delete(self.queue)
            self.ch.exchange_delete(self.x)
            self.conn.close()
        except pika.exceptions.AMQPError:
            pass


def shape(v):
    """The type structure of a JSON value: objects by key, lists by their first item."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return type(v).__name__


def differences(expected, got, path: str = "", absent: frozenset = frozenset()) -> list[str]:
    """Where ``got``'s shape differs from ``expected``'s (keys in ``absent`` may be missing;
    a null in ``expected`` matches any value; an empty list any list)."""
    out = []
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path or '.'}: object expected, got {got!r}"]
        for k, e in expected.items():
            p = f"{path}.{k}" if path else k
            if k not in got:
                if p not in absent and k not in absent:
                    out.append(f"{p}: missing")
                continue
            out.extend(differences(e, got[k], p, absent))
        return out
    if isinstance(expected, list):
        if not isinstance(got, list):
            return [f"{path}: list expected, got {got!r}"]
        if expected and got:
            out.extend(differences(expected[0], got[0], path + "[]", absent))
        return out
    if expected != "null" and expected != got and got != "null":
        out.append(f"{path}: {expected} expected, got {got}")
    return out


def load(name: str):
    return json.loads((DATA / f"{name}.json").read_text())
