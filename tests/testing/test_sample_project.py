"""tests/sample_project -- a project that tests its service with Leveret's fixtures only -- run
as its own pytest session (its own pytest.ini; this repository's conftest.py files are outside
its root) against an in-process Leveret. scripts/rabbitmq-conformance runs the same project
against RabbitMQ with ``--leveret-url``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from .plugin_args import PLUGIN_ARGS

PROJECT = Path(__file__).resolve().parents[1] / "sample_project"


@pytest.mark.leveret_only
def test_the_sample_project_passes_on_leveret():
    r = subprocess.run([sys.executable, "-m", "pytest", *PLUGIN_ARGS, "-p", "no:cacheprovider", "-rA",
                        str(PROJECT)], cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert f"rootdir: {PROJECT}" in r.stdout and "configfile: pytest.ini" in r.stdout, r.stdout[:2000]
    assert " 5 passed in " in r.stdout, r.stdout[-3000:]
