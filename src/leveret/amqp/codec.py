"""Wire primitives of AMQP 0-9-1: strings, field tables, arrays, basic properties.

Sans-I/O and allocation-aware. Everything here works on ``bytes``/``memoryview``
with offsets (``struct.unpack_from``) instead of slicing the buffer per field;
the generated method codecs in :mod:`leveret.amqp.spec` are built from these.

Why hand-written: the general AMQP libraries (pamqp) decode through reflection
and copy the buffer after every field (~11 µs per ``Basic.Publish``), which caps
one core near 20k msg/s before the broker does any work. Here a publish decodes
in a couple of ``unpack_from`` calls.

Lossless by construction:

* Strings (``shortstr``/``longstr``) decode with ``surrogateescape`` so that any
  byte sequence a client sends comes back out unchanged when re-encoded.
* Field tables decode to a plain ``dict`` for the broker's own use
  (:func:`decode_table`) *and* can be decoded to ``(tag, value)`` pairs
  (:func:`decode_table_typed`) so a mutated header table re-encodes every value
  with the wire type tag it arrived with. Message properties are forwarded as
  the raw bytes they arrived in; nothing is re-encoded unless the broker changes
  it (as RabbitMQ keeps ``properties_bin``).

Every malformed input raises an :class:`~leveret.amqp.errors.AMQPError` — never an
``IndexError`` or ``struct.error`` — so the connection layer can act on it:
:class:`AMQPSyntaxError` when a string or table runs past the buffer it sits in,
:class:`~leveret.amqp.errors.TableCrash` for what RabbitMQ's table parser has no
clause for (a ``U``/``Z``/unknown value type, an entry that overruns its table).
Field types are read as ``rabbit_binary_parser`` reads them: ``u`` unsigned 16,
``s`` signed 16, and ``L`` a *signed* 64-bit long like ``l`` (its bytes are kept, so
a value above 2^63 sent as ``L`` goes out again as the same 8 bytes).

Nesting has no limit, as in RabbitMQ (whose parser recurses on the Erlang heap): a table
nested 5000 levels deep in message headers or queue arguments is accepted and travels
unchanged. Python's recursion must not meet such input, so tables and arrays are decoded
into ``dict``/``list`` down to :data:`MAX_DEPTH` levels; anything deeper is checked without
recursion (:func:`_check_nested`, the same verdict) and kept as an :class:`Opaque` value --
its wire bytes, re-encoded as they came and equal only to the same bytes (what Erlang's term
comparison of two such tables amounts to).
"""
from __future__ import annotations

import struct
from decimal import Decimal

from .errors import AMQPSyntaxError, TableCrash

__all__ = [
    "dec_shortstr", "dec_longstr", "enc_shortstr", "enc_longstr",
    "decode_table", "decode_table_typed", "encode_table",
    "Typed", "BasicProperties", "json_table_typed",
]

_B = struct.Struct(">B")
_b = struct.Struct(">b")
_H = struct.Struct(">H")
_h = struct.Struct(">h")
_I = struct.Struct(">I")
_i = struct.Struct(">i")
_Q = struct.Struct(">Q")
_q = struct.Struct(">q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")
_BI = struct.Struct(">BI")



class _NaN32(float):
    """A float32 NaN decoded from a table, keeping its exact 4 wire bytes.

    float32 -> Python float (double) -> float32 quiets signalling NaNs, so a NaN
    would otherwise not re-encode byte for byte.
    """

    __slots__ = ("raw",)


def dec_shortstr(buf, off: int) -> tuple[str, int]:
    n = buf[off]
    end = off + 1 + n
    if end > len(buf):
        raise AMQPSyntaxError("shortstr overruns frame")
    return bytes(buf[off + 1:end]).decode("utf-8", "surrogateescape"), end


def dec_longstr_bytes(buf, off: int) -> tuple[bytes, int]:
    (n,) = _I.unpack_from(buf, off)
    end = off + 4 + n
    if end > len(buf):
        raise AMQPSyntaxError("longstr overruns frame")
    return bytes(buf[off + 4:end]), end


def dec_longstr(buf, off: int) -> tuple[str, int]:
    b, end = dec_longstr_bytes(buf, off)
    return b.decode("utf-8", "surrogateescape"), end


def enc_shortstr(s) -> bytes:
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    if len(b) > 255:
        raise ValueError("shortstr longer than 255 bytes")
    return bytes((len(b),)) + b


def enc_longstr(s) -> bytes:
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    return _I.pack(len(b)) + b


# RabbitMQ's names for field-table value types, as its error texts print them
TYPE_NAMES = {
    "t": "bool", "b": "byte", "B": "unsignedbyte", "s": "short", "u": "unsignedshort",
    "I": "signedint", "i": "unsignedint", "l": "long", "L": "unsignedlong", "f": "float",
    "d": "double", "D": "decimal", "S": "longstr", "x": "binary", "T": "timestamp",
    "F": "table", "A": "array", "V": "void",
}


class Typed:
    """A field value that remembers its wire type tag (for lossless re-encoding)."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: str, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Typed) and other.tag == self.tag and other.value == self.value

    def __hash__(self):
        return hash((self.tag, repr(self.value)))

    def __repr__(self):
        return f"Typed({self.tag!r}, {self.value!r})"


# ---------------------------------------------------------------- decoding
#
# Two kinds of failure, as in RabbitMQ. A table whose 32-bit length runs past the
# buffer it sits in fails the *method's* binary pattern (``rabbit_framing``'s
# ``decode_method_fields`` -> "cannot decode"): :class:`AMQPSyntaxError`. Anything
# wrong *inside* a table that fits -- a value type ``parse_table/1`` has no clause
# for (``U``, ``Z``, ...), an entry or nested table/array that runs past its table's
# length -- is a ``function_clause`` crash in RabbitMQ: :class:`TableCrash`, which
# the connection maps to what RabbitMQ's crash looks like from where the table was.

# fixed-size values: tag -> (struct, size)
_FIXED = {"I": (_i, 4), "l": (_q, 8), "b": (_b, 1), "B": (_B, 1), "s": (_h, 2), "u": (_H, 2),
          # RabbitMQ reads 'L' as a *signed* 64-bit long, like 'l' (rabbit_binary_parser)
          "i": (_I, 4), "L": (_q, 8), "d": (_d, 8), "T": (_Q, 8)}


# tables/arrays nested deeper than this are kept as wire bytes (Opaque), not decoded
MAX_DEPTH = 64
# the size of every value of a fixed size, by type
_SIZES = {tag: size for tag, (_, size) in _FIXED.items()} | {"t": 1, "f": 4, "D": 5, "V": 0}


class Opaque:
    """A table (``F``) or array (``A``) nested deeper than :data:`MAX_DEPTH`, kept as its wire
    bytes (``raw``: the 32-bit length and the body), already checked to be well formed."""

    __slots__ = ("tag", "raw")

    def __init__(self, tag: str, raw: bytes):
        self.tag = tag
        self.raw = raw

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.tag == self.tag and other.raw == self.raw

    def __hash__(self):
        return hash((self.tag, self.raw))

    def __repr__(self):
        return f"Opaque({self.tag!r}, <{len(self.raw)} bytes>)"


def _check_nested(buf, off: int, end: int, array: bool) -> None:
    """Check the entries of a table (or array) in ``buf[off:end]`` and of everything nested in
    it, without recursion, raising what decoding them would raise, in the same order."""
    stack = []
    while True:
        if off >= end:
            if not stack:
                return
            array, end = stack.pop()
            continue
        if not array:
            kend = off + 1 + buf[off]
            if kend > end:
                raise TableCrash("field name overruns its table")
            off = kend
            if off >= end:
                raise TableCrash("field value missing")
        tag = chr(buf[off])
        off += 1
        if tag == "F" or tag == "A":
            (n,) = _I.unpack_from(buf, off)
            stop = off + 4 + n
            if stop > end:
                raise TableCrash("nested table overruns its table")
            stack.append((array, end))
            array, end, off = tag == "A", stop, off + 4
            continue
        if tag == "S" or tag == "x":
            (n,) = _I.unpack_from(buf, off)
            off += 4 + n
        else:
            size = _SIZES.get(tag)
            if size is None:
                raise TableCrash(f"unknown field value type {tag!r}")
            off += size
        if off > end:
            raise TableCrash("field value overruns its table")


def _dec_value(buf, off: int, end: int, typed: bool, depth: int = 0):
    """One tagged value at ``off``, which must end by ``end`` (its table's or array's end);
    ``depth``: how many tables/arrays enclose it."""
    if off >= end:
        raise TableCrash("field value missing")
    tag = chr(buf[off])
    off += 1
    if tag == "S" or tag == "x":
        (n,) = _I.unpack_from(buf, off)
        stop = off + 4 + n
        if stop > end:
            raise TableCrash("field value overruns its table")
        v = bytes(buf[off + 4:stop])
        off = stop
        if tag == "S" and not typed:
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                pass
    elif tag == "t":
        v = buf[off] != 0; off += 1
    elif tag == "F" or tag == "A":
        (n,) = _I.unpack_from(buf, off)
        stop = off + 4 + n
        if stop > end:
            raise TableCrash("nested table overruns its table")
        if depth < MAX_DEPTH:
            v = (_parse_table if tag == "F" else _parse_array)(buf, off + 4, stop, typed, depth + 1)
        else:
            _check_nested(buf, off + 4, stop, tag == "A")
            v = Opaque(tag, bytes(buf[off:stop]))
        off = stop
    elif tag in _FIXED:
        st, size = _FIXED[tag]
        (v,) = st.unpack_from(buf, off)
        off += size
    elif tag == "f":
        (v,) = _f.unpack_from(buf, off)
        if v != v:
            raw = bytes(buf[off:off + 4])
            v = _NaN32(v)
            v.raw = raw
        off += 4
    elif tag == "D":
        # scale octet + unsigned 32-bit value, as rabbit_binary_parser reads it
        scale, raw = _BI.unpack_from(buf, off); off += 5
        v = Decimal(raw).scaleb(-scale)
    elif tag == "V":
        v = None
    else:
        raise TableCrash(f"unknown field value type {tag!r}")
    if off > end:
        raise TableCrash("field value overruns its table")
    return (Typed(tag, v) if typed else v), off


def _parse_table(buf, off: int, end: int, typed: bool, depth: int = 0) -> dict:
    """The entries of a table occupying ``buf[off:end]``."""
    out = {}
    while off < end:
        n = buf[off]
        kend = off + 1 + n
        if kend > end:
            raise TableCrash("field name overruns its table")
        k = bytes(buf[off + 1:kend]).decode("utf-8", "surrogateescape")
        v, off = _dec_value(buf, kend, end, typed, depth)
        if k not in out:  # duplicate keys: the first one wins (rabbit_misc:table_lookup)
            out[k] = v
    return out


def _parse_array(buf, off: int, end: int, typed: bool, depth: int = 0) -> list:
    out = []
    while off < end:
        v, off = _dec_value(buf, off, end, typed, depth)
        out.append(v)
    return out


def _dec_table(buf, off: int, typed: bool):
    """A length-prefixed table at ``off`` -> (dict, offset after it)."""
    (n,) = _I.unpack_from(buf, off)
    off += 4
    end = off + n
    if end > len(buf):
        raise AMQPSyntaxError("table overruns frame")
    try:
        return _parse_table(buf, off, end, typed), end
    except (struct.error, IndexError):
        # a fixed-size value cut off by the end of the buffer (and so of its table)
        raise TableCrash("field value overruns its table") from None


def _check_table(buf, off: int) -> int:
    """Check the length-prefixed table at ``off`` as :func:`_dec_table` would, building
    nothing; the offset after it."""
    (n,) = _I.unpack_from(buf, off)
    end = off + 4 + n
    if end > len(buf):
        raise AMQPSyntaxError("table overruns frame")
    try:
        _check_nested(buf, off + 4, end, False)
    except (struct.error, IndexError):
        raise TableCrash("field value overruns its table") from None
    return end


def decode_table(buf, off: int = 0) -> tuple[dict, int]:
    """Decode a field table to plain Python values (``S`` as ``str`` when UTF-8)."""
    try:
        return _dec_table(buf, off, False)
    except (struct.error, IndexError) as e:
        raise AMQPSyntaxError(f"malformed field table: {e}") from None


def decode_table_typed(buf, off: int = 0) -> tuple[dict, int]:
    """Decode a field table keeping each value's wire tag (values are :class:`Typed`)."""
    try:
        return _dec_table(buf, off, True)
    except (struct.error, IndexError) as e:
        raise AMQPSyntaxError(f"malformed field table: {e}") from None


# ---------------------------------------------------------------- encoding


def _enc_value(v, parts: list) -> None:
    if isinstance(v, Typed):
        _enc_typed(v.tag, v.value, parts)
    elif isinstance(v, Opaque):
        parts.append(v.tag.encode() + v.raw)
    elif isinstance(v, bool):
        parts.append(b"t\x01" if v else b"t\x00")
    elif isinstance(v, int):
        if -2147483648 <= v <= 2147483647:
            parts.append(b"I" + _i.pack(v))
        else:
            parts.append(b"l" + _q.pack(v))
    elif isinstance(v, str):
        parts.append(b"S" + enc_longstr(v))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        parts.append(b"S" + enc_longstr(bytes(v)))
    elif isinstance(v, float):
        parts.append(b"d" + _d.pack(v))
    elif isinstance(v, dict):
        parts.append(b"F" + encode_table(v))
    elif isinstance(v, (list, tuple)):
        parts.append(b"A" + _enc_array(v))
    elif v is None:
        parts.append(b"V")
    elif isinstance(v, Decimal):
        parts.append(b"D" + _enc_decimal(v))
    else:
        raise TypeError(f"cannot encode {type(v).__name__} in a field table")


def _enc_decimal(v: Decimal) -> bytes:
    sign, digits, exp = v.as_tuple()
    scale = -exp if exp < 0 else 0
    raw = int(v.scaleb(scale))
    if not -0x80000000 <= raw <= 0xFFFFFFFF:
        raise ValueError(f"decimal {v} does not fit a 32-bit AMQP decimal value")
    # a negative value goes out as its two's complement (as Erlang's <<V:32>> does)
    return _BI.pack(scale, raw & 0xFFFFFFFF)


def _enc_typed(tag: str, v, parts: list) -> None:
    t = tag.encode()
    if tag in "Sx":
        parts.append(t + enc_longstr(v))
    elif tag == "I":
        parts.append(t + _i.pack(v))
    elif tag == "t":
        parts.append(b"t\x01" if v else b"t\x00")
    elif tag == "l":
        parts.append(t + _q.pack(v))
    elif tag == "F":
        parts.append(t + encode_table(v))
    elif tag == "A":
        parts.append(t + _enc_array(v))
    elif tag == "b":
        parts.append(t + _b.pack(v))
    elif tag == "B":
        parts.append(t + _B.pack(v))
    elif tag == "s":
        parts.append(t + _h.pack(v))
    elif tag == "u":
        parts.append(t + _H.pack(v))
    elif tag == "i":
        parts.append(t + _I.pack(v))
    elif tag == "L":
        parts.append(t + (_q.pack(v) if v < 0 else _Q.pack(v)))
    elif tag == "f":
        raw = getattr(v, "raw", None)
        parts.append(t + (raw if raw is not None else _f.pack(v)))
    elif tag == "d":
        parts.append(t + _d.pack(v))
    elif tag == "D":
        parts.append(t + _enc_decimal(v))
    elif tag == "T":
        parts.append(t + _Q.pack(v))
    elif tag == "V":
        parts.append(t)
    else:
        raise TypeError(f"unknown field tag {tag!r}")


def _enc_array(items) -> bytes:
    if isinstance(items, Opaque):
        return items.raw
    parts: list = []
    for v in items:
        _enc_value(v, parts)
    body = b"".join(parts)
    return _I.pack(len(body)) + body


def encode_table(table) -> bytes:
    """Encode a table; values may be plain Python, :class:`Typed` or :class:`Opaque`."""
    if isinstance(table, Opaque):
        return table.raw
    if not table:
        return b"\x00\x00\x00\x00"
    parts: list = []
    for k, v in table.items():
        parts.append(enc_shortstr(k))
        _enc_value(v, parts)
    body = b"".join(parts)
    return _I.pack(len(body)) + body



def json_table_typed(plain: dict) -> dict:
    """JSON arguments as RabbitMQ types them (``rabbit_misc:to_amqp_table``: a string is a
    longstr, an integer a ``long``, another number a ``double``, an object a table -- its keys
    in Erlang map order, bytewise -- and a list an array); values :class:`Typed`. A null has
    no AMQP type: ``ValueError``."""
    return {k: _json_typed(plain[k]) for k in sorted(plain, key=_key_bytes)}


def _key_bytes(k: str) -> bytes:
    return k.encode("utf-8", "surrogateescape")


def _json_typed(v) -> Typed:
    if isinstance(v, bool):
        return Typed("t", v)
    if isinstance(v, int):
        if not -2**63 <= v < 2**63:
            raise ValueError(f"{v} does not fit a long")
        return Typed("l", v)
    if isinstance(v, float):
        return Typed("d", v)
    if isinstance(v, str):
        return Typed("S", v.encode("utf-8", "surrogateescape"))
    if isinstance(v, dict):
        return Typed("F", json_table_typed(v))
    if isinstance(v, list):
        return Typed("A", [_json_typed(x) for x in v])
    if v is None:
        raise ValueError("null_not_allowed")
    raise ValueError(f"unhandled_type {v!r}")


def table_plain(v):
    """Strip :class:`Typed` wrappers recursively (for comparisons and lookups)."""
    if isinstance(v, Typed):
        v = v.value
        # UTF-8 'S' *and* 'x' become str: RabbitMQ's headers exchange compares values
        # without their types, so an 'x' header matches an equal 'S' binding argument
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                return v
    if isinstance(v, dict):
        return {k: table_plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [table_plain(x) for x in v]
    return v


# ---------------------------------------------------------------- properties

PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
    "user_id", "app_id", "cluster_id",
)
_PROP_KINDS = ("s", "s", "F", "B", "B", "s", "s", "s", "s", "T", "s", "s", "s", "s")


class BasicProperties:
    """Basic-class content properties, decoded from the raw flags+list bytes.

    The broker forwards ``raw`` untouched; this class is for the few fields the
    broker must read (delivery_mode, priority, expiration, headers, user_id) and
    for the rare paths that rewrite properties (x-death, BCC removal).
    """

    __slots__ = PROPERTY_NAMES

    def __init__(self, **kw):
        for n in PROPERTY_NAMES:
            setattr(self, n, kw.get(n))

    @classmethod
    def decode(cls, raw, typed_headers: bool = True) -> "BasicProperties":
        p = cls.__new__(cls)
        try:
            # One 16-bit flag word. Like RabbitMQ (rabbit_framing decode_properties,
            # ``P0:1 .. P13:1, _:2``) the two low bits -- the continuation bit
            # included -- are ignored: basic has only 14 properties.
            (flags,) = _H.unpack_from(raw, 0)
            off = 2
            for i, name in enumerate(PROPERTY_NAMES):
                if not flags & (1 << (15 - i)):
                    setattr(p, name, None)
                    continue
                kind = _PROP_KINDS[i]
                if kind == "s":
                    v, off = dec_shortstr(raw, off)
                elif kind == "B":
                    v = raw[off]; off += 1
                elif kind == "T":
                    (v,) = _Q.unpack_from(raw, off); off += 8
                else:
                    v, off = (_dec_table(raw, off, typed_headers))
                setattr(p, name, v)
        except (struct.error, IndexError) as e:
            raise AMQPSyntaxError(f"malformed content properties: {e}") from None
        if off != len(raw):
            raise AMQPSyntaxError("content properties length mismatch")
        return p

    def encode(self) -> bytes:
        flags = 0
        parts: list = []
        for i, name in enumerate(PROPERTY_NAMES):
            v = getattr(self, name)
            if v is None:
                continue
            flags |= 1 << (15 - i)
            kind = _PROP_KINDS[i]
            if kind == "s":
                parts.append(enc_shortstr(v))
            elif kind == "B":
                parts.append(_B.pack(v))
            elif kind == "T":
                parts.append(_Q.pack(v))
            else:
                parts.append(encode_table(v))
        return _H.pack(flags) + b"".join(parts)

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in PROPERTY_NAMES if getattr(self, n) is not None)
        return f"BasicProperties({fields})"


def check_properties(raw) -> None:
    """Raise :class:`AMQPSyntaxError` (or :class:`~leveret.amqp.errors.TableCrash`) unless the
    property list decodes exactly as RabbitMQ's ``decode_properties(60, ...)`` would take it:
    every flagged field present, nothing left over, a ``headers`` table that parses. The same
    verdict as :meth:`BasicProperties.decode`, without building anything (it runs on every
    publish whose properties differ from the last ones)."""
    n = len(raw)
    try:
        flags = raw[0] << 8 | raw[1]
        off = 2
        if flags & 0x8000:
            off += 1 + raw[off]                      # content-type
        if flags & 0x4000:
            off += 1 + raw[off]                      # content-encoding
        if flags & 0x2000:                           # headers
            if off > n:
                raise AMQPSyntaxError("content properties overrun")
            off = _check_table(raw, off)
        off += (1 if flags & 0x1000 else 0) + (1 if flags & 0x0800 else 0)   # delivery-mode, priority
        for bit in (0x0400, 0x0200, 0x0100, 0x0080):  # correlation-id, reply-to, expiration, message-id
            if flags & bit:
                off += 1 + raw[off]
        if flags & 0x0040:
            off += 8                                 # timestamp
        for bit in (0x0020, 0x0010, 0x0008, 0x0004):  # type, user-id, app-id, cluster-id
            if flags & bit:
                off += 1 + raw[off]
    except (IndexError, struct.error) as e:
        raise AMQPSyntaxError(f"malformed content properties: {e}") from None
    if off != n:
        raise AMQPSyntaxError("content properties length mismatch")


def peek_delivery_mode_priority(raw) -> tuple[int, int]:
    """Fast path: read delivery_mode and priority without decoding other fields.

    Returns ``(0, 0)`` for absent values. Falls back to a full decode only when
    a field before them (content-type, content-encoding, headers) is present.
    """
    flags = (raw[0] << 8) | raw[1] if len(raw) >= 2 else 0
    if not flags & 0x1800:
        return 0, 0
    if flags & 0xE000:
        p = BasicProperties.decode(raw)
        return p.delivery_mode or 0, p.priority or 0
    off = 2
    dm = pr = 0
    try:
        if flags & 0x1000:
            dm = raw[off]; off += 1
        if flags & 0x0800:
            pr = raw[off]
    except IndexError:
        raise AMQPSyntaxError("malformed content properties") from None
    return dm, pr
