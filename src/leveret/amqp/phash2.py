"""``erlang:phash2/2`` of the Erlang term RabbitMQ keeps for an AMQP field table.

RabbitMQ's management API names a binding in URLs by its ``properties_key``
(``rabbit_mgmt_format:pack_binding_props``): the quoted routing key, and for a binding with
arguments ``~`` and ``args_hash(Args)`` =
``rabbit_misc:base64url(<<(erlang:phash2(Args, 1 bsl 32)):32>>)``. ``Args`` is the table as
``rabbit_binary_parser:parse_table`` builds it -- a list of ``{Key, Type, Value}`` tuples
(binaries, atoms such as ``longstr``/``long``/``bool``, integers, floats, nested lists) --
with its top level sorted by key (``rabbit_misc:sort_field_table``, in
``rabbit_binding:binding_action``). To give the same keys, Leveret must hash the same term
the same way.

Why hand-written: ``phash2`` is the VM's own ``make_hash2`` (erts/emulator/beam/utils.c,
stable across OTP releases by promise, since persisted data depends on it); no Python
library implements it. This module follows that C function for the term kinds a field
table can hold (small and big integers, floats, atoms, binaries, tuples, lists), with the
same explicit stack, so that a table nested thousands of levels deep costs no Python
recursion. Atoms hash as ``atom.c``'s ``atom_hash`` (hashpjw). Tested against a live
``erl`` and RabbitMQ (tests/management/test_properties_key.py, tests/amqp/test_phash2.py).

Terms are Python values: ``bytes`` (binary), :class:`Atom`, ``int``, ``float``, ``tuple``
and ``list`` (a proper list). :func:`table_term` turns a decoded field table (values
:class:`~leveret.amqp.codec.Typed`) into the term RabbitMQ holds.
"""
from __future__ import annotations

import struct
from decimal import Decimal

from .codec import Opaque, Typed, _enc_decimal, _parse_array, _parse_table, MAX_DEPTH

__all__ = ["Atom", "phash2", "table_term", "table_hash"]

M32 = 0xFFFFFFFF
HCONST = 0x9E3779B9
HCONST_2, HCONST_3, HCONST_4 = 0x3C6EF372, 0xDAA66D2B, 0x78DDE6E4
HCONST_9, HCONST_10, HCONST_11 = 0x8FF34781, 0x2E2AC13A, 0xCC623AF3
HCONST_12, HCONST_13 = 0x6A99B4AC, 0x08D12E65
NIL_DEF = 2                 # erl_term.h: the NIL tag value, hashed for a list's end
NIL_ALONE = 3468870702      # the hash of [] on its own


class Atom(str):
    """An Erlang atom (its text)."""

    __slots__ = ()


def _mix(a: int, b: int, c: int) -> int:
    """Bob Jenkins' ``MIX(a, b, c)`` on 32-bit words; the new ``c``."""
    return _mix3(a, b, c)[2]


def _u32(x: int, y: int, const: int, h: int) -> int:
    """``UINT32_HASH_2(x, y, const)``."""
    return _mix((const + x) & M32, (const + y) & M32, h)


def _block_hash(data: bytes, initval: int) -> int:
    a = b = HCONST
    c = initval
    n = len(data)
    full = n - n % 12
    for i in range(0, full, 12):
        a = (a + int.from_bytes(data[i:i + 4], "little")) & M32
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & M32
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & M32
        a, b, c = _mix3(a, b, c)
    k = data[full:]
    c = (c + n) & M32
    # the final 0..11 bytes: a gets 0-3, b 4-7, c 8-10 shifted up a byte (its low byte is the length)
    a = (a + int.from_bytes(k[0:4], "little")) & M32
    b = (b + int.from_bytes(k[4:8], "little")) & M32
    c = (c + (int.from_bytes(k[8:11], "little") << 8)) & M32
    return _mix(a, b, c)


def _mix3(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - b - c) & M32; a ^= c >> 13
    b = (b - c - a) & M32; b ^= (a << 8) & M32
    c = (c - a - b) & M32; c ^= b >> 13
    a = (a - b - c) & M32; a ^= c >> 12
    b = (b - c - a) & M32; b ^= (a << 16) & M32
    c = (c - a - b) & M32; c ^= b >> 5
    a = (a - b - c) & M32; a ^= c >> 3
    b = (b - c - a) & M32; b ^= (a << 10) & M32
    c = (c - a - b) & M32; c ^= b >> 15
    return a, b, c


def _atom_hash(name: str) -> int:
    """``atom.c``'s ``atom_hash``: hashpjw over the UTF-8 text (a two-byte Latin-1 letter
    counted as one byte)."""
    p = name.encode("utf-8")
    h, i, n = 0, 0, len(p)
    while i < n:
        v = p[i]
        i += 1
        if i < n and (v & 0xFE) == 0xC2 and (p[i] & 0xC0) == 0x80:
            v = ((v << 6) | (p[i] & 0x3F)) & 0xFF
            i += 1
        h = ((h << 4) + v) & M32
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
            h ^= g
    return h


def _int_hash(v: int, h: int) -> int:
    if -(1 << 27) <= v < (1 << 27):             # SINT32_HASH
        if v < 0:
            h = _u32(-v, 0, HCONST, h)
        return _u32(v & M32, 0, HCONST, h)
    const, t = (HCONST_10, -v) if v < 0 else (HCONST_11, v)
    while True:                                  # 64-bit digits, low first (bignum or not)
        h = _u32(t & M32, (t >> 32) & M32, const, h)
        t >>= 64
        if not t:
            return h


_FLOAT = struct.Struct("<d")


def phash2(term, rng: int = 1 << 27) -> int:
    """``erlang:phash2(Term, Range)`` (``Range`` at most 2^32)."""
    h = _make_hash2(term)
    return h & (rng - 1) if rng & (rng - 1) == 0 else h % rng


def _make_hash2(term) -> int:
    if isinstance(term, Atom):
        return _atom_hash(term)
    if isinstance(term, int) and not isinstance(term, bool):
        return _int_hash(term, 0)
    h = 0
    stack: list = []
    push, pop = stack.append, stack.pop
    while True:
        t = type(term)
        if t is _Nested:
            term = term.expand()
            continue
        if t is list or t is _Tail:
            seq, i = (term, 0) if t is list else (term.seq, term.i)
            n = len(seq)
            # a run of bytes (0..255) at the head hashes 4 to a word (the string optimisation)
            c = sh = 0
            while i < n and type(seq[i]) is int and 0 <= seq[i] <= 255:
                sh = ((sh << 8) + seq[i]) & M32
                if c == 3:
                    h = _u32(sh, 0, HCONST_4, h)
                    c = sh = 0
                else:
                    c += 1
                i += 1
            if c > 0:
                h = _u32(sh, 0, HCONST_4, h)
            if i < n:                           # a cons cell: its head, then its tail
                push(_Tail(seq, i + 1))
                term = seq[i]
                continue
            h = NIL_ALONE if h == 0 else _u32(NIL_DEF, 0, HCONST_2, h)   # the list's end, []
        elif t is tuple:
            h = _u32(len(term), 0, HCONST_9, h)
            if term:
                for x in reversed(term[1:]):
                    push(x)
                term = term[0]
                continue
        elif t is bytes:
            con = (HCONST_13 + h) & M32
            h = _block_hash(term, con) if term else con
        elif t is Atom:
            a = _atom_hash(term)
            h = a if h == 0 else _u32(a, 0, HCONST_3, h)
        elif t is bool:
            term = Atom("true" if term else "false")
            continue
        elif isinstance(term, int):
            h = _int_hash(int(term), h)
        elif isinstance(term, float):
            bits = _FLOAT.pack(0.0 if term == 0.0 else term)
            lo, hi = int.from_bytes(bits[:4], "little"), int.from_bytes(bits[4:], "little")
            h = _u32(hi, lo, HCONST_12, h)
        else:
            raise TypeError(f"no Erlang term for {type(term).__name__}")
        if not stack:
            return h
        term = pop()


class _Tail:
    """The rest of a list from index ``i`` (a cons cell's tail, without copying)."""

    __slots__ = ("seq", "i")

    def __init__(self, seq: list, i: int):
        self.seq, self.i = seq, i



# ---------------------------------------------------------------- field tables

TYPE_ATOMS = {
    "S": "longstr", "x": "binary", "t": "bool", "b": "byte", "B": "unsignedbyte", "s": "short",
    "u": "unsignedshort", "I": "signedint", "i": "unsignedint", "l": "long", "L": "long",
    "f": "float", "d": "double", "D": "decimal", "T": "timestamp", "F": "table", "A": "array", "V": "void",
}
_ATOMS = {k: Atom(v) for k, v in TYPE_ATOMS.items()}
_UNDEFINED = Atom("undefined")


def _key(k: str) -> bytes:
    return k.encode("utf-8", "surrogateescape")


class _Nested:
    """A nested table or array, made a term only when the hash reaches it (so that depth
    costs no recursion)."""

    __slots__ = ("tv",)

    def __init__(self, tv):
        self.tv = tv

    def expand(self) -> list:
        tag, v = self.tv.tag, self.tv.value
        if isinstance(v, Opaque):               # deeper than the codec decodes: one level more
            parse = _parse_table if tag == "F" else _parse_array
            v = parse(v.raw, 4, len(v.raw), True, MAX_DEPTH - 1)
        if tag == "F":
            return [(_key(k), *_value(x)) for k, x in v.items()]
        return [_value(x) for x in v]


def _value(tv) -> tuple:
    """``(Type, Value)`` of one typed value as ``rabbit_binary_parser`` makes it."""
    tag = tv.tag
    if tag in "FA":
        return _ATOMS[tag], _Nested(tv)
    v = tv.value
    if tag in "Sx":
        return _ATOMS[tag], v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")
    if tag == "t":
        return _ATOMS[tag], bool(v)
    if tag == "D":
        scale, raw = struct.unpack(">BI", _enc_decimal(Decimal(v)))
        return _ATOMS[tag], (scale, raw)
    if tag == "V":
        return _ATOMS[tag], _UNDEFINED
    if tag in "fd":
        return _ATOMS[tag], float(v)
    return _ATOMS[tag], int(v)


def table_term(table: dict) -> list:
    """The Erlang term RabbitMQ keeps for a binding's arguments: ``[{Key, Type, Value}]``,
    the top level sorted by key (bytewise), nested tables in their own order."""
    rows = [(_key(k), *_value(v)) for k, v in table.items()]
    rows.sort(key=lambda r: r[0])
    return rows


def table_hash(table: dict) -> int:
    """``erlang:phash2(Args, 1 bsl 32)`` of a binding's arguments."""
    return phash2(table_term(table), 1 << 32)
