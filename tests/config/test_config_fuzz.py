"""Fuzzing ``leveret.config.parse``: whatever the bytes, the outcome is a Settings (with a list of
warnings) or a ConfigError -- never another exception. Inputs are whole files made of real keys
and plausible values (typos, bad types, mixed line ends, comments, stray bytes) and every
byte-by-byte prefix of them. ``fuzz/fuzz_config.py`` runs the same check for as long as asked.

``LEVERET_FUZZ_EXAMPLES`` sets the number of examples (default 200).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leveret.config import HANDLERS, ConfigError, parse
from leveret.config.rabbitmq_keys import KEYS
from leveret.settings import Settings

EXAMPLES = int(os.environ.get("LEVERET_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEGMENTS = ["default", "1", "2", "guest", "alice", "administrator", "tlsv1.2", "x", "", "a\\.b"]
VALUES = ["5672", "127.0.0.1:5672", "::1:5672", "[::1]:5672", "none", "true", "false", "0.6", "1",
          "1GiB", "2GB", "512k", "infinity", "verify_peer", "verify_none", "PLAIN", "EXTERNAL", "-1",
          "65536", "0", "debug", "<=notice", "=debug", "stdout", "/nonexistent", "/etc/hostname",
          "tlsv1.3", "subject_alt_name", ".*", "1.5", "1e3", "0x10", "99999999999999999999"]


def _key(pattern: str, fill: list[str]) -> str:
    return ".".join(fill.pop() if p.startswith("$") and fill else p for p in pattern.split("."))


@st.composite
def line(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(["", "   ", "# comment", "\t# x", "include nothere.conf", "include /dev/*"]))
    if kind == 1:
        return draw(st.text(max_size=30))
    pattern = draw(st.sampled_from(sorted(HANDLERS) if kind < 7 else sorted(KEYS)))
    key = _key(pattern, draw(st.lists(st.sampled_from(SEGMENTS), min_size=2, max_size=2)))
    if draw(st.integers(0, 9)) == 0:      # a typo
        i = draw(st.integers(0, max(len(key) - 1, 0)))
        key = key[:i] + draw(st.sampled_from(["", "_", "x", ".", " "])) + key[i + 1:]
    value = draw(st.one_of(st.sampled_from(VALUES), st.text(max_size=12)))
    sep = draw(st.sampled_from([" = ", "=", " =\t", " : ", "  =  "]))
    tail = draw(st.sampled_from(["", "  ", " # trailing", "#", "\r"]))
    return f"{key}{sep}{value}{tail}"


@st.composite
def config_file(draw) -> bytes:
    text = draw(st.sampled_from(["\n", "\r\n"])).join(draw(st.lists(line(), max_size=12)))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):               # stray bytes
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(data)))
            data = data[:i] + draw(st.binary(min_size=1, max_size=3)) + data[i:]
    return data


def check(data: bytes) -> Settings | None:
    """The invariant: a Settings and a list of str, or a ConfigError with a message."""
    try:
        s, warnings = parse(data, "fuzz.conf")
    except ConfigError as e:
        assert str(e).startswith("fuzz.conf") and e.message
        return None
    assert isinstance(s, Settings) and all(isinstance(w, str) for w in warnings)
    return s


@FUZZ
@given(config_file())
def test_whole_files_give_settings_or_a_config_error(data):
    check(data)


@settings(max_examples=max(EXAMPLES // 4, 20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_file())
def test_every_prefix_gives_settings_or_a_config_error(data):
    for n in range(len(data) + 1):
        check(data[:n])


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    check(data)


def test_the_generator_reaches_both_outcomes():
    """Sanity: the strategies above produce valid files too, not only errors."""
    assert check(b"listeners.tcp.default = 5673\nloopback_users.guest = false\n").port == 5673
    assert check(b"listeners.tcp.default = nope\n") is None
