"""In-process hot-path microbenchmark: publish -> route -> enqueue -> deliver (-> ack), no sockets.

Two sans-I/O BrokerConnections on one Broker: a publisher fed pre-encoded frames, and a consumer
whose output is drained (and, with --ack, acked in batches). Measures broker CPU per message
without the kernel or a client in the way. Run under cProfile with --profile. ``CPU us/msg`` (process time) is steadier than the wall-clock
figure when other processes share the machine.

    python bench/hotpath.py [--size 16] [--count 200000] [--ack [--ack-every 10]] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import time

from pamqp import commands as C
from pamqp import frame as F
from pamqp import header as H
from pamqp import body as B

from leveret import Broker
from leveret.broker.connection import BrokerConnection


ACK = struct.Struct(">BHIHHQBB")     # a basic.ack frame on channel 1 (cheaper than pamqp's marshal)


def open_conn(b: Broker) -> BrokerConnection:
    c = BrokerConnection(b, ("127.0.0.1", 1))
    c.receive_data(b"AMQP\x00\x00\x09\x01")
    c.receive_data(F.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                                  response="\0guest\0guest"), 0))
    c.receive_data(F.marshal(C.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0), 0))
    c.receive_data(F.marshal(C.Connection.Open(virtual_host="/"), 0))
    c.receive_data(F.marshal(C.Channel.Open(), 1))
    c.data_to_send()
    return c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--ack", action="store_true")
    ap.add_argument("--ack-every", type=int, default=0,
                    help="with --ack: one multiple ack per this many deliveries (like amqpbench -A)")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    b = Broker()
    pub, con = open_conn(b), open_conn(b)
    con.receive_data(F.marshal(C.Queue.Declare(queue="q"), 1))
    if a.ack:
        con.receive_data(F.marshal(C.Basic.Qos(prefetch_count=100), 1))
    con.receive_data(F.marshal(C.Basic.Consume(queue="q", consumer_tag="c", no_ack=not a.ack), 1))
    con.data_to_send()
    body = b"x" * a.size
    one = (F.marshal(C.Basic.Publish(exchange="", routing_key="q"), 1)
           + F.marshal(H.ContentHeader(0, len(body), C.Basic.Properties()), 1)
           + F.marshal(B.ContentBody(body), 1))
    batch = one * 200
    rounds = a.count // 200

    def run():
        for _ in range(rounds):
            pub.receive_data(batch)
            con.data_to_send()
            if a.ack:
                ch = con.sessions[1]
                while ch.unacked:
                    if a.ack_every:
                        first, last = next(iter(ch.unacked)), ch.next_tag
                        tags = list(range(first + a.ack_every - 1, last + 1, a.ack_every)) or [last]
                        con.receive_data(b"".join(ACK.pack(1, 1, 13, 60, 80, t, 1, 0xCE) for t in tags))
                    else:
                        con.receive_data(F.marshal(C.Basic.Ack(delivery_tag=ch.next_tag, multiple=True), 1))
                    con.data_to_send()
    t = time.perf_counter()
    cpu = time.process_time()
    if a.profile:
        prof = cProfile.Profile()
        prof.runcall(run)
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    else:
        run()
    dt = time.perf_counter() - t
    cpu = time.process_time() - cpu
    n = rounds * 200
    print(f"{n} messages in {dt:.2f}s: {n / dt:,.0f} msg/s, {dt / n * 1e6:.2f} us/msg, "
          f"CPU {cpu / n * 1e6:.2f} us/msg"
          f" (size={a.size}, ack={a.ack}, queue left={len(b.vhosts['/'].queues['q'].ready)})")


if __name__ == "__main__":
    main()
