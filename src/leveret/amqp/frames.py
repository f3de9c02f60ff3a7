"""Frame encoders: method frames, content (header + body) frames, heartbeats.

Frame layout (AMQP 0-9-1 §4.2.3): ``type:u8 channel:u16 size:u32 payload 0xCE``.
Bodies are split at ``frame_max - 8`` (the 7-byte header and the end octet).

The deliver/get-ok encoders are hand-specialised because they run once per
delivered message: one ``struct.pack`` for the method frame header, the
pre-encoded consumer tag and exchange/routing-key bytes spliced in, and the
content header forwarded exactly as the publisher sent it.
"""
from __future__ import annotations

import struct

from . import spec
from .codec import enc_shortstr

FRAME_END = b"\xce"
_FH = struct.Struct(">BHI")
_Q = struct.Struct(">Q")
_QB = struct.Struct(">QB")
_END_FH = struct.Struct(">BBHI")   # previous frame's end octet + next frame header
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_DELIVER_HEAD = b"\x00\x3c\x00\x3c"
_GETOK_HEAD = b"\x00\x3c\x00\x47"
_RETURN_HEAD = b"\x00\x3c\x00\x32"
_ACK_FRAME_TAIL = struct.Struct(">BHI4sQB")


def method_frame(channel: int, method: spec.Method) -> bytes:
    payload = method.encode()
    return _FH.pack(1, channel, len(payload)) + payload + FRAME_END


def content_frames(channel: int, header: bytes, body: bytes, frame_max: int, parts: list) -> None:
    """Append the header frame and body frames of one message to ``parts``."""
    parts.append(_FH.pack(2, channel, len(header)) + header + FRAME_END)
    n = len(body)
    if not n:
        return
    chunk = frame_max - 8
    if n <= chunk:
        parts.append(_FH.pack(3, channel, n))
        parts.append(body)
        parts.append(FRAME_END)
        return
    for i in range(0, n, chunk):
        piece = body[i:i + chunk]
        parts.append(_FH.pack(3, channel, len(piece)) + piece + FRAME_END)


def deliver_frames(channel: int, ctag: bytes, tag: int, redelivered: bool, ex_rk: bytes,
                   header: bytes, body: bytes, frame_max: int, parts: list) -> None:
    """basic.deliver + content. ``ctag`` and ``ex_rk`` are pre-encoded shortstrs.

    The common case (body fits one frame) is one ``bytes`` built by a single join.
    """
    blen = len(body)
    if 0 < blen <= frame_max - 8:
        parts.append(b"".join((
            _FH.pack(1, channel, 13 + len(ctag) + len(ex_rk)), _DELIVER_HEAD, ctag,
            _QB.pack(tag, 1 if redelivered else 0), ex_rk,
            _END_FH.pack(0xCE, 2, channel, len(header)), header,
            _END_FH.pack(0xCE, 3, channel, blen), body, FRAME_END)))
        return
    payload = b"".join((_DELIVER_HEAD, ctag, _QB.pack(tag, 1 if redelivered else 0), ex_rk))
    parts.append(_FH.pack(1, channel, len(payload)) + payload + FRAME_END)
    content_frames(channel, header, body, frame_max, parts)


def get_ok_frames(channel: int, tag: int, redelivered: bool, ex_rk: bytes, message_count: int,
                  header: bytes, body: bytes, frame_max: int, parts: list) -> None:
    payload = b"".join((_GETOK_HEAD, _QB.pack(tag, 1 if redelivered else 0), ex_rk,
                        struct.pack(">I", message_count)))
    parts.append(_FH.pack(1, channel, len(payload)) + payload + FRAME_END)
    content_frames(channel, header, body, frame_max, parts)


def return_frames(channel: int, reply_code: int, reply_text: str, ex_rk: bytes,
                  header: bytes, body: bytes, frame_max: int, parts: list) -> None:

    payload = b"".join((_RETURN_HEAD, struct.pack(">H", reply_code), enc_shortstr(reply_text), ex_rk))
    parts.append(_FH.pack(1, channel, len(payload)) + payload + FRAME_END)
    content_frames(channel, header, body, frame_max, parts)


def ack_frame(channel: int, tag: int, multiple: bool) -> bytes:
    """basic.ack from the server (publisher confirms)."""
    return _ACK_FRAME_TAIL.pack(1, channel, 13, b"\x00\x3c\x00\x50", tag, 1 if multiple else 0) + FRAME_END

