"""Record RabbitMQ's Prometheus metric families (name, type, HELP, label names) for
tests/prometheus/test_rabbitmq_names.py (tests/data/prometheus/rabbitmq-3.10.8.json).

    rabbitmq-plugins enable rabbitmq_prometheus
    python tools/record_prometheus.py [amqp://guest:guest@127.0.0.1:5672/%2F] [http://127.0.0.1:15692]

Opens a connection with a publishing, a consuming and a basic.get channel on a uniquely named
queue (so the per-object families have samples), scrapes /metrics, /metrics/per-object and
/metrics/detailed (every family, vhost /) once the statistics have been emitted, deletes the
queue and writes the description of each endpoint. Sample values are not kept.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from prometheus.scrape import ENDPOINTS, describe, families, fetch, traffic  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "prometheus" / "rabbitmq-3.10.8.json"


def main() -> None:
    amqp = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/%2F"
    base = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:15692"
    with traffic(amqp, wait=12):    # two statistics emissions (collect_statistics_interval: 5 s)
        out = {"rabbitmq_version": "3.10.8", "recorded_by": "tools/record_prometheus.py", "endpoints": {}}
        for name, path in ENDPOINTS.items():
            out["endpoints"][name] = describe(families(fetch(base, path)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print("recorded", OUT, {k: len(v) for k, v in out["endpoints"].items()})


if __name__ == "__main__":
    main()
