"""``leveret ctl shovel_status``, ``delete_shovel``, ``restart_shovel``: the control socket's side
(``rabbitmqctl``'s commands of the shovel plugin). ``delete_shovel`` clears the parameter, as
``rabbit_shovel_util:delete_shovel``; both it and ``restart_shovel`` refuse a shovel that has
no status (``not_found``)."""
from __future__ import annotations

from ..broker.admin import AdminError
from ..server.control import command
from . import COMPONENT


def _supervisor(b):
    if b.shovels is None:
        raise AdminError("not_found", "shovel plugin not running")
    return b.shovels


@command("shovel_status")
def _shovel_status(b):
    return _supervisor(b).status()


@command("delete_shovel")
def _delete_shovel(b, vhost: str, name: str):
    if (vhost, name) not in _supervisor(b).shovels:
        raise AdminError("not_found", f"Shovel with the given name was not found on the target node '{b.node_name}' "
                                      f"and / or virtual host '{vhost}'")
    b.clear_runtime_parameter(vhost, COMPONENT, name)


@command("restart_shovel")
def _restart_shovel(b, vhost: str, name: str):
    if not _supervisor(b).restart(vhost, name):
        raise AdminError("not_found", f"Shovel with the given name was not found on the target node '{b.node_name}' "
                                      f"and / or virtual host '{vhost}'")
