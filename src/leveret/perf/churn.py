"""Connection-churn worker of ``leveret perf --churn``.

Each worker process is one client looping: TCP connect -> AMQP handshake
(start/start-ok, tune/tune-ok, open/open-ok) -> channel.open -> connection.close
-> close-ok -> socket close, as fast as it can (or ``--rate`` cycles per second).
Every cycle's wall time goes into a latency histogram; counts and histograms
go to the main process in 200 ms ticks, like the other workers.
"""
from __future__ import annotations

import signal
import time

from .stats import bucket
from .wire import Connection, PerfError, stop_requested

TICK_NS = 200_000_000


def run(ctl, uri, opts) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl.send(("ready", None))
    msg = ctl.recv()
    if msg[0] != "go":
        return
    _, t0, end_ns = msg
    time.sleep(max(0, t0 - time.monotonic_ns()) / 1e9)      # everybody starts at t0
    count = 0
    last_count = 0
    hist: dict = {}
    errors: list = []
    next_tick = t0 + TICK_NS
    limit = opts.pmessages or 0
    rate = float(opts.rate or 0)
    last_ns = 0
    while True:
        now = time.monotonic_ns()
        if now >= next_tick:
            idx = (now - t0) // TICK_NS - 1
            ctl.send(("tick", idx, {"connections": count - last_count, "hist": hist}))
            hist = {}
            last_count = count
            next_tick = t0 + (idx + 2) * TICK_NS
        if end_ns is not None and now >= end_ns:
            break
        if limit and count >= limit:
            break
        if ctl.poll() and stop_requested(ctl):
            break
        if rate:
            due = t0 + int(count * 1e9 / rate)
            if due > now:
                time.sleep(min(due, next_tick) / 1e9 - now / 1e9)
                continue
        try:
            c = Connection(uri, opts.connect_timeout)
            c.close(opts.connect_timeout)
        except PerfError as e:
            errors.append(str(e))
            break
        end = time.monotonic_ns()
        k = bucket(end - now)
        hist[k] = hist.get(k, 0) + 1
        count += 1
        last_ns = end
    now = time.monotonic_ns()
    ctl.send(("tick", max(0, (now - t0) // TICK_NS), {"connections": count - last_count, "hist": hist}))
    ctl.send(("final", {"connections": count, "last_ns": last_ns, "errors": errors}))
