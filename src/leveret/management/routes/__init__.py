"""The management API's routes, one module per resource group (each exports ``routes``, an
aiohttp ``RouteTableDef``). Add a module here to serve it."""
from __future__ import annotations

from . import bindings, connections, exchanges, misc, overview, queues, users, vhosts

MODULES = [misc, vhosts, users, overview, connections, exchanges, queues, bindings]
