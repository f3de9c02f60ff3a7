"""TLS vs plain throughput of one broker: a publisher and a no-ack consumer, 1 KB messages.

amqpbench and ``leveret perf`` speak plain TCP only, so this is a small asyncio client
(pamqp frames) run twice in one sitting against one in-process Leveret started with both
listeners -- plain and TLS (certificates made with trustme) -- alternating run by run.

    PYTHONPATH=src .venv/bin/python bench/tls.py [--messages 200000] [--size 1024] [--runs 3]

Prints deliveries/s per run and the medians' ratio TLS/plain.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import trustme
from pamqp import commands as C
from pamqp import frame, header

FH = struct.Struct(">BHI")


async def connect(port: int, ctx: ssl.SSLContext | None):
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="localhost" if ctx else None)
    w.write(b"AMQP\x00\x00\x09\x01")
    buf = bytearray()

    async def expect(cls):
        nonlocal buf
        while True:
            try:
                n, _, f = frame.unmarshal(bytes(buf))
            except Exception:
                buf += await r.read(65536)
                continue
            del buf[:n]
            if isinstance(f, cls):
                return f
    await expect(C.Connection.Start)
    w.write(frame.marshal(C.Connection.StartOk(client_properties={}, response="\0guest\0guest"), 0))
    await expect(C.Connection.Tune)
    w.write(frame.marshal(C.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0), 0))
    w.write(frame.marshal(C.Connection.Open(), 0))
    await expect(C.Connection.OpenOk)
    w.write(frame.marshal(C.Channel.Open(), 1))
    await expect(C.Channel.OpenOk)
    return r, w, expect, buf


async def run(port: int, ctx, n: int, size: int) -> float:
    qname = f"tls-bench-{os.getpid()}-{time.monotonic_ns()}"
    cr, cw, cexpect, cbuf = await connect(port, ctx)
    cw.write(frame.marshal(C.Queue.Declare(queue=qname, auto_delete=True), 1))
    await cexpect(C.Queue.DeclareOk)
    cw.write(frame.marshal(C.Basic.Consume(queue=qname, no_ack=True), 1))
    await cexpect(C.Basic.ConsumeOk)
    pr, pw, _, _ = await connect(port, ctx)
    body = b"x" * size
    one = (frame.marshal(C.Basic.Publish(exchange="", routing_key=qname), 1)
           + frame.marshal(header.ContentHeader(0, size, C.Basic.Properties()), 1)
           + FH.pack(3, 1, size) + body + b"\xce")
    t0 = time.perf_counter()

    async def publish():
        for i in range(0, n, 100):
            pw.write(one * min(100, n - i))
            await pw.drain()

    async def consume():
        got = 0
        buf = bytearray(cbuf)
        while got < n:
            buf += await cr.read(262144)
            pos = 0
            while len(buf) - pos >= 7:
                t, _, ln = FH.unpack_from(buf, pos)
                if len(buf) - pos < ln + 8:
                    break
                if t == 1:               # after consume-ok the only method frames: basic.deliver
                    got += 1
                pos += ln + 8
            del buf[:pos]
    await asyncio.gather(publish(), consume())
    rate = n / (time.perf_counter() - t0)
    for w in (pw, cw):
        w.close()
    return rate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    with tempfile.TemporaryDirectory() as d:
        certfile, keyfile = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        cert.cert_chain_pems[0].write_to_path(certfile)
        cert.private_key_pem.write_to_path(keyfile)
        port, ssl_port = 5795, 5796
        proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(port), "--data-dir", d,
                                 "--ssl-port", str(ssl_port), "--ssl-certfile", certfile, "--ssl-keyfile", keyfile,
                                 "--log-level", "WARNING"], stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2)
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            rates = {"plain": [], "tls": []}
            for _ in range(a.runs):
                for name, p, c in (("plain", port, None), ("tls", ssl_port, ctx)):
                    r = asyncio.run(run(p, c, a.messages, a.size))
                    rates[name].append(r)
                    print(f"{name:5} {r:12,.0f} deliveries/s", flush=True)
            med = {k: statistics.median(v) for k, v in rates.items()}
            print(f"median plain {med['plain']:,.0f}/s  tls {med['tls']:,.0f}/s  tls/plain {med['tls'] / med['plain']:.2f}")
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
