"""Known traffic, then the scraped values: queues, messages ready/unacked, received/delivered
totals, connections, channels, consumers, churn. Runs against Leveret and against RabbitMQ
3.10.8 (LEVERET_TEST_PROMETHEUS_URL with LEVERET_TEST_URL). RabbitMQ updates its per-object
queue table when a queue emits statistics (every 5 s), and Leveret's ``/metrics`` sums come
from its statistics sampler's last sample (every 5 s), so the checks poll until the values
arrive, from a starting point taken from a sample begun after the test started
(``fetch_fresh``); the node totals of a shared RabbitMQ also move with other clients' traffic,
so there a change is checked as at least the traffic's (on Leveret: exactly)."""
from __future__ import annotations

import json
import time
import uuid

import pika
import pytest

from .scrape import families, fetch, fetch_fresh, traffic, value

PROTO = {"protocol": "amqp091"}
CLASSIC = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}


def _poll(fn, timeout: float = 30.0):
    """fn() until it returns without AssertionError (RabbitMQ's statistics lag)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_queue_metrics_after_known_traffic(broker_url, metrics_base):
    q = "prom-q-" + uuid.uuid4().hex[:8]
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        for i in range(5):
            ch.basic_publish("", q, b"x" * 10)
        sub = conn.channel()
        sub.basic_qos(prefetch_count=2)
        got = []
        sub.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag))
        while len(got) < 2:
            conn.process_data_events(0.1)

        def check(path, prefix):
            fams = families(fetch(metrics_base, path))
            labels = {"vhost": "/", "queue": q}
            assert value(fams, prefix + "queue_messages_ready", **labels) == 3
            assert value(fams, prefix + "queue_messages_unacked", **labels) == 2
            assert value(fams, prefix + "queue_messages", **labels) == 5
            assert value(fams, prefix + "queue_consumers", **labels) == 1
            return fams
        _poll(lambda: check("/metrics/per-object", "rabbitmq_"))
        _poll(lambda: check("/metrics/detailed?vhost=%2F&family=queue_coarse_metrics&family=queue_metrics",
                            "rabbitmq_detailed_"))
        # a vhost filter naming no existing vhost leaves the families without this queue's samples
        other = families(fetch(metrics_base, "/metrics/detailed?vhost=no-such-vhost&family=queue_coarse_metrics"))
        assert not [s for s in other["rabbitmq_detailed_queue_messages"].samples if s.labels.get("queue") == q]
        # without family= the detailed endpoint has only the identity families
        bare = families(fetch(metrics_base, "/metrics/detailed"))
        assert {"rabbitmq_build_info", "rabbitmq_identity_info"} <= set(bare)
        assert not [n for n in bare if n.startswith("rabbitmq_detailed_")]
        ch.queue_delete(q)
    finally:
        conn.close()


def _totals():
    return families(fetch(_totals.base, "/metrics"))


def test_node_totals_after_known_traffic(broker_url, metrics_base, on_rabbitmq):
    _totals.base = metrics_base
    before = families(fetch_fresh(metrics_base, "/metrics"))     # (not a sample from before the last test)

    def delta(after, name, expected, **labels):
        d = value(after, name, **labels) - value(before, name, **labels)
        if on_rabbitmq:
            assert d >= expected, (name, labels, d, expected)
        else:
            assert d == expected, (name, labels, d, expected)

    q = "prom-t-" + uuid.uuid4().hex[:8]
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        pub = conn.channel()
        pub.queue_declare(q)
        for _ in range(4):
            pub.basic_publish("", q, b"m")
        pub.basic_publish("amq.direct", "nowhere", b"m")                   # dropped
        returned = []
        pub.add_on_return_callback(lambda *a: returned.append(a))
        pub.basic_publish("amq.direct", "nowhere", b"m", mandatory=True)   # returned
        cpub = conn.channel()
        cpub.confirm_delivery()
        for _ in range(3):
            cpub.basic_publish("", q, b"c")                              # 7 in the queue
        get = conn.channel()
        assert get.basic_get(q, auto_ack=True)[0] is not None            # get, auto ack
        m = get.basic_get(q, auto_ack=False)[0]                          # get, manual ack
        get.basic_ack(m.delivery_tag)
        sub = conn.channel()
        tags = []
        sub.basic_consume(q, lambda c, m, p, b: tags.append(m.delivery_tag))
        while len(tags) < 5:
            conn.process_data_events(0.1)
        for t in tags[:3]:
            sub.basic_ack(t)                                             # 2 left unacked
        conn.process_data_events(0.2)
        empty = conn.channel()
        empty.queue_declare(q + "-empty", auto_delete=False)
        assert empty.basic_get(q + "-empty")[0] is None                   # get_empty
        empty.queue_delete(q + "-empty")

        def opened():
            after = _totals()
            delta(after, "rabbitmq_global_messages_received_total", 9, **PROTO)
            delta(after, "rabbitmq_global_messages_received_confirm_total", 3, **PROTO)
            delta(after, "rabbitmq_global_messages_confirmed_total", 3, **PROTO)
            delta(after, "rabbitmq_global_messages_routed_total", 7, **PROTO)
            delta(after, "rabbitmq_global_messages_unroutable_dropped_total", 1, **PROTO)
            delta(after, "rabbitmq_global_messages_unroutable_returned_total", 1, **PROTO)
            delta(after, "rabbitmq_global_messages_delivered_total", 7, **CLASSIC)
            delta(after, "rabbitmq_global_messages_delivered_consume_manual_ack_total", 5, **CLASSIC)
            delta(after, "rabbitmq_global_messages_delivered_get_auto_ack_total", 1, **CLASSIC)
            delta(after, "rabbitmq_global_messages_delivered_get_manual_ack_total", 1, **CLASSIC)
            delta(after, "rabbitmq_global_messages_acknowledged_total", 4, **CLASSIC)
            delta(after, "rabbitmq_global_messages_get_empty_total", 1, **CLASSIC)
            delta(after, "rabbitmq_connections_opened_total", 1)
            delta(after, "rabbitmq_channels_opened_total", 5)
            delta(after, "rabbitmq_queues_declared_total", 2)
            delta(after, "rabbitmq_queues_created_total", 2)
            delta(after, "rabbitmq_queues_deleted_total", 1)
            if not on_rabbitmq:     # gauges: exact only where nobody else is connected
                delta(after, "rabbitmq_connections", 1)
                delta(after, "rabbitmq_channels", 5)
                delta(after, "rabbitmq_consumers", 1)
                delta(after, "rabbitmq_global_consumers", 1, **PROTO)
                delta(after, "rabbitmq_global_publishers", 2, **PROTO)
                delta(after, "rabbitmq_queues", 1)
                delta(after, "rabbitmq_queue_messages_unacked", 2)
                assert value(after, "rabbitmq_channel_messages_unacked") == 2
                assert value(after, "rabbitmq_channel_messages_published_total") == 9
                assert value(after, "rabbitmq_channel_consumers") == 1
        _poll(opened)
        pub.queue_delete(q)
    finally:
        conn.close()

    def closed():
        after = _totals()
        delta(after, "rabbitmq_connections_closed_total", 1)
        delta(after, "rabbitmq_channels_closed_total", 5)
        delta(after, "rabbitmq_queues_deleted_total", 2)
        if not on_rabbitmq:
            delta(after, "rabbitmq_connections", 0)
            delta(after, "rabbitmq_queues", 0)
            # closed channels and deleted queues keep counting in the global totals
            delta(after, "rabbitmq_global_messages_received_total", 9, **PROTO)
            delta(after, "rabbitmq_global_messages_delivered_total", 7, **CLASSIC)
    _poll(closed)


@pytest.mark.leveret_only
def test_per_object_channel_and_connection_labels(broker_url, metrics_base, api_base):
    """Channels and connections are labelled with the management API's names for them."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=7)
        fams = families(fetch(metrics_base, "/metrics/per-object"))
        chans = {c["name"] for c in json.loads(fetch(api_base, "/api/channels", _AUTH))}
        conns = {c["name"] for c in json.loads(fetch(api_base, "/api/connections", _AUTH))}
        assert {s.labels["channel"] for s in fams["rabbitmq_channel_consumers"].samples} == chans
        assert {s.labels["channel"] for s in fams["rabbitmq_connection_channels"].samples} == conns
        prefetch = [s.value for s in fams["rabbitmq_consumer_prefetch"].samples]
        assert 7 in prefetch
    finally:
        conn.close()


_AUTH = {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}      # guest:guest


@pytest.fixture(scope="module")
def api_base(leveret_session_server):
    return leveret_session_server.management_url


@pytest.mark.leveret_only
def test_aggregated_sums_equal_per_object(broker_url, metrics_base):
    """``/metrics`` reads sums from the statistics sample; pinned to the per-object values
    (read from the objects at the scrape) while nothing moves: each aggregated family equals
    the sum of its per-object samples, and ``Last-Modified`` says when the sample began."""
    with traffic(broker_url):       # 4 in a queue: one fetched, one delivered (both unacked)
        agg = families(fetch_fresh(metrics_base, "/metrics"))
        per = families(fetch(metrics_base, "/metrics/per-object"))
    moving = {"rabbitmq_connection_incoming_bytes_total", "rabbitmq_connection_outgoing_bytes_total",
              "rabbitmq_connection_incoming_packets_total", "rabbitmq_connection_outgoing_packets_total"}
    checked = [n for n, f in per.items() if n not in moving and f.samples
               and {"queue", "channel"} & set(f.samples[0].labels)]
    assert len(checked) >= 25, checked
    for name in checked:
        assert value(agg, name) == sum(s.value for s in per[name].samples), name
    assert value(agg, "rabbitmq_queue_messages_ready") >= 2
    assert value(agg, "rabbitmq_channel_messages_unacked") >= 2
