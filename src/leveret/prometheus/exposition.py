"""The Prometheus text format (0.0.4), written a slice at a time so a scrape never holds the loop.

``prometheus_client.generate_latest`` formats a sample in about 20 µs (it escapes every label
name, sorts the labels, formats the value through ``floatToGoString``); the per-object output
of 10,000 queues has over 100,000 samples, i.e. seconds of the broker's only thread.
:func:`encode` is the same format specialised for :class:`~.metrics.Family` columns (label
names checked once per family, integers formatted directly) and cut into slices of
``chunk`` samples (an integer below 10^6 is written as ``floatToGoString`` writes it, ``n.0``;
Go switches to exponents above). ``tests/prometheus/test_exposition.py`` pins its output byte for byte
to ``generate_latest`` over the same families.
"""
from __future__ import annotations

from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"      # prometheus_client.CONTENT_TYPE_PLAIN_0_0_4


def _label(v) -> str:
    v = str(v)
    if "\\" in v or "\n" in v or '"' in v:
        v = v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v


def encode(f, chunk: int = 1000, labels_cache: dict | None = None):
    """Yields the text of family ``f``: HELP and TYPE with its first ``chunk`` samples, then
    ``chunk`` samples at a time. ``labels_cache`` (shared by the families of one scrape) keeps
    the written ``{...}`` of each label set: every queue family repeats the same 10,000."""
    help_ = f.help.replace("\\", r"\\").replace("\n", r"\n")
    head = f"# HELP {f.name} {help_}\n# TYPE {f.name} {f.type}\n"
    # generate_latest writes labels sorted by name
    order = sorted(range(len(f.labels)), key=lambda i: f.labels[i])
    names = tuple(f.labels[i] for i in order)
    cache = {} if labels_cache is None else labels_cache.setdefault(f.labels, {})
    samples = f.samples
    name = f.name
    for start in range(0, max(len(samples), 1), chunk):
        lines = [head] if start == 0 else []
        for values, v in samples[start:start + chunk]:
            if names:
                lab = cache.get(values)
                if lab is None:
                    lab = ",".join(f'{n}="{_label(values[i])}"' for n, i in zip(names, order))
                    lab = cache[values] = "{" + lab + "}"
            else:
                lab = ""
            if type(v) is int and -1000000 < v < 1000000:
                lines.append(f"{name}{lab} {v}.0\n")
            else:
                lines.append(f"{name}{lab} {floatToGoString(v)}\n")
        yield "".join(lines)
