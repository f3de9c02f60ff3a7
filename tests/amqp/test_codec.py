"""Property tests for the AMQP wire primitives in ``leveret.amqp.codec``.

What is pinned down:

* field tables built from raw wire bytes with every value type RabbitMQ's
  ``rabbit_binary_parser`` accepts (``S T b B s u I i d f l L t D F A x V``)
  survive ``decode_table_typed`` -> ``encode_table`` byte for byte;
* tables of plain Python values survive ``encode_table`` -> ``decode_table``;
* ``BasicProperties`` decode/encode is byte-exact for any subset of the 14
  basic properties, and ``peek_delivery_mode_priority`` agrees with it;
* agreement with pamqp (the reference client codec) where pamqp is lossless;
* malformed input only ever raises ``leveret.amqp.errors.AMQPError``.

The RabbitMQ facts used here were read off RabbitMQ 3.10.8 itself:
``rabbit_binary_parser:parse_table/1`` (tags and signedness: ``i``/``D`` are
unsigned 32-bit, ``L`` is *signed* 64-bit, ``t`` is "octet /= 0"),
``rabbit_framing_amqp_0_9_1:decode_properties(60, ...)`` (one 16-bit flag word,
the two low bits ignored) and a live broker (duplicate table keys: the first
one wins).
"""
from __future__ import annotations

import datetime
import math
import os
import struct
from decimal import Decimal

import pytest
from amqp_testutil import same
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from leveret.amqp import codec
from leveret.amqp.codec import (
    PROPERTY_NAMES,
    BasicProperties,
    Typed,
    check_properties,
    decode_table,
    decode_table_typed,
    encode_table,
    peek_delivery_mode_priority,
    table_plain,
)
from leveret.amqp.errors import AMQPError, AMQPSyntaxError, TableCrash

pamqp_decode = pytest.importorskip("pamqp.decode")
pamqp_encode = pytest.importorskip("pamqp.encode")
pamqp_commands = pytest.importorskip("pamqp.commands")

# LEVERET_HYPOTHESIS_EXAMPLES=5000 for a long local run; the CI default keeps this file fast
EXAMPLES = int(os.environ.get("LEVERET_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ wire builders


def ss(b: bytes) -> bytes:
    return bytes((len(b),)) + b


def lstr(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def table_bytes(entries) -> bytes:
    """``entries``: iterable of (key bytes, encoded field value incl. tag)."""
    return lstr(b"".join(ss(k) + v for k, v in entries))


def fixed(tag: bytes, n: int):
    return st.binary(min_size=n, max_size=n).map(lambda b: tag + b)


# every scalar tag RabbitMQ 3.10 accepts, as raw wire bytes (tag included)
SCALAR_WIRE = {
    "t": st.sampled_from([b"t\x00", b"t\x01"]),   # other octets are normalised, see below
    "b": fixed(b"b", 1),
    "B": fixed(b"B", 1),
    "s": fixed(b"s", 2),
    "u": fixed(b"u", 2),
    "I": fixed(b"I", 4),
    "i": fixed(b"i", 4),
    "l": fixed(b"l", 8),
    "L": fixed(b"L", 8),
    "f": fixed(b"f", 4),                          # any bit pattern, NaN payloads included
    "d": fixed(b"d", 8),
    "D": fixed(b"D", 5),
    "T": fixed(b"T", 8),
    "S": st.binary(max_size=40).map(lambda b: b"S" + lstr(b)),
    "x": st.binary(max_size=40).map(lambda b: b"x" + lstr(b)),
    "V": st.just(b"V"),
}
ALL_TAGS = "tbBsuIilLfdDSxTFAV"
assert set(SCALAR_WIRE) | {"F", "A"} == set(ALL_TAGS)

wire_scalar = st.one_of(*SCALAR_WIRE.values())
wire_keys = st.binary(max_size=24)   # RabbitMQ accepts any octets as a key


def _wire_containers(children):
    return st.one_of(
        st.lists(children, max_size=5).map(lambda vs: b"A" + lstr(b"".join(vs))),
        st.dictionaries(wire_keys, children, max_size=5).map(lambda d: b"F" + table_bytes(d.items())),
    )


wire_value = st.recursive(wire_scalar, _wire_containers, max_leaves=12)
wire_table = st.dictionaries(wire_keys, wire_value, max_size=8).map(lambda d: table_bytes(d.items()))


# ------------------------------------------------------------------ byte-exact tables


@SETTINGS
@given(wire_table)
def test_typed_table_roundtrips_byte_exact(raw):
    """Any well-formed table re-encodes to the identical bytes through decode_table_typed."""
    table, end = decode_table_typed(raw)
    assert end == len(raw)
    assert encode_table(table) == raw


@SETTINGS
@given(st.binary(max_size=9), wire_table, st.binary(max_size=9))
def test_typed_table_at_offset_and_memoryview(prefix, raw, suffix):
    """Decoding at an offset inside a bigger (memoryview) buffer stops exactly at the table end."""
    buf = memoryview(prefix + raw + suffix)
    table, end = decode_table_typed(buf, len(prefix))
    assert end == len(prefix) + len(raw)
    assert encode_table(table) == raw
    plain, end2 = decode_table(buf, len(prefix))
    assert end2 == end


@pytest.mark.parametrize("tag", list(ALL_TAGS))
def test_each_tag_roundtrips(tag):
    """Every tag rabbit_binary_parser accepts decodes and re-encodes byte-exact (one example per tag)."""
    samples = {
        "t": b"t\x01", "b": b"b\xff", "B": b"B\xff", "s": b"s\x80\x00", "u": b"u\xff\xff",
        "I": b"I\x80\x00\x00\x00", "i": b"i\xff\xff\xff\xff", "l": b"l\x80" + b"\x00" * 7,
        "L": b"L\xff" * 1 + b"\xff" * 7, "f": b"f\x7f\x80\x00\x01", "d": b"d\x7f\xf0" + b"\x00" * 5 + b"\x01",
        "D": b"D\x02\xff\xff\xff\xff", "T": b"T\xff" + b"\xff" * 7, "S": b"S" + lstr(b"\xff\xfeok"),
        "x": b"x" + lstr(b"\x00\x01"), "V": b"V", "F": b"F" + table_bytes([(b"k", b"V")]),
        "A": b"A" + lstr(b"V" + b"I\x00\x00\x00\x01"),
    }
    raw = table_bytes([(b"key", samples[tag])])
    table, _ = decode_table_typed(raw)
    assert isinstance(table["key"], Typed) and table["key"].tag == tag
    assert encode_table(table) == raw


def test_typed_values_follow_rabbitmq_signedness():
    """Decoded values use rabbit_binary_parser's signedness (b s I l L signed; B u i T D unsigned)."""
    raw = table_bytes([
        (b"b", b"b\xff"), (b"B", b"B\xff"), (b"s", b"s\xff\xff"), (b"u", b"u\xff\xff"),
        (b"I", b"I\xff\xff\xff\xff"), (b"i", b"i\xff\xff\xff\xff"),
        (b"l", b"l" + b"\xff" * 8), (b"L", b"L" + b"\xff" * 8), (b"T", b"T" + b"\xff" * 8),
        (b"D", b"D\x03\xff\xff\xff\xff"), (b"t", b"t\x00"), (b"V", b"V"),
        (b"S", b"S" + lstr("é".encode())), (b"x", b"x" + lstr(b"\x80")),
        (b"d", b"d" + struct.pack(">d", 1.5)), (b"f", b"f" + struct.pack(">f", 0.25)),
    ])
    t, _ = decode_table(raw)
    assert t == {
        "b": -1, "B": 255, "s": -1, "u": 65535, "I": -1, "i": 4294967295,
        "l": -1, "L": -1, "T": 2 ** 64 - 1, "D": Decimal("4294967.295"), "t": False, "V": None,
        "S": "é", "x": b"\x80", "d": 1.5, "f": 0.25,
    }
    typed, _ = decode_table_typed(raw)
    assert typed["S"] == Typed("S", "é".encode())      # typed longstr keeps the bytes
    assert typed["D"] == Typed("D", Decimal("4294967.295"))
    assert encode_table(typed) == raw


def test_bool_octet_is_normalised_like_rabbitmq():
    """'t' with an octet other than 0/1 is true (RabbitMQ: Value /= 0) and re-encodes as 1."""
    raw = table_bytes([(b"k", b"t\x02")])
    assert decode_table(raw)[0] == {"k": True}
    assert encode_table(decode_table_typed(raw)[0]) == table_bytes([(b"k", b"t\x01")])


def test_duplicate_keys_first_wins():
    """With a repeated key the first value is the one seen (RabbitMQ's table_lookup keeps the first)."""
    raw = table_bytes([(b"x-max-length", b"I\x00\x00\x00\x01"), (b"x-max-length", b"I\x00\x00\x00\x05")])
    assert decode_table(raw)[0] == {"x-max-length": 1}
    assert decode_table_typed(raw)[0] == {"x-max-length": Typed("I", 1)}


def test_float32_nan_payload_survives():
    """A signalling-NaN float32 is not quietened on re-encode (Python's float would set the quiet bit)."""
    for bits in (b"\x7f\x80\x00\x01", b"\xff\xbf\xff\xff", b"\x7f\xc0\x12\x34"):
        raw = table_bytes([(b"n", b"f" + bits)])
        t, _ = decode_table_typed(raw)
        assert math.isnan(t["n"].value)
        assert encode_table(t) == raw
        assert encode_table(decode_table(raw)[0]) != b""  # plain decode still encodable


# ------------------------------------------------------------------ typed values -> wire -> typed


def _f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


TYPED_SCALAR = st.one_of(
    st.booleans().map(lambda v: Typed("t", v)),
    st.integers(-128, 127).map(lambda v: Typed("b", v)),
    st.integers(0, 255).map(lambda v: Typed("B", v)),
    st.integers(-(2 ** 15), 2 ** 15 - 1).map(lambda v: Typed("s", v)),
    st.integers(0, 2 ** 16 - 1).map(lambda v: Typed("u", v)),
    st.integers(-(2 ** 31), 2 ** 31 - 1).map(lambda v: Typed("I", v)),
    st.integers(0, 2 ** 32 - 1).map(lambda v: Typed("i", v)),
    st.integers(-(2 ** 63), 2 ** 63 - 1).map(lambda v: Typed("l", v)),
    st.integers(-(2 ** 63), 2 ** 63 - 1).map(lambda v: Typed("L", v)),
    st.floats(width=32, allow_nan=False).map(lambda v: Typed("f", v)),
    st.floats(allow_nan=False).map(lambda v: Typed("d", v)),
    st.tuples(st.integers(0, 255), st.integers(0, 2 ** 32 - 1)).map(
        lambda sr: Typed("D", Decimal(sr[1]).scaleb(-sr[0]))),
    st.integers(0, 2 ** 64 - 1).map(lambda v: Typed("T", v)),
    st.binary(max_size=30).map(lambda v: Typed("S", v)),
    st.binary(max_size=30).map(lambda v: Typed("x", v)),
    st.just(Typed("V", None)),
)
typed_keys = st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape"))
typed_value = st.recursive(
    TYPED_SCALAR,
    lambda ch: st.one_of(st.lists(ch, max_size=4).map(lambda v: Typed("A", v)),
                         st.dictionaries(typed_keys, ch, max_size=4).map(lambda v: Typed("F", v))),
    max_leaves=20)
typed_table = st.dictionaries(typed_keys, typed_value, max_size=6)


@SETTINGS
@given(typed_table)
def test_typed_values_roundtrip(table):
    """Typed(tag, value) tables encode and decode back to equal Typed tables (tags kept)."""
    raw = encode_table(table)
    back, end = decode_table_typed(raw)
    assert end == len(raw)
    assert back == table
    assert encode_table(back) == raw


# ------------------------------------------------------------------ plain values


def _not_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


PLAIN_SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2 ** 63), 2 ** 63 - 1),
    st.text(max_size=30),
    st.binary(min_size=1, max_size=30).filter(_not_utf8),   # valid UTF-8 comes back as str
    st.floats(allow_nan=False),
    st.tuples(st.integers(0, 255), st.integers(0, 2 ** 32 - 1)).map(lambda sr: Decimal(sr[1]).scaleb(-sr[0])),
    st.none(),
)
plain_value = st.recursive(
    PLAIN_SCALAR,
    lambda ch: st.one_of(st.lists(ch, max_size=4), st.dictionaries(st.text(max_size=12), ch, max_size=4)),
    max_leaves=20)
plain_table = st.dictionaries(st.text(max_size=20), plain_value, max_size=6)


@SETTINGS
@given(plain_table)
def test_plain_table_roundtrips_as_values(table):
    """Plain Python tables (bool/int/str/bytes/float/Decimal/None/dict/list) come back equal, types kept."""
    raw = encode_table(table)
    back, end = decode_table(raw)
    assert end == len(raw)
    assert same(back, table)
    # and the typed view of the same bytes re-encodes identically
    assert encode_table(decode_table_typed(raw)[0]) == raw
    assert same(table_plain(decode_table_typed(raw)[0]), table)


def test_plain_int_and_decimal_choices():
    """Plain ints use I when they fit 32 bits, else l; negative decimals go out as two's complement."""
    assert encode_table({"a": 2 ** 31 - 1}) == table_bytes([(b"a", b"I\x7f\xff\xff\xff")])
    assert encode_table({"a": 2 ** 31}) == table_bytes([(b"a", b"l" + struct.pack(">q", 2 ** 31))])
    assert encode_table({"a": Decimal("-0.1")}) == table_bytes([(b"a", b"D\x01\xff\xff\xff\xff")])
    assert encode_table({}) == b"\x00\x00\x00\x00"
    assert encode_table(None) == b"\x00\x00\x00\x00"


# ------------------------------------------------------------------ pamqp agreement (tables)

_PAMQP_SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2 ** 63), 2 ** 63 - 1),
    st.text(max_size=30),
    st.floats(width=32, allow_nan=False),            # pamqp encodes float as 'f'
    st.tuples(st.integers(0, 255), st.integers(0, 2 ** 31 - 1)).map(lambda sr: Decimal(sr[1]).scaleb(-sr[0])),
    st.binary(max_size=20).map(bytearray),           # pamqp: bytearray <-> 'x'
    st.none(),
)
_pamqp_keys = st.from_regex(r"[A-Za-z$#][A-Za-z0-9_$#.-]{0,20}", fullmatch=True)
pamqp_value = st.recursive(
    _PAMQP_SCALAR,
    lambda ch: st.one_of(st.lists(ch, max_size=4), st.dictionaries(_pamqp_keys, ch, max_size=4)),
    max_leaves=15)
pamqp_table = st.dictionaries(_pamqp_keys, pamqp_value, max_size=6)


def normalise(v):
    """Map pamqp's decoded Python types onto leveret's (bytearray -> bytes)."""
    if isinstance(v, bytearray):
        return bytes(v)
    if isinstance(v, dict):
        return {k: normalise(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    return v


@SETTINGS
@given(pamqp_table)
def test_pamqp_encoded_tables_decode_like_pamqp(table):
    """Bytes pamqp encodes decode (plain) to what pamqp itself decodes, and re-encode byte-exact typed."""
    raw = pamqp_encode.field_table(table)
    ours, end = decode_table(raw)
    assert end == len(raw)
    _, theirs = pamqp_decode.field_table(raw)
    assert same(ours, normalise(theirs))
    assert encode_table(decode_table_typed(raw)[0]) == raw


def _has_big_decimal(v) -> bool:
    if isinstance(v, Decimal):
        return abs(v.scaleb(-v.as_tuple().exponent)) >= 2 ** 31
    if isinstance(v, dict):
        return any(_has_big_decimal(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_big_decimal(x) for x in v)
    return False


@SETTINGS
@given(plain_table)
def test_our_tables_decode_in_pamqp(table):
    """Tables leveret encodes decode in pamqp to the same plain values."""
    assume(not _has_big_decimal(table))   # pamqp reads the decimal value as signed, RabbitMQ unsigned
    raw = encode_table(table)
    consumed, theirs = pamqp_decode.field_table(raw)
    assert consumed == len(raw)
    assert same(normalise(theirs), table)


@SETTINGS
@given(wire_table)
def test_wire_tables_agree_with_pamqp(raw):
    """On arbitrary well-formed tables leveret's plain decode equals pamqp's (T, L, NaN aside)."""
    ours = table_plain(decode_table_typed(raw)[0])
    # decode_table keeps 'x' as bytes; table_plain turns UTF-8 'x' into str (headers matching)
    assert same(_utf8_to_str(decode_table(raw)[0]), _utf8_to_str(ours))
    try:
        _, theirs = pamqp_decode.field_table(raw)
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        return  # pamqp is stricter on keys (UTF-8) and timestamps; nothing to compare

    def cmp(a, b, tag_of):
        if isinstance(b, datetime.datetime):     # 'T': pamqp -> datetime, leveret -> int
            return isinstance(a, int)
        if isinstance(a, Decimal) and isinstance(b, Decimal) and b < 0:
            return a > 0   # 'D' value >= 2**31: RabbitMQ (and leveret) unsigned, pamqp signed
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(cmp(a[k], b[k], None) for k in a)
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(cmp(x, y, None) for x, y in zip(a, b))
        return same(_utf8_to_str(a), _utf8_to_str(normalise(b)))

    assert cmp(ours, theirs, None)


def _utf8_to_str(v):
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(v)
    if isinstance(v, dict):
        return {k: _utf8_to_str(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_utf8_to_str(x) for x in v]
    return v


def test_table_plain_strips_tags_like_rabbitmq_header_matching():
    """table_plain: UTF-8 'S' and 'x' both become str (RabbitMQ matches an 'x' header to an 'S' argument)."""
    raw = table_bytes([(b"s", b"S" + lstr(b"abc")), (b"x", b"x" + lstr(b"abc")), (b"bin", b"x" + lstr(b"\xff")),
                       (b"n", b"F" + table_bytes([(b"i", b"b\x01")]))])
    assert table_plain(decode_table_typed(raw)[0]) == {"s": "abc", "x": "abc", "bin": b"\xff", "n": {"i": 1}}
    assert decode_table(raw)[0] == {"s": "abc", "x": b"abc", "bin": b"\xff", "n": {"i": 1}}


# ------------------------------------------------------------------ basic properties

SHORTSTR = st.binary(max_size=40)
PROP_WIRE = {
    "s": SHORTSTR.map(ss),
    "B": st.integers(0, 255).map(lambda v: bytes((v,))),
    "T": st.binary(min_size=8, max_size=8),
    "F": wire_table,
}


@st.composite
def wire_properties(draw):
    present = draw(st.lists(st.booleans(), min_size=14, max_size=14))
    flags, parts = 0, []
    for i, on in enumerate(present):
        if on:
            flags |= 1 << (15 - i)
            parts.append(draw(PROP_WIRE[codec._PROP_KINDS[i]]))
    return struct.pack(">H", flags) + b"".join(parts), present


@SETTINGS
@given(wire_properties())
def test_properties_roundtrip_byte_exact(wp):
    """Any subset of the 14 basic properties decodes and re-encodes to identical bytes."""
    raw, present = wp
    p = BasicProperties.decode(raw)
    for name, on in zip(PROPERTY_NAMES, present):
        assert (getattr(p, name) is not None) == on, name
    assert p.encode() == raw
    assert BasicProperties.decode(memoryview(raw)).encode() == raw
    # plain headers decode too, and agree with the typed view
    q = BasicProperties.decode(raw, typed_headers=False)
    if present[2]:
        assert same(_utf8_to_str(q.headers), _utf8_to_str(table_plain(p.headers)))


def test_all_properties_present():
    """All 14 properties set: flags 0xFFFC and every field decodes to what was encoded."""
    kw = dict(content_type="text/plain", content_encoding="gzip", headers={"a": 1, "b": "x"},
              delivery_mode=2, priority=9, correlation_id="c", reply_to="r", expiration="60000",
              message_id="m", timestamp=1700000000, type="t", user_id="guest", app_id="app",
              cluster_id="cl")
    raw = BasicProperties(**kw).encode()
    assert raw[:2] == b"\xff\xfc"
    p = BasicProperties.decode(raw, typed_headers=False)
    assert {n: getattr(p, n) for n in PROPERTY_NAMES} == kw
    assert peek_delivery_mode_priority(raw) == (2, 9)


@SETTINGS
@given(wire_properties(), st.binary(max_size=3))
def test_peek_agrees_with_full_decode(wp, _junk):
    """peek_delivery_mode_priority returns the full decode's (delivery_mode, priority), 0 for absent."""
    raw, _ = wp
    p = BasicProperties.decode(raw)
    expect = (p.delivery_mode or 0, p.priority or 0)
    assert peek_delivery_mode_priority(raw) == expect
    assert peek_delivery_mode_priority(memoryview(raw)) == expect
    # as the broker calls it: a view into the whole content header payload
    header = struct.pack(">HHQ", 60, 0, 5) + raw
    assert peek_delivery_mode_priority(memoryview(header)[12:]) == expect


def test_property_flag_low_bits_ignored_like_rabbitmq():
    """The two low flag bits (continuation included) are ignored, as RabbitMQ's decode_properties does."""
    p = BasicProperties.decode(b"\x00\x01")
    assert all(getattr(p, n) is None for n in PROPERTY_NAMES)
    p = BasicProperties.decode(b"\x80\x01" + ss(b"text/plain"))
    assert p.content_type == "text/plain"
    p = BasicProperties.decode(b"\x18\x03\x02\x05")
    assert (p.delivery_mode, p.priority) == (2, 5)
    assert peek_delivery_mode_priority(b"\x18\x03\x02\x05") == (2, 5)


_pamqp_shortstr = st.text(min_size=1, max_size=30).filter(lambda s: len(s.encode()) <= 255)


@st.composite
def pamqp_props(draw):
    kw = {}
    opt = lambda s: draw(st.one_of(st.none(), s))  # noqa: E731
    kw["content_type"] = opt(_pamqp_shortstr)
    kw["content_encoding"] = opt(_pamqp_shortstr)
    kw["headers"] = opt(pamqp_table)
    kw["delivery_mode"] = opt(st.sampled_from([1, 2]))
    kw["priority"] = opt(st.integers(0, 255))
    kw["correlation_id"] = opt(_pamqp_shortstr)
    kw["reply_to"] = opt(_pamqp_shortstr)
    kw["expiration"] = opt(st.integers(0, 10 ** 9).map(str))
    kw["message_id"] = opt(_pamqp_shortstr)
    kw["timestamp"] = opt(st.integers(0, 2 ** 32 - 1))
    kw["type"] = opt(_pamqp_shortstr)
    kw["user_id"] = opt(_pamqp_shortstr)
    kw["app_id"] = opt(_pamqp_shortstr)
    kw["cluster_id"] = None     # pamqp refuses to encode a non-empty cluster_id
    return kw


def _to_pamqp(kw):
    pk = {("message_type" if k == "type" else k): v for k, v in kw.items() if v is not None}
    if "timestamp" in pk:
        pk["timestamp"] = datetime.datetime.fromtimestamp(pk["timestamp"], tz=datetime.timezone.utc)
    if "cluster_id" not in pk:
        pk["cluster_id"] = ""          # pamqp's "absent"
    return pamqp_commands.Basic.Properties(**pk)


def _from_pamqp(props):
    out = {}
    for n in PROPERTY_NAMES:
        v = getattr(props, "message_type" if n == "type" else n, None)
        if v == "" and n == "cluster_id":
            v = None
        if isinstance(v, datetime.datetime):
            v = int(v.timestamp())
        out[n] = normalise(v)
    return out


@SETTINGS
@given(pamqp_props())
def test_properties_agree_with_pamqp_both_ways(kw):
    """pamqp-marshalled properties decode to the same fields; ours unmarshal in pamqp the same way."""
    praw = _to_pamqp(kw).marshal()
    p = BasicProperties.decode(praw, typed_headers=False)
    assert same({n: getattr(p, n) for n in PROPERTY_NAMES}, {n: normalise(kw[n]) for n in PROPERTY_NAMES})
    # typed decode re-encodes exactly what pamqp sent
    assert BasicProperties.decode(praw).encode() == praw

    ours = BasicProperties(**{k: (dict(normalise(v)) if k == "headers" and v is not None else v)
                              for k, v in kw.items()}).encode()
    flags = struct.unpack(">H", ours[:2])[0]
    theirs = pamqp_commands.Basic.Properties()
    theirs.unmarshal(flags, ours[2:])
    got = _from_pamqp(theirs)
    want = {n: kw[n] for n in PROPERTY_NAMES}
    if want["headers"] is not None:
        want["headers"] = normalise(want["headers"])
        # leveret encodes bytearray/bytes as 'S' (pamqp decodes valid UTF-8 'S' to str)
        got["headers"] = None if got["headers"] is None else got["headers"]
        assert set(got["headers"]) == set(want["headers"])
        got["headers"] = want["headers"] = None
    assert got == want


# ------------------------------------------------------------------ malformed input


def _only_amqp_errors(fn, *args):
    try:
        return fn(*args)
    except AMQPError:
        return None


@SETTINGS
@given(wire_table)
def test_every_truncation_of_a_table_is_a_syntax_error(raw):
    """Cutting a table anywhere short of its end raises AMQPSyntaxError (never IndexError/struct.error)."""
    for cut in range(len(raw)):
        with pytest.raises(AMQPSyntaxError):
            decode_table(raw[:cut])
        with pytest.raises(AMQPSyntaxError):
            decode_table_typed(memoryview(raw)[:cut])


@SETTINGS
@given(wire_table, st.data())
def test_mutated_tables_fail_cleanly(raw, data):
    """Random byte edits either still decode (and then re-encode) or raise an AMQPError subclass."""
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif buf:
            del buf[i]
    for fn in (decode_table, decode_table_typed):
        res = _only_amqp_errors(fn, bytes(buf))
        if res is not None and fn is decode_table_typed:
            encode_table(res[0])   # whatever decodes must be encodable again


@SETTINGS
@given(st.binary(max_size=200))
@example(b"")
@example(b"\x00\x00\x00\x01")
@example(b"\x00\x00\x00\x02\x05")
@example(b"\x00\x00\x00\x03\x01kZ")
@example(b"\xff\xff\xff\xff")
def test_random_bytes_tables_and_properties(buf):
    """Arbitrary bytes: table/property decoders return or raise AMQPError, nothing else."""
    _only_amqp_errors(decode_table, buf)
    _only_amqp_errors(decode_table_typed, buf)
    _only_amqp_errors(BasicProperties.decode, buf)
    _only_amqp_errors(BasicProperties.decode, memoryview(buf), False)
    _only_amqp_errors(peek_delivery_mode_priority, buf)


@SETTINGS
@given(wire_properties(), st.data())
def test_truncated_and_mutated_properties(wp, data):
    """Truncated property lists raise AMQPSyntaxError; mutated ones return or raise AMQPError."""
    raw, _ = wp
    for cut in range(len(raw)):
        if cut >= 2 and raw[:cut] == raw:
            continue
        with pytest.raises(AMQPSyntaxError):
            BasicProperties.decode(raw[:cut])
    with pytest.raises(AMQPSyntaxError):
        BasicProperties.decode(raw + b"\x00")   # trailing garbage
    buf = bytearray(raw)
    i = data.draw(st.integers(0, len(buf) - 1))
    buf[i] = data.draw(st.integers(0, 255))
    _only_amqp_errors(BasicProperties.decode, bytes(buf))
    _only_amqp_errors(peek_delivery_mode_priority, bytes(buf))


def _nested(depth: int, kind: str) -> bytes:
    v = b"V"
    for _ in range(depth):
        v = (b"F" + table_bytes([(b"k", v)])) if kind == "F" else (b"A" + lstr(v))
    return table_bytes([(b"top", v)])


@pytest.mark.parametrize("kind", ["F", "A"])
@pytest.mark.parametrize("depth", [10, 200, 5000, 20000])
def test_deep_nesting_decodes_and_round_trips(kind, depth):
    """Nesting has no limit (RabbitMQ's parser has none): a deeply nested table decodes -- never a
    RecursionError -- and re-encodes to the same bytes, plain or typed, in properties too."""
    raw = _nested(depth, kind)
    for fn in (decode_table, decode_table_typed):
        t, end = fn(raw)
        assert end == len(raw)
        assert encode_table(t) == raw
        assert fn(raw)[0] == t                      # the same bytes compare equal
        assert fn(_nested(depth + 1, kind))[0] != t
    props = b"\x20\x00" + raw
    check_properties(props)
    assert BasicProperties.decode(props).encode() == props
    assert BasicProperties.decode(props, typed_headers=False).encode() == props


@pytest.mark.parametrize("kind", ["F", "A"])
@pytest.mark.parametrize("depth", [5, 5000])
def test_deep_nesting_errors_are_found_at_any_depth(kind, depth):
    """What is wrong deep down is found as it is near the top: an unknown type is a TableCrash,
    a table cut short a syntax error (never a RecursionError)."""
    bad = _nested(depth, kind).replace(b"V", b"Z")
    for fn in (decode_table, decode_table_typed, lambda b: check_properties(b"\x20\x00" + b)):
        with pytest.raises(TableCrash):
            fn(bad)
    with pytest.raises(AMQPSyntaxError):
        decode_table(_nested(depth, kind)[:-1])
    with pytest.raises(AMQPError):
        check_properties(b"\x20\x00" + _nested(depth, kind)[:-1])


def test_unknown_tag_and_length_mismatch():
    """Inside a table that fits its buffer, an unknown tag or an entry that disagrees with the
    table's length is a TableCrash (rabbit_binary_parser has no clause for it); a table whose
    own length overruns the buffer is a 502 syntax error ("cannot decode" in a method)."""
    for tag in (b"Z", b"U"):
        with pytest.raises(TableCrash):
            decode_table(table_bytes([(b"k", tag + b"\x00\x05")]))
    # inner value runs past the outer table's declared length
    bad = struct.pack(">I", 3) + ss(b"k") + b"I\x00\x00\x00\x01"
    with pytest.raises(TableCrash):
        decode_table(bad)
    # array whose element overruns it
    with pytest.raises(TableCrash):
        decode_table(table_bytes([(b"a", b"A" + struct.pack(">I", 2) + b"I\x00")]) + b"\x00\x00\x00")
    # a nested table longer than the table it sits in (though within the buffer)
    with pytest.raises(TableCrash):
        decode_table(table_bytes([(b"t", b"F" + struct.pack(">I", 6))]) + b"\x01kV\x01kV")
    # a key whose length octet overruns the table
    with pytest.raises(TableCrash):
        decode_table(struct.pack(">I", 2) + b"\x05k")
    # the table itself longer than the buffer
    with pytest.raises(AMQPSyntaxError) as ei:
        decode_table(struct.pack(">I", 9) + ss(b"k") + b"V")
    assert ei.value.reply_code == 502
    # both are AMQPErrors; neither is the other
    assert not issubclass(TableCrash, AMQPSyntaxError) and issubclass(TableCrash, AMQPError)


def test_shortstr_limits():
    """shortstr refuses more than 255 bytes; longstr/shortstr keep arbitrary bytes via surrogateescape."""
    with pytest.raises(ValueError):
        codec.enc_shortstr("x" * 256)
    assert codec.enc_shortstr("x" * 255)[0] == 255
    s, end = codec.dec_shortstr(b"\x02\xff\xfe", 0)
    assert end == 3 and codec.enc_shortstr(s) == b"\x02\xff\xfe"
    s, end = codec.dec_longstr(b"\x00\x00\x00\x01\x80", 0)
    assert end == 5 and codec.enc_longstr(s) == b"\x00\x00\x00\x01\x80"
    with pytest.raises(AMQPSyntaxError):
        codec.dec_shortstr(b"\x05ab", 0)
    with pytest.raises(AMQPSyntaxError):
        codec.dec_longstr(b"\x00\x00\x00\x05ab", 0)


def _verdict(fn, raw):
    try:
        fn(raw)
        return "ok"
    except TableCrash:
        return "crash"
    except AMQPError:
        return "error"


@SETTINGS
@given(wire_properties(), st.data())
@example(wp=(b"", None), data=None)
def test_check_properties_agrees_with_decode(wp, data):
    """check_properties (the publish-time check) passes exactly what BasicProperties.decode
    decodes, and fails the same way, on valid, truncated, extended and mutated lists."""
    raw, _ = wp
    cases = [raw, raw + b"\x00", raw[:-1]]
    if data is not None and raw:
        buf = bytearray(raw)
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
        cases.append(bytes(buf))
    for r in cases:
        assert _verdict(codec.check_properties, r) == _verdict(BasicProperties.decode, r), r


@SETTINGS
@given(st.binary(max_size=120))
def test_check_properties_agrees_on_random_bytes(buf):
    assert _verdict(codec.check_properties, buf) == _verdict(BasicProperties.decode, buf)
