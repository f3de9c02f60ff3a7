"""``leveret perf``: options, orchestration of the worker processes, and the report.

The main process parses the options, declares the exchange and queues on a
control connection (names ``perf-<random>``), forks the consumer workers, waits
until they consume, forks the producer workers, and then sends everybody the
same start time. While the test runs it only merges the 200 ms ticks the
workers send and prints one line per second. When the producers are done it
waits for the consumers to drain what was routed to their queues, collects
the per-message accounting, deletes what it declared (unless ``--keep``) and
prints the summary (or one JSON object with ``--json``).

Exit codes: 0 success; 1 the run completed but something was wrong (messages
lost or duplicated, a broker error during the run, ...); 2 bad options;
3 could not connect, log in, or set up.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import sys
import time

from ..amqp import spec
from . import stats
from .wire import DEFAULT_URI, BrokerClosed, Connection, PerfError, parse_uri

TICK_NS = 200_000_000
TICKS_PER_S = 1_000_000_000 // TICK_NS
GRACE_NS = 300_000_000


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="leveret perf",
        description="AMQP 0-9-1 throughput and latency tester (works against any broker).",
        epilog="Without --time and --pmessages the test runs until Ctrl-C. See docs/perf.md.")
    a = p.add_argument
    a("-u", "--uri", default=DEFAULT_URI, help="broker URI (default " + DEFAULT_URI.replace("%", "%%") + ")")
    a("-x", "--producers", type=int, default=1, help="producer connections (default 1)")
    a("-y", "--consumers", type=int, default=1, help="consumer connections (default 1)")
    a("-s", "--size", type=int, default=16,
      help="message body size in bytes (default 16; below 16 only counts are checked)")
    a("-z", "--time", type=float, default=None, help="publish for this many seconds")
    a("-C", "--pmessages", type=int, default=0, help="messages to publish per producer")
    a("-r", "--rate", type=float, default=0, help="messages per second per producer (0 = unlimited)")
    a("-c", "--confirm", type=int, default=0, metavar="N",
      help="publisher confirms with at most N unconfirmed messages per producer")
    a("-a", "--autoack", action="store_true", help="consume with no-ack")
    a("-A", "--multi-ack", type=int, default=0, metavar="N",
      help="manual acks with multiple=True every N messages (default: ack each message)")
    a("-q", "--qos", type=int, default=0, metavar="PREFETCH", help="basic.qos prefetch count (0 = none)")
    a("-f", "--persistent", action="store_true", help="publish with delivery-mode 2")
    a("--durable", action="store_true", help="durable exchange and queues")
    a("--queues", type=int, default=1, help="number of queues (default 1)")
    a("--exchange-type", choices=("direct", "fanout", "topic"), default="direct",
      help="fanout copies every message to every queue; direct/topic spread producers over the queues")
    a("--queue-args", default=None, metavar="JSON", help='queue.declare arguments, e.g. \'{"x-max-length": 1000}\'')
    a("--churn", action="store_true",
      help="connection churn: -x clients loop connect/handshake/channel.open/close; reports connections/s")
    a("--json", action="store_true", help="print only one JSON object at the end")
    a("--keep", action="store_true", help="do not delete the exchange and queues at the end")
    a("--prefix", default="perf-", help="name prefix of the exchange and queues (a random suffix follows)")
    a("--batch-bytes", type=int, default=256 * 1024, help="bytes per producer write (default 256 KiB)")
    a("--coalesce-us", type=float, default=None,
      help="consumer pause after a small read, to batch reads (default 500 without --rate, else 0)")
    a("--drain-timeout", type=float, default=60.0,
      help="max seconds to wait for consumers after publishing stops (default 60)")
    a("--drain-idle", type=float, default=3.0,
      help="stop draining after this many seconds without a delivery (default 3)")
    a("--confirm-timeout", type=float, default=30.0,
      help="max seconds to wait for outstanding confirms at the end (default 30)")
    a("--connect-timeout", type=float, default=10.0, help="socket timeout for connect and handshake")
    return p


def validate(args) -> None:
    if args.producers < 0 or args.consumers < 0:
        raise UsageError("--producers and --consumers must be >= 0")
    if args.producers >= 1 << 16:
        raise UsageError("at most 65535 producers")
    if args.size < 0:
        raise UsageError("--size must be >= 0")
    if args.time is not None and args.time <= 0:
        raise UsageError("--time must be > 0")
    if args.pmessages < 0 or args.rate < 0 or args.confirm < 0 or args.multi_ack < 0:
        raise UsageError("--pmessages, --rate, --confirm and --multi-ack must be >= 0")
    if not 0 <= args.qos <= 65535:
        raise UsageError("--qos must be 0..65535")
    if args.queues < 1:
        raise UsageError("--queues must be >= 1")
    if args.batch_bytes < 1:
        raise UsageError("--batch-bytes must be >= 1")
    if args.churn:
        if args.producers < 1:
            raise UsageError("--churn needs at least one client (--producers)")
        return
    if 0 < args.consumers < args.queues:
        raise UsageError(f"{args.queues} queues need at least {args.queues} consumers (one per queue)")
    if args.queue_args:
        try:
            qa = json.loads(args.queue_args)
        except ValueError as e:
            raise UsageError(f"--queue-args is not valid JSON: {e}") from None
        if not isinstance(qa, dict):
            raise UsageError("--queue-args must be a JSON object")
        args.queue_args = qa
    if args.coalesce_us is None:
        args.coalesce_us = 0 if args.rate else 500


# ------------------------------------------------------------------ workers
def _child(target, conn, *args) -> None:
    try:
        target(conn, *args)
    except (PerfError, OSError) as e:
        _send_quietly(conn, ("error", str(e)))
    except Exception as e:   # a bug: one line for the user, the traceback only on request
        if os.environ.get("LEVERET_PERF_DEBUG"):
            import traceback
            traceback.print_exc()
        _send_quietly(conn, ("error", f"internal error in a worker: {type(e).__name__}: {e}"))


def _send_quietly(conn, msg) -> None:
    try:
        conn.send(msg)
    except OSError:
        pass


class Worker:
    def __init__(self, ctx, kind: str, target, *args):
        self.kind = kind
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(target, child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.final = None
        self.eof = False

    def send(self, msg) -> None:
        _send_quietly(self.conn, msg)


class Run:
    """State shared by the throughput and churn modes: workers, ticks, output."""

    def __init__(self, args, uri):
        self.args = args
        self.uri = uri
        self.ctx = multiprocessing.get_context("fork")
        self.workers: list[Worker] = []
        self.errors: list[str] = []
        self.seconds: dict[int, dict] = {}
        self.printed = 0
        self.t0 = 0
        self.end_ns = None
        self.interrupted = 0
        self.blocked_seen: set = set()
        self.total_hist: dict = {}

    # ---- signals
    def on_sigint(self, signum, frame) -> None:
        self.interrupted += 1
        if self.interrupted > 1:
            raise KeyboardInterrupt

    # ---- messages from workers
    def pump(self, timeout: float) -> None:
        conns = {w.conn: w for w in self.workers if not w.eof}
        if not conns:
            time.sleep(timeout)
            return
        for c in multiprocessing.connection.wait(list(conns), timeout):
            w = conns[c]
            try:
                while c.poll():
                    self.handle(w, c.recv())
            except (EOFError, OSError):
                w.eof = True
                if w.final is None and w.ready is not None:
                    w.proc.join(1.0)
                    if w.final is None:
                        self.errors.append(f"a {w.kind} worker exited unexpectedly (exit code {w.proc.exitcode})")
                        w.ready = None

    def handle(self, w: Worker, msg) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
        elif kind == "error":
            self.errors.append(msg[1])
            w.ready = None           # never ready / failed
        elif kind == "tick":
            sec = self.seconds.setdefault(msg[1] // TICKS_PER_S,
                                          {"sent": 0, "confirmed": 0, "nacked": 0, "received": 0,
                                           "redelivered": 0, "connections": 0, "hist": {}, "blocked": False})
            d = msg[2]
            for k in ("sent", "confirmed", "nacked", "received", "redelivered", "connections"):
                sec[k] += d.get(k, 0)
            if d.get("hist"):
                stats.merge(sec["hist"], d["hist"])
                stats.merge(self.total_hist, d["hist"])
            for reason in d.get("blocked") or ():
                sec["blocked"] = True
                if reason not in self.blocked_seen:
                    self.blocked_seen.add(reason)
                    self.say(f"the broker blocked a producer connection (connection.blocked): {reason}")
        elif kind == "final":
            w.final = msg[1]
            self.errors.extend(msg[1].get("errors") or ())

    def wait_ready(self, workers, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(w.ready is False for w in workers):
            if any(w.ready is None for w in workers):
                raise PerfError(self.errors[0] if self.errors else "a worker failed to start")
            if time.monotonic() > deadline:
                raise PerfError("workers did not connect in time")
            self.pump(0.05)
        if any(w.ready is None for w in workers):
            raise PerfError(self.errors[0] if self.errors else "a worker failed to start")

    def wait_finals(self, workers, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(w.final is None and w.ready is not None for w in workers) and time.monotonic() < deadline:
            self.pump(0.05)
        for w in workers:
            if w.final is None and w.ready is not None:
                self.errors.append(f"a {w.kind} worker did not report within {timeout:g} s")

    def stop_workers(self) -> None:
        for w in self.workers:
            w.proc.join(2.0)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(1.0)

    # ---- output
    def say(self, line: str) -> None:
        if not self.args.json:
            print(line, flush=True)

    def print_seconds(self, final: bool = False) -> None:
        if self.args.json or not self.t0:
            return
        now = time.monotonic_ns()
        last = max(self.seconds) if self.seconds else -1
        while True:
            s = self.printed
            if final:
                if s > last:
                    break
            elif now < self.t0 + (s + 1) * 1_000_000_000 + GRACE_NS:
                break
            d = self.seconds.get(s) or {"sent": 0, "confirmed": 0, "received": 0, "connections": 0,
                                        "hist": {}, "blocked": False}
            self.printed += 1
            print(self.second_line(s, d), flush=True)

    def second_line(self, s: int, d: dict) -> str:
        lat = stats.percentiles(d["hist"])
        lat_txt = f"latency p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms" if lat else "latency -"
        if self.args.churn:
            return f"time {s + 1:>4} s  connections {d['connections']:>8,}/s  {lat_txt}"
        blocked = "  [blocked]" if d["blocked"] else ""
        return (f"time {s + 1:>4} s  sent {d['sent']:>9,}/s  confirmed {d['confirmed']:>9,}/s  "
                f"received {d['received']:>9,}/s  {lat_txt}{blocked}")


# --------------------------------------------------------------- throughput
def topology(args, prefix: str):
    """Exchange name, queue names, bindings [(queue, key)], and per-producer (routing key, queue idxs)."""
    nq = args.queues
    queues = [f"{prefix}-q{k}" for k in range(nq)]
    et = args.exchange_type
    if et == "fanout":
        bindings = [(q, "") for q in queues]
        routes = [("", list(range(nq))) for _ in range(args.producers)]
    elif et == "topic":
        bindings = [(q, f"{prefix}.q{k}.#") for k, q in enumerate(queues)]
        routes = [(f"{prefix}.q{p % nq}.p{p}", [p % nq]) for p in range(args.producers)]
    else:
        bindings = [(q, q) for q in queues]
        routes = [(queues[p % nq], [p % nq]) for p in range(args.producers)]
    return prefix, queues, bindings, routes


def declare(ctl: Connection, args, exchange, queues, bindings) -> None:
    ctl.rpc(spec.ExchangeDeclare(exchange=exchange, type=args.exchange_type, durable=args.durable),
            spec.ExchangeDeclareOk)
    for q in queues:
        ctl.rpc(spec.QueueDeclare(queue=q, durable=args.durable, arguments=args.queue_args or None),
                spec.QueueDeclareOk)
    for q, key in bindings:
        ctl.rpc(spec.QueueBind(queue=q, exchange=exchange, routing_key=key), spec.QueueBindOk)


def cleanup(uri, args, ctl: Connection | None, exchange, queues, count: bool = True) -> int | None:
    """Passive-declare the queues (messages left in them) and delete them unless --keep."""
    left = 0

    def call(method, reply):
        if not ctl.channel_open:
            ctl.rpc(spec.ChannelOpen(), spec.ChannelOpenOk)
            ctl.channel_open = True
        return ctl.rpc(method, reply)

    try:
        if ctl is None or ctl.closed:
            ctl = Connection(uri, args.connect_timeout)
        ctl.sock.settimeout(10.0)
        for q in queues if count else ():
            try:
                left += call(spec.QueueDeclare(queue=q, passive=True), spec.QueueDeclareOk).message_count
            except BrokerClosed:
                pass
        if not args.keep:
            for q in queues:
                try:
                    call(spec.QueueDelete(queue=q), spec.QueueDeleteOk)
                except BrokerClosed:
                    pass
            try:
                call(spec.ExchangeDelete(exchange=exchange), spec.ExchangeDeleteOk)
            except BrokerClosed:
                pass
        ctl.close(2.0)
    except (PerfError, OSError) as e:
        print(f"leveret perf: warning: cleanup failed ({e}); delete {exchange}* by hand", file=sys.stderr)
        return None
    return left


def split(items: list, nprocs: int) -> list[list]:
    groups = [items[i::nprocs] for i in range(nprocs)]
    return [g for g in groups if g]


def run_throughput(args, uri) -> int:
    from . import consumer, producer
    r = Run(args, uri)
    t_start = time.monotonic()
    ctl = Connection(uri, args.connect_timeout)
    broker = ctl.server_name()
    prefix = args.prefix + secrets.token_hex(4)
    exchange, queues, bindings, routes = topology(args, prefix)
    declared = False
    cpus = os.cpu_count() or 1
    old = signal.signal(signal.SIGINT, r.on_sigint)
    try:
        declared = True
        declare(ctl, args, exchange, queues, bindings)
        r.say(f"leveret perf: {broker} at {uri.masked()}, exchange {exchange} ({args.exchange_type}), "
              f"{len(queues)} queue(s), {args.producers} producer(s), {args.consumers} consumer(s), "
              f"{args.size} B")
        cons_assign = [(c, queues[c % len(queues)], c % len(queues)) for c in range(args.consumers)]
        consumers = [Worker(r.ctx, "consumer", consumer.run, uri, g, args, args.producers)
                     for g in split(cons_assign, min(args.consumers, cpus))] if args.consumers else []
        r.workers += consumers
        r.wait_ready(consumers, args.connect_timeout * 3)
        prod_assign = [(p, exchange, routes[p][0]) for p in range(args.producers)]
        producers = [Worker(r.ctx, "producer", producer.run, uri, g, args)
                     for g in split(prod_assign, min(args.producers, cpus))] if args.producers else []
        r.workers += producers
        r.wait_ready(producers, args.connect_timeout * 3)
        setup_s = time.monotonic() - t_start
        t0 = r.t0 = time.monotonic_ns() + 20_000_000
        end_ns = r.end_ns = t0 + int(args.time * 1e9) if args.time else None
        for w in consumers:
            w.send(("go", t0))
        for w in producers:
            w.send(("go", t0, end_ns))
        result = _drive(r, args, consumers, producers, routes, end_ns)
        result["setup_s"] = round(setup_s, 3)
    except KeyboardInterrupt:
        for w in r.workers:
            w.send(("stop",))
        r.stop_workers()
        if declared and not args.keep:
            cleanup(uri, args, ctl, exchange, queues, count=False)
        print("leveret perf: interrupted", file=sys.stderr)
        return 130
    except PerfError as e:
        for w in r.workers:
            w.send(("stop",))
        r.stop_workers()
        if declared:
            cleanup(uri, args, ctl, exchange, queues, count=False)
        raise e
    finally:
        signal.signal(signal.SIGINT, old)
    r.stop_workers()
    left = cleanup(uri, args, ctl, exchange, queues)
    result["left_in_queues"] = left
    result = {"tool": "leveret perf", "mode": "throughput", "broker": broker, "uri": uri.masked(),
              "exchange": exchange, "queues": queues, **_params(args), **result}
    ok = not result["errors"] and not result["lost"] and not result["duplicated"] and not result["unexpected"]
    result["ok"] = ok
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print_summary(result)
    return 0 if ok else 1


def _params(args) -> dict:
    return {"params": {
        "producers": args.producers, "consumers": args.consumers, "size": args.size, "time": args.time,
        "pmessages": args.pmessages, "rate": args.rate, "confirm": args.confirm, "autoack": args.autoack,
        "multi_ack": args.multi_ack, "qos": args.qos, "persistent": args.persistent, "durable": args.durable,
        "queues": args.queues, "exchange_type": args.exchange_type, "queue_args": args.queue_args or None,
    }}


def _drive(r: Run, args, consumers, producers, routes, end_ns) -> dict:
    """Run, drain, collect; return the result fields."""
    stopped = False

    def stop_producers():
        nonlocal stopped
        if not stopped:
            stopped = True
            for w in producers:
                w.send(("stop",))

    # publish phase
    while True:
        r.pump(0.05)
        r.print_seconds()
        if r.interrupted or r.errors:
            stop_producers()
        if producers:
            if all(w.final is not None or w.ready is None for w in producers):
                break
        elif r.interrupted or r.errors or (end_ns is not None and time.monotonic_ns() >= end_ns) \
                or not consumers:
            break
    publish_end = time.monotonic_ns()
    pubs = [p for w in producers if w.final for p in w.final["pubs"]]
    sent_by = {p["pid"]: p["sent"] for p in pubs}
    expected = sum(sent_by.get(pid, 0) * len(routes[pid][1]) for pid in range(args.producers))

    # drain phase
    drain_start = time.monotonic_ns()
    if consumers:
        last_received = -1
        last_progress = drain_start
        while not r.errors and r.interrupted < 1:
            received = sum(s["received"] for s in r.seconds.values())
            now = time.monotonic_ns()
            if producers and received >= expected:
                break
            if not producers and (stopped or end_ns is None or now >= end_ns):
                break
            if received != last_received:
                last_received = received
                last_progress = now
            if now - last_progress > args.drain_idle * 1e9 and producers:
                break
            if now - drain_start > args.drain_timeout * 1e9:
                r.errors.append(f"consumers still behind after --drain-timeout {args.drain_timeout:g} s")
                break
            r.pump(0.05)
            r.print_seconds()
        for w in consumers:
            w.send(("stop",))
        r.wait_finals(consumers, 15.0)
    drain_s = (time.monotonic_ns() - drain_start) / 1e9
    r.print_seconds(final=True)
    return account(r, args, consumers, pubs, routes, publish_end, drain_s)


def account(r: Run, args, consumers, pubs, routes, publish_end, drain_s) -> dict:
    t0 = r.t0
    recs = [c for w in consumers if w.final for c in w.final["recs"]]
    sent = sum(p["sent"] for p in pubs)
    confirmed = sum(p["confirmed"] for p in pubs)
    nacked = sum(p["nacked"] for p in pubs)
    returned = sum(p["returned"] for p in pubs)
    received = sum(c["received"] for c in recs)
    redelivered = sum(c["redelivered"] for c in recs)
    last_send = max([p["last_send_ns"] for p in pubs] or [0])
    last_confirm = max([p["last_confirm_ns"] for p in pubs] or [0])
    last_recv = max([c["last_ns"] for c in recs] or [0])
    # the publishing window: until the last batch went out, or the --time window
    stop_ns = max(last_send, t0) if pubs else publish_end
    if r.end_ns is not None and not args.pmessages:
        stop_ns = max(stop_ns, min(r.end_ns, publish_end))
    publish_s = (stop_ns - t0) / 1e9

    def rate(n, end_ns):
        span = (end_ns - t0) / 1e9
        return round(n / span, 1) if n and span > 0 else 0.0

    lost = duplicated = unexpected = unconfirmed_missing = None
    note = None
    if recs and pubs:
        if args.size >= 16:
            lost = duplicated = unexpected = unconfirmed_missing = 0
            bypid = {p["pid"]: p for p in pubs}
            for qidx in range(args.queues):
                qrecs = [c for c in recs if c["queue"] == qidx]
                stamped = sum(c["stamped"] for c in qrecs)
                unexpected += sum(c["bad"] for c in qrecs)
                distinct = 0
                for pid in range(args.producers):
                    union = stats.union_nonzero([c["maps"][pid] for c in qrecs])
                    got = stats.nonzero(union)
                    distinct += got
                    p = bypid.get(pid)
                    if p is None or qidx not in routes[pid][1]:
                        unexpected += got
                        continue
                    n_sent, n_prod = p["sent"], p["produced"]
                    missing = n_sent - stats.nonzero(union, 0, n_sent)
                    unexpected += stats.nonzero(union, n_prod)
                    if not p["close_ok"] and p["unconfirmed"] is None:
                        # the broker never acknowledged the close: it may not have read these at all
                        unconfirmed_missing += missing
                        continue
                    if p["unconfirmed"] is not None:
                        miss_unconf = sum(1 for s in p["unconfirmed"] if s < n_sent and (s >= len(union) or not union[s]))
                        unconfirmed_missing += miss_unconf
                        missing -= miss_unconf
                    lost += missing
                duplicated += stamped - distinct
        else:
            note = "bodies under 16 bytes carry no stamp: only counts are compared, no latency"
            expected = sum(p["sent"] * len(routes[p["pid"]][1]) for p in pubs)
            lost = max(0, expected - received)
            duplicated = max(0, received - expected)
            unexpected = 0
    blocked_count = sum(p["blocked_count"] for p in pubs)
    blocked_s = round(sum(p["blocked_ns"] for p in pubs) / 1e9, 3)
    reasons = sorted({x for p in pubs for x in p["blocked_reasons"]})
    errors = list(dict.fromkeys(r.errors))
    if lost:
        errors.append(f"{lost} message(s) lost")
    if duplicated:
        errors.append(f"{duplicated} message(s) duplicated")
    if unexpected:
        errors.append(f"{unexpected} unexpected message(s) (misrouted or never sent)")
    pcpu = sum(w.final.get("cpu_s", 0) for w in r.workers if w.final and w.kind == "producer")
    ccpu = sum(w.final.get("cpu_s", 0) for w in r.workers if w.final and w.kind == "consumer")
    wall = (time.monotonic_ns() - t0) / 1e9
    out = {
        "duration_s": round(publish_s, 3),
        "sent": sent, "sent_rate": round(sent / publish_s, 1) if publish_s else 0.0,
        "confirmed": confirmed if args.confirm else None,
        "confirm_rate": rate(confirmed, last_confirm) if args.confirm else None,
        "nacked": nacked if args.confirm else None,
        "returned": returned,
        "received": received, "received_rate": rate(received, last_recv),
        "lost": lost, "duplicated": duplicated, "redelivered": redelivered, "unexpected": unexpected,
        "unconfirmed_missing": unconfirmed_missing,
        "latency_ms": stats.percentiles(r.total_hist) if args.size >= 16 else None,
        "drain_s": round(drain_s, 3),
        "blocked_count": blocked_count, "blocked_s": blocked_s, "blocked_reasons": reasons,
        "client_cpu_s": {"producers": round(pcpu, 3), "consumers": round(ccpu, 3)},
        "client_cores": round((pcpu + ccpu) / wall, 3) if wall > 0 else None,
        "errors": errors,
    }
    if note:
        out["note"] = note
    return out


def print_summary(res: dict) -> None:
    p = res["params"]
    print(f"summary: {res['duration_s']:.2f} s publishing, {p['producers']} producer(s), "
          f"{p['consumers']} consumer(s), {p['size']} B, setup {res['setup_s']:.2f} s, drain {res['drain_s']:.2f} s")
    print(f"  sent        {res['sent']:>12,}  ({res['sent_rate']:,.0f} msg/s)")
    if res["confirmed"] is not None:
        print(f"  confirmed   {res['confirmed']:>12,}  ({res['confirm_rate']:,.0f} msg/s), nacked {res['nacked']:,}")
    print(f"  received    {res['received']:>12,}  ({res['received_rate']:,.0f} msg/s)")
    fmt = (lambda v: "-" if v is None else f"{v:,}")
    print(f"  lost {fmt(res['lost'])}  duplicated {fmt(res['duplicated'])}  redelivered {fmt(res['redelivered'])}"
          f"  unexpected {fmt(res['unexpected'])}  left in queues {fmt(res['left_in_queues'])}"
          + (f"  unconfirmed-and-missing {res['unconfirmed_missing']:,}" if res["unconfirmed_missing"] else ""))
    lat = res["latency_ms"]
    if lat:
        print("  latency ms  " + "  ".join(f"{k} {v:.3f}" for k, v in lat.items()))
    if res.get("note"):
        print(f"  note: {res['note']}")
    cpu = res["client_cpu_s"]
    print(f"  client cpu  producers {cpu['producers']:.2f} s  consumers {cpu['consumers']:.2f} s  "
          f"({res['client_cores']:.2f} cores on average)")
    if res["blocked_count"]:
        print(f"  blocked {res['blocked_count']} time(s), {res['blocked_s']:.2f} s in total "
              f"({', '.join(res['blocked_reasons'])})")
    if res["errors"]:
        print("  FAILED: " + "; ".join(res["errors"]))
    else:
        print("  OK")


# -------------------------------------------------------------------- churn
def run_churn(args, uri) -> int:
    from . import churn
    r = Run(args, uri)
    probe = Connection(uri, args.connect_timeout)      # a clean error if we cannot connect at all
    broker = probe.server_name()
    probe.close()
    r.say(f"leveret perf: connection churn against {broker} at {uri.masked()}, {args.producers} client(s)")
    old = signal.signal(signal.SIGINT, r.on_sigint)
    try:
        clients = [Worker(r.ctx, "churn", churn.run, uri, args) for _ in range(args.producers)]
        r.workers += clients
        r.wait_ready(clients, 10.0)
        t0 = r.t0 = time.monotonic_ns() + 20_000_000
        end_ns = t0 + int(args.time * 1e9) if args.time else None
        for w in clients:
            w.send(("go", t0, end_ns))
        stopped = False
        while not all(w.final is not None or w.ready is None for w in clients):
            r.pump(0.05)
            r.print_seconds()
            if (r.interrupted or r.errors) and not stopped:
                stopped = True
                for w in clients:
                    w.send(("stop",))
        r.print_seconds(final=True)
    except KeyboardInterrupt:
        for w in r.workers:
            w.send(("stop",))
        r.stop_workers()
        print("leveret perf: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, old)
    r.stop_workers()
    finals = [w.final for w in clients if w.final]
    count = sum(f["connections"] for f in finals)
    last = max([f["last_ns"] for f in finals] or [0])
    span = (last - r.t0) / 1e9 if last > r.t0 else 0
    errors = list(dict.fromkeys(r.errors))
    res = {"tool": "leveret perf", "mode": "churn", "broker": broker, "uri": uri.masked(),
           "clients": args.producers, "duration_s": round(span, 3), "connections": count,
           "conn_rate": round(count / span, 1) if span else 0.0,
           "latency_ms": stats.percentiles(r.total_hist), "errors": errors, "ok": not errors and count > 0}
    if args.json:
        print(json.dumps(res), flush=True)
    else:
        print(f"summary: {res['connections']:,} connections in {span:.2f} s ({res['conn_rate']:,.0f}/s), "
              f"{args.producers} client(s)")
        if res["latency_ms"]:
            print("  open+close latency ms  " + "  ".join(f"{k} {v:.3f}" for k, v in res["latency_ms"].items()))
        print("  FAILED: " + "; ".join(errors) if errors else "  OK")
    return 0 if res["ok"] else 1


# --------------------------------------------------------------------- main
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        validate(args)
        uri = parse_uri(args.uri)
    except (UsageError, PerfError) as e:
        print(f"leveret perf: {e}", file=sys.stderr)
        return 2
    try:
        if args.churn:
            return run_churn(args, uri)
        return run_throughput(args, uri)
    except PerfError as e:
        print(f"leveret perf: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("leveret perf: interrupted", file=sys.stderr)
        return 130
