"""``leveret perf``, the AMQP throughput/latency tester, run as a subprocess against the broker under test.

Works against Leveret (the session broker) and against RabbitMQ
(``LEVERET_TEST_URL=amqp://guest:guest@127.0.0.1:5672/%2F``). Each run is kept to a
second or two, or a fixed message count, so the file stays well under 30 s.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.parse

import pytest

from leveret.perf.stats import ConfirmTracker, percentiles, union_nonzero
from leveret.perf.wire import PerfError, parse_uri


def perf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leveret", "perf", *args],
                          capture_output=True, text=True, timeout=timeout)


def perf_json(url: str, *args: str) -> dict:
    p = perf("-u", url, "--json", *args)
    assert p.stdout.count("\n") == 1, (p.stdout, p.stderr)
    res = json.loads(p.stdout)
    assert p.returncode == (0 if res["ok"] else 1), (p.returncode, res, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    return res


def assert_clean(res: dict) -> None:
    assert res["errors"] == [], res
    assert res["lost"] == 0 and res["duplicated"] == 0 and res["unexpected"] == 0, res
    assert res["left_in_queues"] == 0, res
    assert res["ok"] is True


def test_autoack_time_run(broker_url):
    res = perf_json(broker_url, "-x", "1", "-y", "1", "-s", "16", "-z", "2", "-a")
    assert_clean(res)
    assert res["sent"] > 0
    assert res["received"] == res["sent"]
    assert res["sent_rate"] > 0 and res["received_rate"] > 0
    lat = res["latency_ms"]
    assert lat and 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_confirms_manual_ack_persistent_durable_count(broker_url):
    res = perf_json(broker_url, "-x", "2", "-y", "1", "-s", "256", "-C", "3000", "-c", "200",
                    "-f", "--durable", "-q", "100", "-A", "10")
    assert_clean(res)
    assert res["sent"] == 6000
    assert res["confirmed"] == 6000 and res["nacked"] == 0
    assert res["received"] == 6000
    assert res["redelivered"] == 0


def test_fanout_three_queues(broker_url):
    res = perf_json(broker_url, "-x", "1", "-y", "3", "--queues", "3", "--exchange-type", "fanout",
                    "-a", "-C", "5000")
    assert_clean(res)
    assert res["sent"] == 5000
    assert res["received"] == 3 * res["sent"]
    assert len(res["queues"]) == 3


def test_topic_rate_limited_and_bodies_over_frame_max(broker_url):
    # 200 KiB bodies span two body frames (frame_max <= 128 KiB); 2 producers over 2 queues
    res = perf_json(broker_url, "-x", "2", "-y", "2", "--queues", "2", "--exchange-type", "topic",
                    "-s", str(200 * 1024), "-C", "40", "-r", "200", "-A", "5")
    assert_clean(res)
    assert res["sent"] == 80 and res["received"] == 80


def test_small_bodies_count_only(broker_url):
    res = perf_json(broker_url, "-s", "4", "-C", "2000", "-a")
    assert_clean(res)
    assert res["received"] == res["sent"] == 2000
    assert res["latency_ms"] is None and "note" in res


def test_churn(broker_url):
    res = perf_json(broker_url, "--churn", "-x", "2", "-z", "1")
    assert res["mode"] == "churn"
    assert res["errors"] == []
    assert res["connections"] > 0 and res["conn_rate"] > 0
    assert res["latency_ms"]["p50"] > 0


def test_human_output(broker_url):
    p = perf("-u", broker_url, "-C", "1000", "-a")
    assert p.returncode == 0, p.stderr
    assert "sent" in p.stdout and "received" in p.stdout and "latency" in p.stdout
    assert "summary:" in p.stdout and "lost 0" in p.stdout


def _one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("leveret perf: ")
    return lines[0]


def test_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = perf("-u", f"amqp://guest:guest@127.0.0.1:{port}/%2F", "-z", "1", timeout=30)
    line = _one_line_error(p)
    assert "cannot connect" in line and str(port) in line


def test_wrong_password(broker_url):
    u = urllib.parse.urlsplit(broker_url)
    bad = u._replace(netloc=f"{u.username or 'guest'}:definitely-wrong@{u.hostname}:{u.port or 5672}")
    p = perf("-u", urllib.parse.urlunsplit(bad), "-z", "1", timeout=30)
    line = _one_line_error(p)
    assert "ACCESS_REFUSED" in line or "login refused" in line


def test_bad_options():
    p = perf("--queues", "3", "-y", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    p = perf("--queue-args", "not json")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_help_and_lazy_import():
    p = perf("--help", timeout=30)
    assert p.returncode == 0 and "--pmessages" in p.stdout and "Traceback" not in p.stderr
    # `leveret serve` start-up does not pay for the perf tool
    code = "import sys, leveret.cli; sys.exit('leveret.perf' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


# ------------------------------------------------------------ pure helpers
def test_parse_uri():
    u = parse_uri("amqp://us%40er:p%3Ass@example.com:5673/%2F")
    assert (u.user, u.password, u.host, u.port, u.vhost) == ("us@er", "p:ss", "example.com", 5673, "/")
    u = parse_uri("amqp://localhost")
    assert (u.user, u.password, u.port, u.vhost) == ("guest", "guest", 5672, "/")
    assert parse_uri("amqp://h/vh").vhost == "vh"
    with pytest.raises(PerfError):
        parse_uri("amqps://h/")
    with pytest.raises(PerfError):
        parse_uri("http://h/")


def test_confirm_tracker():
    t = ConfirmTracker()
    assert t.settle(3, False, False) == 1          # out of order single ack
    assert t.settle(1, False, False) == 1
    assert t.upto == 1 and t.extra == {3}
    assert t.settle(5, True, False) == 3           # 2, 4, 5 (3 already settled)
    assert t.upto == 5 and not t.extra and t.settled == 5
    assert t.settle(6, False, True) == 1           # nack
    assert t.settle(4, True, False) == 0           # stale
    assert t.acked_count == 5 and t.nacked_count == 1
    assert t.unconfirmed(8) == [6, 7, 5]           # 0-based: tags 7, 8 unsettled, tag 6 nacked


def test_histogram_and_union():
    h = {}
    from leveret.perf.stats import bucket
    for ns in (1_000_000,) * 98 + (50_000_000,) * 2:
        k = bucket(ns)
        h[k] = h.get(k, 0) + 1
    p = percentiles(h)
    assert 0.97 < p["p50"] < 1.03 and 48 < p["p99"] < 52 and p["max"] == p["p99"]
    assert union_nonzero([b"\x01\x00\x00", b"\x00\x00\x02\x00\x05"]).rstrip(b"\x00") != b""
    u = union_nonzero([b"\x01\x00\x00", b"\x00\x00\x02\x00\x05"])
    assert [bool(x) for x in u] == [True, False, True, False, True]
