"""leveret.amqp.phash2 against Erlang's own ``erlang:phash2/2``.

With ``erl`` on PATH (it is wherever RabbitMQ is installed) a few thousand random terms of
the kinds a field table holds are sent to one ``erl`` in the external term format and their
hashes compared; the fixed vectors below were produced by OTP 25's ``erl`` and need none."""
from __future__ import annotations

import base64
import random
import shutil
import struct
import subprocess

import pytest

from leveret.amqp.codec import decode_table_typed, encode_table, Typed
from leveret.amqp.phash2 import Atom, phash2, table_hash, table_term


def etf(term) -> bytes:
    """``term_to_binary`` of a Python term (as :mod:`leveret.amqp.phash2` reads terms)."""
    out = bytearray(b"\x83")

    def enc(t):
        if isinstance(t, Atom):
            b = t.encode()
            out.extend(b"w" + bytes((len(b),)) + b)
        elif isinstance(t, bool):
            enc(Atom("true" if t else "false"))
        elif isinstance(t, int):
            if 0 <= t < 256:
                out.extend(b"a" + bytes((t,)))
            elif -2**31 <= t < 2**31:
                out.extend(b"b" + struct.pack(">i", t))
            else:
                m = abs(t)
                digits = m.to_bytes((m.bit_length() + 7) // 8, "little")
                out.extend(b"n" + bytes((len(digits), t < 0)) + digits)
        elif isinstance(t, float):
            out.extend(b"F" + struct.pack(">d", t))
        elif isinstance(t, bytes):
            out.extend(b"m" + struct.pack(">I", len(t)) + t)
        elif isinstance(t, tuple):
            out.extend(b"h" + bytes((len(t),)))
            for x in t:
                enc(x)
        elif isinstance(t, list):
            if not t:
                out.extend(b"j")
                return
            out.extend(b"l" + struct.pack(">I", len(t)))
            for x in t:
                enc(x)
            out.extend(b"j")
        else:
            raise TypeError(t)
    enc(term)
    return bytes(out)


def erl_hashes(terms: list, tmp_path) -> list[int]:
    """``erlang:phash2(T, 1 bsl 32)`` of each term, by a real ``erl``."""
    f = tmp_path / "terms.txt"
    f.write_text("\n".join(base64.b64encode(etf(t)).decode() for t in terms))
    prog = (f'{{ok, B}} = file:read_file("{f}"), '
            '[io:format("~b~n", [erlang:phash2(binary_to_term(base64:decode(L)), 1 bsl 32)]) '
            '|| L <- binary:split(B, <<"\\n">>, [global])], halt().')
    r = subprocess.run(["erl", "-noshell", "-eval", prog], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [int(x) for x in r.stdout.split()]


def random_term(rnd: random.Random, depth: int = 0):
    kinds = ["int", "bigint", "float", "bin", "atom", "bytes"] + (["tuple", "list", "bytelist"] if depth < 4 else [])
    k = rnd.choice(kinds)
    if k == "int":
        return rnd.choice([0, 1, -1, 255, 256, -(1 << 27), (1 << 27) - 1, 1 << 27, -(1 << 27) - 1,
                           rnd.randint(-1000, 1000), rnd.randint(-2**31, 2**31)])
    if k == "bigint":
        return rnd.choice([1, -1]) * rnd.randint(0, 2 ** rnd.choice([32, 59, 60, 63, 64, 65, 128, 200]))
    if k == "float":
        return rnd.choice([0.0, -0.0, 1.5, -2.25, 1e300, rnd.uniform(-1e9, 1e9), 3.4028234663852886e38])
    if k == "bin":
        return bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 3, 4, 8, 11, 12, 13, 24, 25, 100])))
    if k == "bytes":
        return "héllo ✓ wörld".encode()[:rnd.randint(0, 17)]
    if k == "atom":
        return Atom(rnd.choice(["longstr", "long", "true", "false", "undefined", "table", "array", "a", "x" * 40,
                                "signedint", "unsignedbyte", "timestamp", "decimal", "void"]))
    if k == "tuple":
        return tuple(random_term(rnd, depth + 1) for _ in range(rnd.randint(0, 4)))
    if k == "bytelist":
        return [rnd.randrange(256) for _ in range(rnd.randint(0, 9))] + [random_term(rnd, depth + 1)] * rnd.randint(0, 1)
    return [random_term(rnd, depth + 1) for _ in range(rnd.randint(0, 5))]


# (term, erlang:phash2(term, 1 bsl 32)) from OTP 25.2.3
VECTORS = [
    ([], 3468870702),
    (Atom("true"), 506293),
    (0, 3175731469),
    (-5, 517668864),
    (1 << 40, 282329375),
    (-(1 << 70), 4181281985),
    (1.5, 2023646235),
    (b"", 147926629),
    (b"hello world!!", 2552201628),
    ((), 221703996),
    ([(b"x-match", Atom("longstr"), b"all"), (b"n", Atom("long"), 42)], 2262388875),
    ([1, 2, 3, [Atom("a")], 300], 1672386340),
]


def test_vectors():
    assert [phash2(t, 1 << 32) for t, _ in VECTORS] == [h for _, h in VECTORS]


def test_range():
    h = phash2(b"abc", 1 << 32)
    assert phash2(b"abc", 1 << 27) == h & ((1 << 27) - 1)
    assert phash2(b"abc", 1000) == h % 1000


@pytest.mark.skipif(shutil.which("erl") is None, reason="needs erl (Erlang/OTP)")
def test_vectors_are_erlangs(tmp_path):
    assert erl_hashes([t for t, _ in VECTORS], tmp_path) == [h for _, h in VECTORS]


@pytest.mark.skipif(shutil.which("erl") is None, reason="needs erl (Erlang/OTP)")
def test_random_terms_match_erlang(tmp_path):
    rnd = random.Random(14)
    terms = [random_term(rnd) for _ in range(3000)]
    ours = [phash2(t, 1 << 32) for t in terms]
    theirs = erl_hashes(terms, tmp_path)
    bad = [(t, a, b) for t, a, b in zip(terms, ours, theirs) if a != b]
    assert not bad, bad[:5]


def test_table_term_is_rabbits():
    """A decoded table hashes as the term ``rabbit_binary_parser`` makes of it: ``{Key, Type,
    Value}`` rows, the top level sorted by key, nested tables in wire order, each wire type
    under RabbitMQ's name for it."""
    inner = b"\x01yI" + struct.pack(">i", 7) + b"\x01xV"
    arr = b"b\xff" + b"s\x00\x05" + b"T" + struct.pack(">Q", 9)
    body = (b"\x01zS" + struct.pack(">I", 5) + b"small" + b"\x01bt\x01" + b"\x01aF" + struct.pack(">I", len(inner))
            + inner + b"\x01cD\x02" + struct.pack(">I", 300) + b"\x01dA" + struct.pack(">I", len(arr)) + arr
            + b"\x01ef" + struct.pack(">f", 0.25) + b"\x01fL" + struct.pack(">q", -2) + b"\x01gx\x00\x00\x00\x01\x00")
    table, _ = decode_table_typed(struct.pack(">I", len(body)) + body)
    expected = [
        (b"a", Atom("table"), [(b"y", Atom("signedint"), 7), (b"x", Atom("void"), Atom("undefined"))]),
        (b"b", Atom("bool"), Atom("true")),
        (b"c", Atom("decimal"), (2, 300)),
        (b"d", Atom("array"), [(Atom("byte"), -1), (Atom("short"), 5), (Atom("timestamp"), 9)]),
        (b"e", Atom("float"), 0.25),
        (b"f", Atom("long"), -2),
        (b"g", Atom("binary"), b"\x00"),
        (b"z", Atom("longstr"), b"small"),
    ]
    assert table_hash(table) == phash2(expected, 1 << 32)
    assert [r[:2] for r in table_term(table)] == [r[:2] for r in expected]


def test_deep_table_has_no_recursion_limit():
    """A table nested 3000 deep (kept by the codec as wire bytes below 64 levels) hashes as
    the same nesting of plain terms."""
    body = encode_table({"leaf": 1})
    term: list = [(b"leaf", Atom("signedint"), 1)]
    for _ in range(3000):
        body = struct.pack(">I", len(body) + 3) + b"\x01nF" + body
        term = [(b"n", Atom("table"), term)]
    table, _ = decode_table_typed(body)
    import sys
    limit = sys.getrecursionlimit()
    assert table_hash(table) == phash2(term, 1 << 32)
    assert sys.getrecursionlimit() == limit


def test_typed_values():
    t = {"s": Typed("s", -3), "l": Typed("L", -1), "f": Typed("f", 0.5), "x": Typed("x", b"\x00\xff")}
    term = table_term(t)
    assert [r[:2] for r in term] == [(b"f", Atom("float")), (b"l", Atom("long")), (b"s", Atom("short")),
                                     (b"x", Atom("binary"))]
