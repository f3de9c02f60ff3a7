"""Helpers shared by the codec and spec property tests."""
from __future__ import annotations

import math


def same(a, b) -> bool:
    """Equality that also requires equal types (True != 1, b'x' != 'x'); NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
