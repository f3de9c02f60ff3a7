"""The examples of docs/embedding.md and docs/testing.md are run.

docs/embedding.md shows examples/embedding/*.py unchanged, and each runs (a subprocess, as a user
would run it) printing what the page says it prints; docs/testing.md's code blocks are test
modules, run with the plugin."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "embedding.md").read_text()
EXAMPLES = sorted((ROOT / "examples" / "embedding").glob("*.py"))


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)


def test_the_page_shows_every_example_file_and_no_other_code():
    assert [p.name for p in EXAMPLES] == ["asyncio_app.py", "sync_app.py"]
    assert sorted(_blocks("python")) == sorted(p.read_text() for p in EXAMPLES)


@pytest.mark.leveret_only
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_runs_and_prints_what_the_page_shows(example):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    # the output block right after the example on the page; the port differs run to run
    block = DOC.split(example.read_text(), 1)[1]
    shown = re.search(r"Output:\n\n```\n(.*?)```", block, re.S).group(1)
    port = re.compile(r"127\.0\.0\.1:\d+")
    assert port.sub("PORT", r.stdout) == port.sub("PORT", shown)


@pytest.mark.leveret_only
def test_the_testing_guide_examples_pass(pytester, inner):
    """docs/testing.md's code blocks are test modules: run them with the plugin."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(), re.S)
    assert len(blocks) == 2
    pytester.makepyfile(**{f"test_guide_{i}": b for i, b in enumerate(blocks)})
    inner().assert_outcomes(passed=4)
