"""The management API's routes, one module per resource group (each exports ``routes``, an
aiohttp ``RouteTableDef``). Add a module here to serve it. Within a module, fixed paths are
declared before the variable ones they would otherwise match (``/api/users/without-permissions``
before ``/api/users/{user}``)."""
from __future__ import annotations

from . import (bindings, connections, definitions, exchanges, federation, health, limits, misc, overview,
               parameters, permissions, queues, shovels, ui, users, vhosts)

MODULES = [misc, vhosts, users, permissions, limits, parameters, definitions, health, overview, connections,
           exchanges, queues, bindings, shovels, federation, ui]
