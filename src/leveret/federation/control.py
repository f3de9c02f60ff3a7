"""``leveret ctl federation_status`` and ``restart_federation_link``: the control socket's side
(the commands RabbitMQ 3.10.8's federation plugin adds to ``rabbitmqctl``)."""
from __future__ import annotations

from ..broker.admin import AdminError
from ..server.control import command


def _supervisor(b):
    if b.federation is None:
        raise AdminError("not_found", "federation plugin not running")
    return b.federation


@command("federation_status")
def _federation_status(b):
    return _supervisor(b).status()


@command("restart_federation_link")
def _restart_federation_link(b, link_id: str):
    if not _supervisor(b).restart(link_id):
        raise AdminError("not_found", f"Federation link with ID {link_id} is not found")
