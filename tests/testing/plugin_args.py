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
