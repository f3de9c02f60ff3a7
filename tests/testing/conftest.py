"""Running an inner pytest session with Leveret's plugin (for tests/testing).

When Leveret is installed with its ``pytest11`` entry point, the plugin loads by itself; in a
checkout whose installed metadata predates the entry point it is loaded with ``-p`` (passing
``-p`` as well as having the entry point would register it twice).
"""
from __future__ import annotations

from importlib.metadata import entry_points

PLUGIN_MODULE = "leveret.testing.plugin"
INSTALLED = any(ep.value == PLUGIN_MODULE for ep in entry_points(group="pytest11"))
PLUGIN_ARGS: tuple[str, ...] = () if INSTALLED else ("-p", PLUGIN_MODULE)

import pytest


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
