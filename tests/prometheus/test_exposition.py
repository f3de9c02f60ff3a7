"""The sliced text encoder (prometheus/exposition.py) writes what prometheus_client's
``generate_latest`` writes for the same families, byte for byte: label values that need
escaping, label order, integers around the exponent threshold, floats, empty families, and
more samples than one slice."""
from __future__ import annotations

from prometheus_client.exposition import generate_latest

from leveret.prometheus.exposition import encode
from leveret.prometheus.metrics import Family
from leveret.prometheus.server import _Families

from .scrape import families

ODD = ['plain', 'quo"te', 'back\\slash', 'new\nline', 'ünï©ødé', '', 'a,b=c}', '\\"\n\\n']
VALUES = [0, 1, -1, 999999, 1000000, 1234567, -5000000, 10**15, 2**63, 0.5, 3.25, 1e-7, 12345678.9]


def _families() -> list[Family]:
    out = [Family("rabbitmq_queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth",
                  ("vhost", "queue"),
                  [((v, q), n) for v in ("/", "v\"h") for q in ODD for n in VALUES[:1]]),
           Family("rabbitmq_values", "gauge", "values", ("queue",), [((str(i),), v) for i, v in enumerate(VALUES)]),
           Family("rabbitmq_connections_opened_total", "counter", "Total number of connections opened", (),
                  [((), 42)]),
           Family("rabbitmq_empty", "gauge", "no samples, help with \\ and\nnewline", ("vhost", "queue")),
           Family("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info",
                  ("rabbitmq_version", "product_name"), [(("3.10.8", "Leveret"), 1)]),
           Family("rabbitmq_many", "gauge", "more than a slice", ("vhost", "queue"),
                  [(("/", f"q{i}"), i) for i in range(2500)])]
    return out


def test_encode_is_generate_latest():
    fams = _families()
    # the same label values declared in the other order: a shared label cache must not mix them up
    fams.append(Family("rabbitmq_swapped", "gauge", "swapped", ("queue", "vhost"),
                       [((q, "/"), 1) for q in ODD] + [(("/", q), 2) for q in ODD]))
    expected = generate_latest(_Families(fams)).decode()
    assert "".join(text for f in fams for text in encode(f, chunk=1000)) == expected
    cache: dict = {}
    assert "".join(text for f in fams for text in encode(f, chunk=3, labels_cache=cache)) == expected


def test_encoded_text_parses_back():
    fams = _families()
    parsed = families("".join(text for f in fams for text in encode(f, chunk=7)))
    assert [s.labels["queue"] for s in parsed["rabbitmq_queue_messages"].samples] == ODD * 2
    assert [s.value for s in parsed["rabbitmq_values"].samples] == [float(v) for v in VALUES]
    assert len(parsed["rabbitmq_many"].samples) == 2500
    assert parsed["rabbitmq_empty"].samples == []
