"""``leveret ctl`` (also ``leveretctl``): administer a running broker as ``rabbitmqctl`` does.

It talks to the broker over the control socket in the broker's data directory
(``server/control.py``), found as ``leveret serve`` finds the directory (``--data-dir``,
``LEVERET_DATA_DIR``, the per-user default). ``framework.py`` is the command framework
(registry, rabbitmqctl's argument parsing, formatters, exit codes); each command group is a
module: ``users``, ``vhosts``, ``permissions``, ``limits``, ``objects``, ``policies``,
``definitions``, ``node``; ``diagnostics`` holds ``leveret diagnostics``' commands. This package is a client: it
imports only ``leveret.settings``. See docs/ctl.md.
"""
from .main import main, run  # noqa: F401
