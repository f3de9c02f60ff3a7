"""Record RabbitMQ's management API answers for tests/management/admin_cases.py.

    python tools/capture_management.py [http://guest:guest@127.0.0.1:15672] [amqp://guest:guest@127.0.0.1:5672/%2F]

Runs the cases against a live RabbitMQ 3.10.8 with the management plugin (creating and then
deleting uniquely named objects only; the cluster name is set and then restored; the AMQP URL
is for the consumer some cases need) and writes tests/data/management/admin.json, which
tests/management/test_admin_shapes.py compares the broker under test with.
"""
from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.management.admin_cases import run  # noqa: E402
from tests.management.conftest import call  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "management", "admin.json")


def _first_items(v):
    if isinstance(v, dict):
        return {k: _first_items(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_first_items(v[0])] if v else []
    return v


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://guest:guest@127.0.0.1:15672"
    api = url.split("@")[-1].replace("http://", "")
    amqp = sys.argv[2] if len(sys.argv) > 2 else "amqp://guest:guest@127.0.0.1:5672/%2F"
    recorded = run(call, api, amqp)
    for answer in recorded.values():        # (shapes need one item of a list: keep no more)
        answer["body"] = _first_items(answer["body"]) if answer["status"] < 400 else answer["body"]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(recorded, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(recorded)} answers written to {OUT}")


if __name__ == "__main__":
    main()
