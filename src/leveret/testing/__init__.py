"""Leveret for test suites: the pytest plugin (``plugin.py``, loaded through the ``pytest11``
entry point ``leveret``) and the brokers its fixtures hand out (``brokers.py``).

See docs/testing.md. ``leveret.testing.brokers`` may be used without pytest too.
"""
