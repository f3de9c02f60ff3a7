"""RabbitMQ's Grafana dashboard "RabbitMQ-Overview" (grafana.com 10991) works on Leveret:
every metric its queries use (tests/data/prometheus/grafana-rabbitmq-overview.json, extracted
by tools/extract_dashboard_metrics.py; the dashboard is RabbitMQ's, MPL 2.0) is in a scrape of
/metrics with samples, and rabbitmq_identity_info carries the labels its queries join on."""
from __future__ import annotations

import json
from pathlib import Path

from .scrape import families, fetch

DASHBOARD = json.loads((Path(__file__).parent.parent / "data" / "prometheus" /
                        "grafana-rabbitmq-overview.json").read_text())
NOT_PRODUCED: set[str] = set()      # dashboard metrics Leveret cannot produce (none)


def test_dashboard_metrics_are_scraped(metrics_base):
    fams = families(fetch(metrics_base, "/metrics"))
    missing = [m for m in DASHBOARD["metrics"] if m not in NOT_PRODUCED and not (m in fams and fams[m].samples)]
    assert not missing
    assert len(DASHBOARD["metrics"]) > 30


def test_identity_labels_for_the_dashboard_joins(metrics_base):
    fams = families(fetch(metrics_base, "/metrics"))
    (sample,) = fams["rabbitmq_identity_info"].samples
    assert set(DASHBOARD["identity_labels"]) <= set(sample.labels)
