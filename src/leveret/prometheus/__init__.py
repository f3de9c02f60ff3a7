"""Prometheus metrics as RabbitMQ 3.10.8's ``rabbitmq_prometheus`` plugin serves them.

:mod:`.metrics` reads the broker (through ``broker/introspect.py`` and ``broker/stats.py``
only) into RabbitMQ's metric families; :mod:`.exposition` writes them in slices;
:mod:`.server` serves ``/metrics``, ``/metrics/per-object`` and ``/metrics/detailed`` on
``prometheus.tcp.port``. docs/operations.md ("Prometheus") lists what is produced and what
is absent.
"""
