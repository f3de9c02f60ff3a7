"""Trials of the backlog split after the first acks, with all the acks in ONE TCP write.

    .venv/bin/python tools/backlog_split_trials.py [--url amqp://guest:guest@127.0.0.1:5672/%2F]
        [--trials 60] [--order abab] [--settle 0.3]

The compatibility issue's scenario (item 8): a queue holds 6 messages ("0".."5"); two channels
of one connection set prefetch 2 and each consumes from the queue (consumer "a" on channel 1,
then "b" on channel 2), so "a" holds "0", "1" and "b" holds "2", "3". Then the four acks --
in ``--order`` (``abab``: a's first, b's first, a's second, b's second; ``aabb``; ``baba`` ...) --
leave in a single ``send`` (one TCP segment on loopback), and the script counts what each
consumer holds once both remaining messages came (and nothing more for ``--settle`` seconds): ``4/2`` means "a" got both
remaining messages, ``3/3`` one each. It prints one line per outcome (bodies per consumer)
with its count, over ``--trials`` trials, each on a fresh connection and exclusive queue.

It is a raw-socket client (tests/rawamqp.py), so nothing but the bytes written decides the
order the broker sees: run it against RabbitMQ and Leveret with the same arguments.
"""
from __future__ import annotations

import argparse
import collections
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from pamqp import commands as C  # noqa: E402
from pamqp import frame  # noqa: E402
from pamqp import header as pheader  # noqa: E402

import rawamqp  # noqa: E402

CH_A, CH_B, CH_PUB = 1, 2, 3


def read_deliveries(c: rawamqp.RawConnection, n: int, got: dict) -> None:
    """Read until ``n`` more deliveries arrived, appending (delivery tag, body) to ``got[channel]``."""
    for _ in range(n):
        while True:
            ch, f = c.read_frame_skip_heartbeats(5)
            if isinstance(f, C.Basic.Deliver):
                break
        h = c.expect(pheader.ContentHeader, ch)
        body = c.read_frame(5)[1].value.decode() if h.body_size else ""
        got[ch].append((f.delivery_tag, body))


def silent(c: rawamqp.RawConnection, settle: float) -> bool:
    try:
        c.read_frame_skip_heartbeats(settle)
    except socket.timeout:
        return True
    return False


def trial(url: str, order: str, settle: float) -> tuple[str, str]:
    c = rawamqp.connect(url)
    try:
        for ch in (CH_A, CH_B, CH_PUB):
            c.open_channel(ch)
        c.send_method(CH_PUB, C.Queue.Declare(queue="", exclusive=True))
        q = c.expect(C.Queue.DeclareOk, CH_PUB).queue
        c.send_method(CH_PUB, C.Confirm.Select())
        c.expect(C.Confirm.SelectOk, CH_PUB)
        for i in range(6):
            c.publish(CH_PUB, "", q, str(i).encode())
        acked = 0
        while acked < 6:
            f = c.expect(C.Basic.Ack, CH_PUB)
            acked = f.delivery_tag
        got: dict[int, list] = {CH_A: [], CH_B: []}
        for ch, tag in ((CH_A, "a"), (CH_B, "b")):
            c.send_method(ch, C.Basic.Qos(prefetch_count=2))
            c.expect(C.Basic.QosOk, ch)
            c.send_method(ch, C.Basic.Consume(queue=q, consumer_tag=tag))
            c.expect(C.Basic.ConsumeOk, ch)
            read_deliveries(c, 2, got)
        assert len(got[ch]) == 2
        # nothing else may be in flight: both windows are full
        assert silent(c, settle)
        nth = {"a": 0, "b": 0}
        data = b""
        for who in order:
            ch = CH_A if who == "a" else CH_B
            data += frame.marshal(C.Basic.Ack(delivery_tag=got[ch][nth[who]][0]), ch)
            nth[who] += 1
        c.send_raw(data)                                  # the acks in one write
        read_deliveries(c, 2, got)                        # "4" and "5", to whom they went
        assert silent(c, settle)
        a = [b for _, b in got[CH_A]]
        b = [b for _, b in got[CH_B]]
        return f"{len(a)}/{len(b)}", f"a={','.join(a)} b={','.join(b)}"
    finally:
        close(c)                                          # (the exclusive queue goes with it)


def close(c: rawamqp.RawConnection) -> None:
    """connection.close, skipping whatever frames come before close-ok."""
    try:
        c.send_method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        while not isinstance(c.read_frame_skip_heartbeats(5)[1], C.Connection.CloseOk):
            pass
    finally:
        c.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--order", default="abab", help="the acks' order in the write (a's, b's)")
    p.add_argument("--settle", type=float, default=0.3)
    args = p.parse_args()
    if sorted(args.order) != ["a", "a", "b", "b"]:
        p.error("--order: two a's and two b's")
    outcomes: collections.Counter = collections.Counter()
    for _ in range(args.trials):
        outcomes[trial(args.url, args.order, args.settle)] += 1
    print(f"{args.url.split('@')[-1]} order={args.order} trials={args.trials}")
    for (split, bodies), n in outcomes.most_common():
        print(f"  {split}  {bodies}  {n}")


if __name__ == "__main__":
    main()
