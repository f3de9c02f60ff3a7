"""What a client that sends a frame one byte per read costs the broker's frame reader.

    .venv/bin/python bench/trickle.py [--sizes 4096,32768,131072]

A hostile (or just slow) client can split a frame into one-byte TCP segments. The reader must
then do work proportional to the frame's size, not to its square: it appends each piece to the
partial frame it holds and parses only once the frame is complete. Measured in process on the
sans-I/O connection (a bare protocol connection whose hooks take every frame, as the fuzz
harness's), after ``connection.tune-ok`` raised ``frame_max`` to 131072: prints
microseconds per byte for each frame size. Linear cost shows as the same µs/byte at every size.
"""
from __future__ import annotations

import argparse
import time

from pamqp import commands as C
from pamqp import frame as F

from leveret.amqp.connection import ProtocolConnection


class FrameSink(ProtocolConnection):
    """A bare protocol connection whose hooks take every frame (as the fuzz harness's)."""

    def on_method(self, ch, method):
        pass

    def on_publish(self, ch, method, header, body):
        pass

HANDSHAKE = (b"AMQP\x00\x00\x09\x01"
             + F.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest"), 0)
             + F.marshal(C.Connection.TuneOk(channel_max=10, frame_max=131072, heartbeat=0), 0)
             + F.marshal(C.Connection.Open(virtual_host="/"), 0))


def trickle(size: int) -> float:
    """Seconds to feed one method frame of ``size`` bytes of payload, a byte at a time."""
    conn = FrameSink(0.0)
    conn.receive_data(HANDSHAKE)
    payload = b"\x00\x3c\x00\x28" + bytes(size - 4)          # basic.publish's ids, then padding
    frame = b"\x01\x00\x01" + size.to_bytes(4, "big") + payload + b"\xce"
    t = time.perf_counter()
    for i in range(len(frame)):
        conn.receive_data(frame[i:i + 1])
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4096,32768,131072")
    args = ap.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        took = min(trickle(size) for _ in range(3))
        print(f"frame of {size:>7} bytes, one byte per read: {took * 1000:9.1f} ms "
              f"({took / size * 1e6:.2f} µs/byte)")


if __name__ == "__main__":
    main()
