"""``leveret serve`` runs the metrics endpoint by default (an embedded broker only when asked),
on ``prometheus.tcp.port`` / ``--prometheus-port`` / LEVERET_PROMETHEUS_PORT, off with
``--no-prometheus``."""
from __future__ import annotations

import gzip
import urllib.error
import urllib.request

import pytest

from leveret import Settings
from leveret.cli import build_parser, build_settings

pytestmark = pytest.mark.leveret_only


def settings_for(argv: list[str], environ: dict) -> Settings:
    return build_settings(build_parser().parse_args(["serve", *argv]), environ)[0]


def test_serve_settings(tmp_path):
    assert Settings().prometheus_enabled is False                    # embedded: off
    s = settings_for([], {})
    assert (s.prometheus_enabled, s.prometheus_port) == (True, 15692)
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text("prometheus.tcp.port = 15700\nprometheus.tcp.ip = 0.0.0.0\n")
    s = settings_for(["--config", str(cfg)], {})
    assert (s.prometheus_port, s.prometheus_host) == (15700, "0.0.0.0")
    assert settings_for(["--config", str(cfg)], {"LEVERET_PROMETHEUS_PORT": "15701"}).prometheus_port == 15701
    assert settings_for(["--prometheus-port", "0"], {"LEVERET_PROMETHEUS_PORT": "15701"}).prometheus_port == 0
    assert settings_for(["--no-prometheus"], {}).prometheus_enabled is False
    with pytest.raises(ValueError):
        settings_for(["--prometheus-port", "http"], {})


def test_no_prometheus_serves_nothing(leveret_server):
    s = leveret_server("--no-prometheus")
    assert s.management_url is not None             # (the server is up and logging)
    assert "Prometheus metrics on" not in s.log()


def test_unknown_registry_and_methods(leveret_server):
    base = leveret_server().prometheus_url
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/metrics/nonsense", timeout=10)
    assert (e.value.code, e.value.read()) == (404, b"Unknown Registry")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(base + "/metrics", data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405 and e.value.headers["allow"] == "HEAD, GET, OPTIONS"
    with urllib.request.urlopen(urllib.request.Request(base + "/metrics/per-object", method="HEAD"), timeout=10) as r:
        assert r.status == 200 and r.read() == b""
    req = urllib.request.Request(base + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert b"rabbitmq_identity_info" in gzip.decompress(r.read())
