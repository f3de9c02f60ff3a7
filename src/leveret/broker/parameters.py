"""Runtime parameters: per-vhost ``(component, name) -> value`` settings, as RabbitMQ's
``rabbit_runtime_parameters``.

RabbitMQ keeps several features as runtime parameters of a *component* that a plugin
registers: ``vhost-limits`` (the core: one parameter named ``limits`` per vhost whose value
is the limits object), ``policy`` and ``operator_policy`` (listed by component, but left out
of the list of all parameters), ``shovel`` and ``federation-upstream`` (their plugins). A
component Leveret does not have is refused as RabbitMQ refuses one whose plugin is not
enabled: ``Validation failed\\n\\ncomponent x-unknown not found\\n``. Components
whose parameters the broker stores for them (the shovel's) subclass :class:`StoredComponent`.

Leveret stores each component's parameters where the feature lives (vhost limits in the vhost
record, policies in the vhost's policy table), so a component here is an adapter: ``list``,
``set`` and ``clear`` over the broker's own methods. A feature that adds a component (the
shovel) calls :func:`register` with its own :class:`Component`; the management API's
``/api/parameters`` and the definitions import/export then serve it unchanged.

Errors are :class:`~leveret.broker.admin.AdminError`: ``no_such_vhost``,
``no_such_parameter``, and ``invalid_parameter`` with RabbitMQ's validation text.
"""
from __future__ import annotations

from .admin import AdminError


class Component:
    """One component's parameters. Subclasses implement the three operations."""

    name = ""
    listed = True           # part of the list of every parameter (policies are not)

    def list(self, broker, vhost: str | None) -> list[tuple[str, str, object]]:
        """``(vhost, name, value)`` of each parameter (of one vhost, or of all)."""
        raise NotImplementedError

    def set(self, broker, vhost: str, name: str, value) -> None:
        raise NotImplementedError

    def clear(self, broker, vhost: str, name: str) -> None:
        raise NotImplementedError


class StoredComponent(Component):
    """A component whose parameters the broker keeps for it (``Broker.runtime_parameters``,
    durable): a feature supplies :meth:`validate` (RabbitMQ's ``validate/5``: the list of
    error lines, empty when the value is good) and reads changes through ``Broker.hooks``
    (RabbitMQ's ``notify/5`` and ``notify_clear/4``)."""

    def validate(self, broker, vhost: str, name: str, value, user) -> list[str]:
        raise NotImplementedError

    def list(self, broker, vhost):
        return [(v, n, value) for (v, c, n), value in broker.runtime_parameters.items()
                if c == self.name and (vhost is None or v == vhost)]

    def set(self, broker, vhost, name, value, user=None):
        errors = self.validate(broker, vhost, name, value, user)
        if errors:
            raise AdminError("invalid_parameter", "Validation failed\n\n" + "".join(e + "\n" for e in errors))
        broker.set_runtime_parameter(vhost, self.name, name, value)

    def clear(self, broker, vhost, name):
        broker.clear_runtime_parameter(vhost, self.name, name)


class VHostLimits(Component):
    """``vhost-limits``: the vhost's ``max-connections`` / ``max-queues``, named ``limits``."""

    name = "vhost-limits"

    def list(self, broker, vhost):
        return [(v.name, "limits", dict(v.limits)) for v in broker.vhosts.values()
                if v.limits and (vhost is None or v.name == vhost)]

    def set(self, broker, vhost, name, value):
        if name != "limits":
            # (RabbitMQ 3.10 crashes with a 500 on any other name)
            raise AdminError("invalid_parameter", f"Validation failed\n\nvhost-limits parameter must be named "
                                                  f"'limits', not '{name}'\n")
        broker.set_vhost_limits(vhost, value)

    def clear(self, broker, vhost, name):
        broker.clear_vhost_limits(vhost)


class Policies(Component):
    """``policy`` / ``operator_policy``: a policy as a parameter whose value is
    ``{pattern, definition, priority, apply-to}``."""

    listed = False

    def __init__(self, operator: bool):
        self.operator = operator
        self.name = "operator_policy" if operator else "policy"

    def list(self, broker, vhost):
        return [(p["vhost"], p["name"], {"pattern": p["pattern"], "definition": p["definition"],
                                         "priority": p["priority"], "apply-to": p["apply-to"]})
                for p in broker.list_policies(vhost, operator=self.operator)]

    def set(self, broker, vhost, name, value):
        if not isinstance(value, dict):
            raise AdminError("invalid_parameter", f"Validation failed\n\n{self.name} not a list {value!r}\n")
        try:
            broker.put_policy(vhost, name, value.get("pattern"), value.get("definition"), value.get("priority", 0),
                              value.get("apply-to", "all"), operator=self.operator)
        except AdminError as e:
            if e.kind != "invalid_policy":
                raise
            raise AdminError("invalid_parameter", f"Validation failed\n\n{e}\n") from None

    def clear(self, broker, vhost, name):
        try:
            broker.clear_policy(name, vhost, operator=self.operator)
        except ValueError:
            raise AdminError("no_such_parameter", "Parameter does not exist") from None


COMPONENTS: dict[str, Component] = {}


def register(component: Component) -> None:
    """Make a component's parameters settable (a plugin-like feature calls this)."""
    COMPONENTS[component.name] = component


for _c in (VHostLimits(), Policies(False), Policies(True)):
    register(_c)


def _component(name: str) -> Component:
    c = COMPONENTS.get(name)
    if c is None:
        raise AdminError("invalid_parameter", f"Validation failed\n\ncomponent {name} not found\n")
    return c


def as_dict(component: str, vhost: str, name: str, value) -> dict:
    """A parameter as RabbitMQ's API and definitions show it (its key order)."""
    return {"value": value, "vhost": vhost, "component": component, "name": name}


def list_parameters(broker, component: str | None = None, vhost: str | None = None) -> list[dict]:
    """Every parameter (policies only when their component is asked for), or one component's,
    optionally of one vhost; an unknown component has none."""
    if vhost is not None:
        broker._vhost(vhost)
    comps = [c for c in COMPONENTS.values() if c.listed] if component is None else \
        [COMPONENTS[component]] if component in COMPONENTS else []
    return [as_dict(c.name, v, n, value) for c in comps for v, n, value in c.list(broker, vhost)]


def get_parameter(broker, component: str, vhost: str, name: str) -> dict:
    for p in list_parameters(broker, component, vhost):
        if p["name"] == name:
            return p
    raise AdminError("no_such_parameter", "Parameter does not exist")


def set_parameter(broker, component: str, vhost: str, name: str, value, user=None) -> None:
    """Set a parameter; ``user`` (who sets it: the management API's) is what a
    :class:`StoredComponent` validates against (None: the CLI and definitions, as RabbitMQ's
    ``none`` acting user)."""
    c = _component(component)
    broker._vhost(vhost)
    if isinstance(c, StoredComponent):
        c.set(broker, vhost, name, value, user)
    else:
        c.set(broker, vhost, name, value)


def clear_parameter(broker, component: str, vhost: str, name: str) -> None:
    get_parameter(broker, component, vhost, name)
    COMPONENTS[component].clear(broker, vhost, name)
