"""Record RabbitMQ's management API responses for the shape tests (tests/data/management).

    python tools/record_management.py [amqp://guest:guest@127.0.0.1:5672/%2F] [127.0.0.1:15672] [NAME ...]

Runs tests/management/scenario.py's traffic against a live RabbitMQ (creating and then
deleting uniquely named objects) and writes one JSON file per endpoint (only the NAMEs given,
e.g. ``queues_list``, when any are: Scenario.paths() names them).
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from management.conftest import call          # noqa: E402
from management.scenario import DATA, Scenario  # noqa: E402


def main() -> None:
    amqp = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/%2F"
    api = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:15672"
    only = set(sys.argv[3:])
    s = Scenario(amqp, api, "rec-" + uuid.uuid4().hex[:6])
    try:
        s.wait_for_stats()
        DATA.mkdir(parents=True, exist_ok=True)
        for name, path in s.paths().items():
            if only and name not in only:
                continue
            status, _, body = call(api, "GET", path)
            assert status == 200, (path, status, body)
            (DATA / f"{name}.json").write_text(json.dumps(s.mine(name, body), indent=1, sort_keys=True) + "\n")
            print("recorded", name)
    finally:
        s.close()


if __name__ == "__main__":
    main()
