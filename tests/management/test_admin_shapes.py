"""Every administrative endpoint answers as RabbitMQ 3.10.8 does: status codes, error bodies
exactly, other bodies by their shape (tests/management/admin_cases.py says how), compared
with the answers ``tools/capture_management.py`` recorded from RabbitMQ
(tests/data/management/admin.json). Runs against Leveret, and with ``LEVERET_TEST_URL`` +
``LEVERET_TEST_MGMT_URL`` against RabbitMQ itself (where it checks the recording is current)."""
from __future__ import annotations

import json
import os

import pytest

from .admin_cases import CASES, compare, run
from .conftest import call

RECORDED = os.path.join(os.path.dirname(__file__), "..", "data", "management", "admin.json")


@pytest.fixture(scope="module")
def answers(api, broker_url):
    return run(call, api, broker_url)


@pytest.fixture(scope="module")
def recorded():
    with open(RECORDED) as f:
        return json.load(f)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_answer_matches_rabbitmq(case, answers, recorded):
    assert case in recorded, f"{case} not recorded: run tools/capture_management.py"
    assert compare(case, recorded[case], answers[case]) == []


@pytest.mark.leveret_only
def test_no_ui_extensions(api):
    """(Leveret only) ``/api/extensions`` is ``[]``: Leveret's UI loads no plugin scripts, so it
    names none (RabbitMQ lists its management plugin's ``dispatcher.js`` and each enabled UI
    plugin's script: docs/operations.md)."""
    assert call(api, "GET", "/api/extensions")[::2] == (200, [])
