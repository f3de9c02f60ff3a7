"""Leveret: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.

``leveret.Broker`` (the node: ``leveret.node``), ``leveret.BackgroundBroker`` (a broker in a
thread, for synchronous programs: ``leveret.embed``) and ``leveret.Settings`` are loaded on
first use (PEP 562): pytest imports every installed plugin at start-up, Leveret's among them
(``leveret.testing.plugin``), and a test run that never asks for a broker should not pay for
importing one (about half a second with the management API's aiohttp).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> (module, attribute)
_LAZY = {
    "Broker": ("leveret.node", "Node"),     # what a program embeds: the broker with its listeners
    "Node": ("leveret.node", "Node"),
    "BackgroundBroker": ("leveret.embed", "BackgroundBroker"),
    "Settings": ("leveret.settings", "Settings"),
}

if TYPE_CHECKING:
    from .embed import BackgroundBroker
    from .node import Node
    from .node import Node as Broker
    from .settings import Settings


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'leveret' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["BackgroundBroker", "Broker", "Node", "Settings", "__version__"]
