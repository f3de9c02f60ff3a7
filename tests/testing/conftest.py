"""Fixtures of the pytest plugin's own tests."""
from __future__ import annotations

import pytest
from .plugin_args import PLUGIN_ARGS


@pytest.fixture
def inner(pytester):
    """``inner(*args, ini="", subprocess=False)``: run the pytester directory's tests with the
    plugin loaded (``asyncio_mode`` and the like go in ``ini``)."""
    def run(*args: str, ini: str = "", subprocess: bool = False, **kw):
        if "asyncio_default_fixture_loop_scope" not in ini:
            ini += "asyncio_default_fixture_loop_scope = function\n"
        pytester.makeini("[pytest]\n" + ini)
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args, **kw)
    return run
