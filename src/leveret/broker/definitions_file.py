"""Loading a RabbitMQ definitions file (``rabbitmqctl export_definitions`` JSON) at start.

Like RabbitMQ's ``load_definitions``: the file is imported by the same importer as the
management API's ``POST /api/definitions`` (:func:`leveret.broker.definitions.import_definitions`:
users -- ``password`` in clear, or RabbitMQ's ``password_hash`` with its ``hashing_algorithm``,
sha256, sha512 or md5, see ``leveret.auth.passwords`` --, vhosts, limits, permissions, topic
permissions, exchanges, global parameters, policies, parameters, queues and bindings; existing
queues and exchanges are left as they are). A bad entry stops the start with a clear message
(:class:`DefinitionsError`, naming the file).
"""
from __future__ import annotations

import json

from .definitions import DefinitionsError, import_definitions

__all__ = ["DefinitionsError", "load_definitions"]


def load_definitions(broker, path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DefinitionsError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise DefinitionsError(f"{path}: the top level must be a JSON object")
    try:
        import_definitions(broker, data)
    except DefinitionsError as e:
        raise DefinitionsError(f"{path}: {e}") from None
