"""The generated method codecs (``leveret.amqp.spec``) against the spec and pamqp.

* ``tools/gen_spec.py --check``: the committed spec.py is exactly what the
  generator makes from ``../shared/spec/amqp-rabbitmq-0.9.1.json``;
* every method class round-trips ``encode`` -> ``decode_method`` for
  Hypothesis-generated field values of the right AMQP types (byte-exact on
  re-encode), and every truncation of a valid payload is an AMQPError;
* agreement with pamqp (the reference client codec) in both directions for the
  methods clients and servers actually exchange: our frame -> ``pamqp.frame.unmarshal``
  gives equal fields, ``pamqp.frame.marshal`` -> our ``decode_method`` gives equal fields.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqp_testutil import same

from leveret.amqp import spec
from leveret.amqp.codec import table_plain
from leveret.amqp.errors import AMQPError
from leveret.amqp.frames import method_frame

pamqp_commands = pytest.importorskip("pamqp.commands")
pamqp_frame = pytest.importorskip("pamqp.frame")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_JSON = os.path.join(ROOT, "..", "shared", "spec", "amqp-rabbitmq-0.9.1.json")
EXAMPLES = int(os.environ.get("LEVERET_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ field types

# pamqp 4 has no access.request / access.request-ok (deprecated class 30)
_ACCESS_TYPES = {
    spec.AccessRequest.INDEX: ["shortstr", "bit", "bit", "bit", "bit", "bit"],
    spec.AccessRequestOk.INDEX: ["short"],
}


def field_types(cls) -> list[str]:
    """AMQP types of a method's fields, in order (from pamqp, which follows the same spec)."""
    if cls.INDEX in _ACCESS_TYPES:
        return _ACCESS_TYPES[cls.INDEX]
    p = pamqp_commands.INDEX_MAPPING[cls.INDEX]
    return [p.amqp_type(a) for a in p.attributes()]


def _json_types() -> dict[int, list[str]]:
    with open(SPEC_JSON) as f:
        s = json.load(f)
    domains = {d[0]: d[1] for d in s["domains"]}

    def resolve(a):
        t = a.get("type") or domains[a["domain"]]
        while t in domains and domains[t] != t:
            t = domains[t]
        return t

    return {c["id"] << 16 | m["id"]: [resolve(a) for a in m["arguments"]]
            for c in s["classes"] for m in c["methods"]}


needs_spec_json = pytest.mark.skipif(not os.path.exists(SPEC_JSON),
                                     reason=f"shared spec JSON not found at {SPEC_JSON}")


@needs_spec_json
def test_gen_spec_check_is_a_noop():
    """Regenerating spec.py from the shared JSON changes nothing (tools/gen_spec.py --check exits 0)."""
    r = subprocess.run([sys.executable, os.path.join("tools", "gen_spec.py"), "--check"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_spec_json
def test_method_table_matches_spec_json():
    """METHODS holds exactly the spec's methods, each with the spec's field count and types."""
    jt = _json_types()
    assert set(spec.METHODS) == set(jt)
    for idx, cls in spec.METHODS.items():
        assert cls.INDEX == idx and cls._HEAD == struct.pack(">HH", idx >> 16, idx & 0xFFFF)
        assert len(cls.FIELDS) == len(jt[idx]), cls.NAME
        assert field_types(cls) == jt[idx], cls.NAME


def test_every_method_has_pamqp_or_known_types():
    """Every generated class has as many fields as the oracle's type list (pamqp or access.*)."""
    assert len(spec.METHODS) == 66
    for cls in spec.METHODS.values():
        assert len(field_types(cls)) == len(cls.FIELDS), cls.NAME


# ------------------------------------------------------------------ strategies

_raw_str = lambda n: st.binary(max_size=n).map(lambda b: b.decode("utf-8", "surrogateescape"))  # noqa: E731

_scalar = st.one_of(
    st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.text(max_size=20),
    st.floats(allow_nan=False), st.none(),
    st.tuples(st.integers(0, 10), st.integers(0, 2 ** 32 - 1)).map(lambda t: Decimal(t[1]).scaleb(-t[0])),
)
plain_table = st.dictionaries(
    st.text(max_size=12),
    st.recursive(_scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c,
                                                                                        max_size=3)),
                 max_leaves=8),
    max_size=5)

OURS = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": st.integers(0, 2 ** 16 - 1),
    "long": st.integers(0, 2 ** 32 - 1),
    "longlong": st.integers(0, 2 ** 64 - 1),
    "timestamp": st.integers(0, 2 ** 64 - 1),
    "shortstr": _raw_str(255),
    "longstr": _raw_str(300),
    "table": plain_table,
}


ALL = sorted(spec.METHODS.values(), key=lambda c: c.INDEX)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.NAME)
def test_method_roundtrip(cls):
    """encode -> decode_method gives the same class and field values; re-encoding is byte-exact."""
    types = field_types(cls)

    @SETTINGS
    @given(st.fixed_dictionaries({f: OURS[t] for f, t in zip(cls.FIELDS, types)}))
    def check(kw):
        m = cls(**kw)
        payload = m.encode()
        assert payload[:4] == struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID)
        for buf in (payload, memoryview(payload), bytearray(payload)):
            d = spec.decode_method(buf)
            assert type(d) is cls
            for f, t in zip(cls.FIELDS, types):
                got = getattr(d, f)
                if t == "table":
                    assert same(table_plain(got), kw[f]), f
                else:
                    assert got == kw[f] and type(got) is type(kw[f]), f
            assert d.encode() == payload
        # whole frame through pamqp's framing check too (type, channel, size, end octet)
        fr = method_frame(5, m)
        assert fr[0] == 1 and struct.unpack(">H", fr[1:3])[0] == 5 and fr[-1] == 0xCE
        assert struct.unpack(">I", fr[3:7])[0] == len(payload)

    check()


@pytest.mark.parametrize("cls", [c for c in ALL if c.FIELDS], ids=lambda c: c.NAME)
def test_truncated_payloads_raise_amqp_errors(cls):
    """Every strict prefix of a valid payload raises an AMQPError (never IndexError/struct.error)."""
    types = field_types(cls)
    kw = {f: {"bit": True, "table": {"k": "v", "n": [1, 2.5, None]}, "shortstr": "abc",
              "longstr": "hello"}.get(t, 7) for f, t in zip(cls.FIELDS, types)}
    payload = cls(**kw).encode()
    for cut in range(len(payload)):
        with pytest.raises(AMQPError):
            spec.decode_method(payload[:cut])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL), st.binary(max_size=60))
def test_random_arguments_raise_only_amqp_errors(cls, tail):
    """A known method id followed by random bytes decodes or raises an AMQPError subclass."""
    try:
        spec.decode_method(cls._HEAD + tail)
    except AMQPError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_payloads_raise_only_amqp_errors(buf):
    """Any payload at all decodes or raises an AMQPError subclass (unknown ids included)."""
    try:
        spec.decode_method(buf)
    except AMQPError:
        pass


# ------------------------------------------------------------------ pamqp agreement

NAME = st.from_regex(r"[a-zA-Z0-9_.:\-]{0,40}", fullmatch=True)
TEXT = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)

_p_scalar = st.one_of(
    st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.text(max_size=20),
    st.floats(width=32, allow_nan=False), st.none(),
    st.tuples(st.integers(0, 10), st.integers(0, 2 ** 31 - 1)).map(lambda t: Decimal(t[1]).scaleb(-t[0])),
)
_p_keys = st.from_regex(r"[A-Za-z$#][A-Za-z0-9_$#.-]{0,15}", fullmatch=True)
PAMQP_TABLE = st.dictionaries(
    _p_keys,
    st.recursive(_p_scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_p_keys, c, max_size=3)),
                 max_leaves=8),
    max_size=5)

# fields whose value pamqp's validate() pins down
FIXED = {"ticket": 0, "capabilities": "", "insist": False, "out_of_band": "0", "known_hosts": "",
         "channel_id": "0", "reserved_1": 0}
NAMEISH = {"exchange", "queue", "destination", "source", "routing_key", "consumer_tag", "exchange_type",
           "type", "virtual_host"}

PAMQP_TYPES = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": st.integers(0, 2 ** 16 - 1),
    "long": st.integers(0, 2 ** 32 - 1),
    "longlong": st.integers(0, 2 ** 63 - 1),
    "shortstr": TEXT,
    "longstr": st.text(max_size=60),
    "table": PAMQP_TABLE,
}

PAMQP_METHODS = [
    spec.BasicPublish, spec.BasicDeliver, spec.BasicConsume, spec.BasicConsumeOk, spec.BasicAck, spec.BasicNack,
    spec.BasicReject, spec.BasicGet, spec.BasicGetOk, spec.BasicReturn, spec.BasicQos, spec.BasicCancel,
    spec.QueueDeclare, spec.QueueDeclareOk, spec.QueueBind, spec.QueueUnbind, spec.QueueDelete, spec.QueuePurge,
    spec.ExchangeDeclare, spec.ExchangeBind, spec.ExchangeDelete,
    spec.ConnectionStart, spec.ConnectionStartOk, spec.ConnectionTune, spec.ConnectionTuneOk, spec.ConnectionOpen,
    spec.ConnectionClose, spec.ConnectionBlocked, spec.ChannelOpen, spec.ChannelClose, spec.ChannelFlow,
    spec.ConfirmSelect,
]


def pamqp_kwargs(cls, draw_from):
    pcls = pamqp_commands.INDEX_MAPPING[cls.INDEX]
    strategies = {}
    for ours, theirs in zip(cls.FIELDS, pcls.attributes()):
        t = pcls.amqp_type(theirs)
        if theirs in FIXED:
            strategies[ours] = st.just(FIXED[theirs])
        elif theirs in NAMEISH and t == "shortstr":
            strategies[ours] = NAME
        else:
            strategies[ours] = PAMQP_TYPES[t]
    return st.fixed_dictionaries(strategies)


def to_pamqp(cls, kw):
    pcls = pamqp_commands.INDEX_MAPPING[cls.INDEX]
    return pcls(**{theirs: kw[ours] for ours, theirs in zip(cls.FIELDS, pcls.attributes())})


def _norm(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "surrogateescape")
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def assert_fields_equal(cls, ours, theirs_obj):
    pcls = pamqp_commands.INDEX_MAPPING[cls.INDEX]
    for f, a in zip(cls.FIELDS, pcls.attributes()):
        t = pcls.amqp_type(a)
        mine, theirs = getattr(ours, f), getattr(theirs_obj, a)
        if t == "table":
            assert same(table_plain(mine or {}), theirs or {}), (cls.NAME, f, mine, theirs)
        elif t in ("shortstr", "longstr"):
            assert _norm(mine) == _norm(theirs), (cls.NAME, f, mine, theirs)
        else:
            assert mine == theirs, (cls.NAME, f, mine, theirs)


@pytest.mark.parametrize("cls", PAMQP_METHODS, ids=lambda c: c.NAME)
def test_agrees_with_pamqp_both_ways(cls):
    """leveret frame -> pamqp.frame.unmarshal and pamqp.frame.marshal -> decode_method give equal fields."""

    @SETTINGS
    @given(pamqp_kwargs(cls, None), st.integers(0, 2047))
    def check(kw, channel):
        # pamqp -> leveret
        pm = to_pamqp(cls, kw)
        pbytes = pamqp_frame.marshal(pm, channel)
        ftype, ch, size = struct.unpack(">BHI", pbytes[:7])
        assert (ftype, ch, pbytes[-1]) == (1, channel, 0xCE)
        ours = spec.decode_method(pbytes[7:-1])
        assert type(ours) is cls
        assert_fields_equal(cls, ours, pm)
        # leveret -> pamqp (our encoding of the decoded method and of the raw kwargs)
        for m in (ours, cls(**kw)):
            obytes = method_frame(channel, m)
            consumed, ch2, theirs = pamqp_frame.unmarshal(obytes)
            assert consumed == len(obytes) and ch2 == channel
            assert type(theirs) is pamqp_commands.INDEX_MAPPING[cls.INDEX]
            assert_fields_equal(cls, m if m is ours else spec.decode_method(obytes[7:-1]), theirs)
        # both encoders agree byte for byte where pamqp's choices match ours (no tables)
        if "table" not in field_types(cls):
            assert method_frame(channel, cls(**kw)) == pbytes

    check()


def test_queue_declare_arguments_keep_wire_types():
    """queue.declare arguments from pamqp (smallest int types) re-encode with the same tags."""
    pm = pamqp_commands.Queue.Declare(queue="q", durable=True, arguments={
        "x-max-length": 10, "x-message-ttl": 60000, "x-overflow": "reject-publish", "x-max-priority": 300,
        "x-big": 2 ** 40, "x-neg": -5, "x-flag": True, "x-nested": {"a": [1, "b"]}})
    payload = pamqp_frame.marshal(pm, 1)[7:-1]
    m = spec.decode_method(payload)
    assert table_plain(m.arguments) == pm.arguments
    assert m.encode() == payload


def test_exchange_declare_known_bytes():
    """exchange.declare encodes exactly as pamqp does, bits packed into one octet."""
    pm = pamqp_commands.Exchange.Declare(exchange="logs", exchange_type="fanout", durable=True,
                                         auto_delete=True, internal=False, nowait=True)
    m = spec.ExchangeDeclare(exchange="logs", type="fanout", durable=True, auto_delete=True, nowait=True)
    assert method_frame(3, m) == pamqp_frame.marshal(pm, 3)
    assert m.encode()[-5] == 0b10110    # durable | auto_delete | nowait (bits 1, 2, 4)
