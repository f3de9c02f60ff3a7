"""Crash test of the durable store: a short run of ``tools/crashtest.py``.

The script SIGKILLs a real broker process again and again while publishers (with
confirms) and consumers (manual acks) run against it over real sockets, then
drains the queues and checks its ledger: no confirmed message lost, no body
corrupted, no unknown id, definitions intact, acked messages stay acked. Its
docstring explains the checks and how to run the long version (``--kills 50``).

``test_checker_reports_lost_messages`` proves the checker can fail: with
``--inject-loss`` the script deletes the queues' segment files after the first
kill and must report the confirmed messages it lost.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "crashtest.py")

pytestmark = [pytest.mark.leveret_only, pytest.mark.timeout(120)]


def run_crashtest(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--data-dir", str(tmp_path / "data"), "--report", str(report), *args],
        check=False, capture_output=True, text=True, timeout=110)
    assert report.exists(), f"no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(report.read_text())


def test_sigkill_loses_no_confirmed_message(tmp_path):
    proc, rep = run_crashtest(tmp_path, "--kills", "6", "--min-run", "0.2", "--max-run", "0.8", "--seed", "7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rep["kills"] == 6
    assert rep["confirmed"] > 0
    assert rep["lost"] == 0, rep["lost_ids"]
    assert rep["corrupt"] == 0, rep["corrupt_samples"]
    assert rep["phantom"] == 0, rep["phantom_samples"]
    assert rep["returned"] == 0
    assert not rep["definition_failures"]
    assert rep["duplicates_after_processed_ack"] == 0, rep["duplicates_after_processed_ack_samples"]
    assert all(rep["checks"].values()), rep["checks"]


def test_checker_reports_lost_messages(tmp_path):
    proc, rep = run_crashtest(tmp_path, "--kills", "2", "--min-run", "0.4", "--max-run", "0.6", "--seed", "7",
                              "--inject-loss")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert rep["cycles"][0]["injected"], "nothing was deleted: the first run stored no segment"
    assert rep["lost"] > 0
    assert rep["checks"]["lost == 0"] is False
    assert "RESULT: FAIL" in proc.stdout
