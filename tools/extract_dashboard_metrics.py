"""Extract the metric names RabbitMQ's Grafana dashboard "RabbitMQ-Overview" (grafana.com id
10991) queries, for tests/prometheus/test_dashboard.py
(tests/data/prometheus/grafana-rabbitmq-overview.json).

    python tools/extract_dashboard_metrics.py [RabbitMQ-Overview.json]

The dashboard is deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json in
rabbitmq-server v3.10.8 (MPL 2.0); without an argument it is read from a clone at
$RABBITMQ_SERVER_GIT (default /work/.mirror/rabbitmq+rabbitmq-server/repo) with ``git show``.
Only the metric names (and the labels the queries select on) are kept, not the dashboard.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

TAG = "v3.10.8"
PATH = "deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json"
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "prometheus" / "grafana-rabbitmq-overview.json"
# PromQL keywords and functions that look like names
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"\{[^}]*\}")
_NAME = re.compile(r"\b(?:rabbitmq|erlang|process|telemetry)_[a-zA-Z0-9_]*\b")


def expressions(obj) -> list[str]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("expr", "query") and isinstance(v, str):
                out.append(v)
            else:
                out.extend(expressions(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(expressions(v))
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label names in groupings, selectors and
    ``label_values(metric, label)`` are not metrics)."""
    expr = _GROUPING.sub(" ", expr)
    expr = _SELECTOR.sub(" ", expr)
    expr = re.sub(r"label_values\(\s*([a-zA-Z0-9_]+)\s*,\s*[a-zA-Z0-9_]+\s*\)", r"\1", expr)
    return set(_NAME.findall(expr))


def main() -> None:
    if len(sys.argv) > 1:
        text = Path(sys.argv[1]).read_text()
    else:
        git = os.environ.get("RABBITMQ_SERVER_GIT", "/work/.mirror/rabbitmq+rabbitmq-server/repo")
        text = subprocess.run(["git", "--git-dir", git, "show", f"{TAG}:{PATH}"], check=True,
                              capture_output=True, text=True).stdout
    exprs = expressions(json.loads(text))
    names = sorted(set().union(*(metric_names(e) for e in exprs)))
    labels = sorted(set(re.findall(r"group_left\(([^)]*)\)", " ".join(exprs))))
    out = {"dashboard": "RabbitMQ-Overview (grafana.com dashboard 10991)",
           "source": f"https://github.com/rabbitmq/rabbitmq-server/blob/{TAG}/{PATH}",
           "licence": "The dashboard is part of rabbitmq-server, (c) VMware, Inc. or its affiliates, under the "
                      "Mozilla Public License 2.0 (https://mozilla.org/MPL/2.0/). This file holds only the "
                      "metric names its queries use, extracted by tools/extract_dashboard_metrics.py.",
           "queries": len(exprs), "metrics": names,
           "identity_labels": sorted({x.strip() for g in labels for x in g.split(",")})}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT, len(names), "metrics from", len(exprs), "queries")


if __name__ == "__main__":
    main()
