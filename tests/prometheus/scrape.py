"""Scraping helpers for the Prometheus tests and tools: fetch an endpoint, parse it with
prometheus_client's text parser, describe its families (name, type, HELP, label names)."""
from __future__ import annotations

import contextlib
import time
import urllib.request
import uuid
from email.utils import parsedate_to_datetime

import pika
from prometheus_client.parser import text_string_to_metric_families

# the per-object families rabbitmq_prometheus fills only while objects exist: a recording
# (tools/record_prometheus.py) creates a queue, a consumer and a publisher first
DETAILED_FAMILIES = ("connection_churn_metrics", "node_coarse_metrics", "node_metrics", "queue_coarse_metrics",
                     "queue_consumer_count", "queue_metrics", "channel_metrics", "channel_exchange_metrics",
                     "channel_queue_metrics", "connection_coarse_metrics", "connection_metrics",
                     "channel_queue_exchange_metrics", "channel_process_metrics", "ra_metrics",
                     "auth_attempt_metrics", "auth_attempt_detailed_metrics", "vhost_status",
                     "exchange_bindings", "exchange_names")
DETAILED_PATH = "/metrics/detailed?vhost=%2F&" + "&".join(f"family={f}" for f in DETAILED_FAMILIES)
ENDPOINTS = {"metrics": "/metrics", "per-object": "/metrics/per-object", "detailed": DETAILED_PATH}


def fetch(base: str, path: str, headers: dict | None = None) -> str:
    req = urllib.request.Request(base + path, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()


def fetch_fresh(base: str, path: str, timeout: float = 30.0) -> str:
    """``path`` once its values come from a statistics sample begun after this call: Leveret's
    ``/metrics`` sums come from the sampler's last sample (every 5 s) and say when it began in
    ``Last-Modified``; RabbitMQ's answer (no such header) is returned as it is."""
    since = time.time()
    while True:
        with urllib.request.urlopen(base + path, timeout=60) as r:
            body, modified = r.read().decode(), r.headers.get("Last-Modified")
        if modified is None or parsedate_to_datetime(modified).timestamp() >= since:
            return body
        assert time.time() < since + timeout, f"no statistics sample since {since} (Last-Modified {modified})"
        time.sleep(0.2)


def families(text: str) -> dict:
    """name (as written on the HELP line, ``_total`` kept) -> prometheus_client Metric."""
    out = {}
    for f in text_string_to_metric_families(text):
        name = f.name + "_total" if f.type == "counter" else f.name
        assert name not in out, f"family {name} written twice"
        out[name] = f
    return out


def describe(fams: dict) -> dict:
    """name -> {"type", "help", "labels": sorted label names of its samples}."""
    return {name: {"type": "untyped" if f.type == "unknown" else f.type, "help": f.documentation,
                   "labels": sorted({k for s in f.samples for k in s.labels})}
            for name, f in sorted(fams.items())}


def value(fams: dict, name: str, **labels) -> float:
    """The sample of family ``name`` whose labels include ``labels`` (exactly one)."""
    f = fams[name]
    hits = [s.value for s in f.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples"
    return hits[0]


@contextlib.contextmanager
def traffic(amqp_url: str, wait: float = 0.0):
    """A connection with a publishing (confirms), a consuming (prefetch 1) and a basic.get
    channel on a uniquely named queue, so every per-object family has samples; yields the
    queue name (``wait``: seconds to let RabbitMQ emit its statistics)."""
    q = "prom-" + uuid.uuid4().hex[:8]
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        pub, sub, get = conn.channel(), conn.channel(), conn.channel()
        pub.queue_declare(q)
        pub.confirm_delivery()
        for _ in range(4):
            pub.basic_publish("", q, b"m")
        pub.basic_publish("amq.direct", "nowhere", b"m")
        get.basic_get(q, auto_ack=False)
        sub.basic_qos(prefetch_count=1)
        sub.basic_consume(q, lambda *a: None)
        conn.process_data_events(0.2)
        time.sleep(wait)
        yield q
        pub.queue_delete(q)
    finally:
        conn.close()
