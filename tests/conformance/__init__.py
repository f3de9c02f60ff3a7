"""Conformance tests (a package so that its ``conftest``/``helpers`` do not shadow ``tests/conftest.py``)."""
