#!/usr/bin/env python3
"""Crash test for Leveret's durable store: SIGKILL the broker again and again under load.

What it proves
--------------
The durable store promises that a *publisher confirm* is sent only once the
message is on disk. This script holds the broker to that promise. It starts
``python -m leveret serve`` on a data directory, runs publishers and consumers
against it (asyncio + aiormq, reconnecting after every restart), kills the
broker with SIGKILL at a random moment (``--min-run`` .. ``--max-run`` seconds
after it accepts connections), restarts it on the same data directory and
port, and repeats. Finally it stops publishing, drains every queue, stops
the broker with SIGTERM and checks the ledger it kept of every message:

* LOST == 0: every message the broker confirmed was acked by a consumer at
  some point or delivered in the final drain;
* CORRUPT == 0: every delivered body (and its ``sha256`` header) is exactly
  what was published -- the body is deterministic PRNG bytes seeded by the
  message id, so each delivery is verified on its own;
* PHANTOM == 0: no id that was never published is ever delivered;
* RETURNED == 0 and the definitions check: the durable queues, the durable
  exchange and its bindings survive every crash (messages are published with
  ``mandatory`` so a lost binding shows up as a basic.return, not as loss);
* ACKED STAYS ACKED: a consumer's ack that the broker provably read (a
  basic.qos round trip on the same channel came back after it; frames on a
  channel are processed in order) is written before the end of that event-loop
  turn, so a kill cannot undo it (docs/storage.md: "from this point a kill -9
  loses nothing"): such a message must never be delivered again. Acks still
  in flight at a kill may be lost; those redeliveries are only counted
  (duplicates);
* the final drain empties the queues, the broker exits 0 on SIGTERM, and after
  that clean stop a restart finds the queues empty (no acked message comes
  back).

Each run between two kills is one of these *phases* (chosen at random), so
the kill lands in different store states:

``steady``   publishers and consumers (prefetch, ack every message);
``backlog``  publishers only: queues grow past the in-memory window, page to
             disk and roll over segments; recovery reads a head and a tail;
``hoard``    steady plus a "hoarder" consumer that never acks (prefetch N), so
             at the kill there are delivered-but-unacked messages: after the
             restart they must come back, and should carry redelivered=True
             (counted, not failed). Note: after a crash Leveret, like RabbitMQ,
             marks *every* recovered message redelivered, so the report's
             "on first sight" redelivered counts are expected, not a bug;
``drain``    consumers only: many acks, segments deleted;
``recovery`` the broker is killed while it is still starting (recovering).

Message bodies are 16 B .. 64 KiB (log-uniform), sometimes 200-400 KiB or
1-1.6 MiB, so records straddle frame, read-chunk (1 MiB) and segment (8 MiB)
boundaries; a few are empty.

Publisher outcomes: CONFIRMED (basic.ack), NACKED (basic.nack), RETURNED
(basic.return: unroutable) or IN-DOUBT (the connection died before the
confirm: the message may or may not have been stored; the report says how
many later appeared). A consumer records an id as acked *before* it sends the
ack, so an ack lost in a kill shows up as a duplicate delivery (allowed,
counted), never as a false LOST.

How to run
----------
Short (what ``tests/test_crash.py`` runs)::

    .venv/bin/python tools/crashtest.py --kills 6 --min-run 0.2 --max-run 0.8

The long version (a few minutes)::

    .venv/bin/python tools/crashtest.py --kills 50 --seed 1 --report /tmp/crash.json

Add ``--snapshots 3 --evidence /tmp/crash-evidence`` to keep copies of the
data directory as it was right after the last three kills; on a failure the
data directory, the broker logs, the snapshots and the report are copied to
the evidence directory and every lost id is located in the snapshots.

Exit status: 0 if every check passed, 1 if one failed, 2 on a harness error.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXCHANGE = "crashtest.direct"
RECOVERED_RE = re.compile(r"recovered (\d+) durable queues with (\d+) messages in ([\d.]+) s"
                          r"(?: \((\d+) torn bytes cut away\))?")

CONFIRMED, NACKED, RETURNED, IN_DOUBT, SENT = "confirmed", "nacked", "returned", "in-doubt", "sent"
ACKS_CHECK = "acked stays acked (none back after the broker read its ack)"


# ---------------------------------------------------------------- message ids and bodies

def make_id(run: str, pub: int, seq: int, size: int) -> str:
    return f"{run}.{pub}.{seq}.{size}"


def body_for(mid: str) -> bytes:
    """The body of message ``mid``: PRNG bytes seeded by the id (its last field is the size)."""
    size = int(mid.rsplit(".", 1)[1])
    return random.Random(mid).randbytes(size)


def pick_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.01:
        return 0
    if r < 0.03:
        return rng.randint(1_000_000, 1_600_000)     # larger than the 1 MiB read chunk
    if r < 0.09:
        return rng.randint(200_000, 400_000)         # many frames; straddles chunks/segments
    return int(math.exp(rng.uniform(math.log(16), math.log(65536))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- what happened to every message

class Pub:
    __slots__ = ("inc_sent", "inc_settled", "queue", "size", "state")

    def __init__(self, queue: str, size: int, inc: int):
        self.queue = queue
        self.size = size
        self.state = SENT
        self.inc_sent = inc
        self.inc_settled = None


class Ledger:
    def __init__(self):
        self.pubs: dict[str, Pub] = {}      # every id whose publish was attempted
        self.seen: set[str] = set()         # delivered at least once
        self.acked: set[str] = set()        # a consumer sent (or was about to send) basic.ack
        self.final_seen: set[str] = set()   # delivered in the final drain
        self.hoarded: set[str] = set()      # held unacked by the hoarder when its connection died
        self.deliveries = 0
        self.redelivered_flag = 0           # deliveries with redelivered=True
        self.redeliveries = 0               # deliveries of an id delivered before
        self.redeliveries_flagged = 0       # ... that carried redelivered=True
        self.duplicates = 0                 # deliveries of an id already acked
        self.ack_processed: dict[str, int] = {}  # acked, and a later basic.qos round trip on the channel
        #                                          proved the broker had read the ack: id -> incarnation
        self.dup_after_processed_ack: list[dict] = []
        self.flag_on_first_sight = 0        # redelivered=True on an id never delivered to us
        self.flag_never_delivered = []      # ... though no consumer existed since its publish: after a
        #                                     crash recovery marks *every* message redelivered (as RabbitMQ)
        self.hoard_back = 0                 # hoarded ids that came back
        self.hoard_back_flagged = 0         # ... with redelivered=True
        self.hoard_total = 0
        self.corrupt: list[dict] = []
        self.phantoms: list[str] = []
        self.last_delivery = 0.0
        self.backlog_bytes = 0              # confirmed, not yet delivered: in the queues (backlog guard)

    def count(self, state: str) -> int:
        return sum(1 for p in self.pubs.values() if p.state == state)


class Incarnation:
    """One run of the broker process, from start to kill (or stop)."""

    def __init__(self, num: int, phase: str):
        self.num = num
        self.phase = phase
        self.ready = False      # accepting connections, definitions checked: workers may connect
        self.dead = False       # killed or stopping: workers wait for the next incarnation
        self.publish = phase in ("steady", "backlog", "hoard")
        self.consume = phase in ("steady", "hoard", "drain", "final")
        self.hoard = phase == "hoard"
        self.had_consumer = False   # some consumer (or the hoarder) was subscribed
        self.published = 0
        self.confirmed = 0


class Fatal(Exception):
    """A harness problem (the broker does not start, ...): exit status 2."""


# ---------------------------------------------------------------- the test

class CrashTest:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)             # phases and kill times
        self.hoard_rng = random.Random(f"{args.seed}.hoard")
        self.run_tag = f"{self.rng.getrandbits(32):08x}"
        self.queues = [f"crashtest.q{i}" for i in range(args.queues)]
        self.own_dir = args.data_dir is None
        self.data_dir = args.data_dir or tempfile.mkdtemp(prefix="leveret-crash-")
        os.makedirs(self.data_dir, exist_ok=True)
        if any(n != "crashtest-logs" for n in os.listdir(self.data_dir)):
            raise Fatal(f"data dir {self.data_dir} is not empty (the ledger must start from nothing)")
        self.log_dir = os.path.join(self.data_dir, "crashtest-logs")   # the store ignores it
        os.makedirs(self.log_dir, exist_ok=True)
        self.snap_dir = os.path.join(tempfile.gettempdir(), f"leveret-crash-snaps-{self.run_tag}")
        self.port = args.port or free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.led = Ledger()
        self.inc = Incarnation(-1, "none")
        self.incs: list[Incarnation] = []     # index = incarnation number
        self.proc: subprocess.Popen | None = None
        self.starts: list[dict] = []          # one per broker start
        self.cycles: list[dict] = []
        self.kills = 0
        self.kills_in_recovery = 0
        self.definition_failures: list[str] = []
        self.stop_workers = False
        self.consumers_active = 0
        self.worker_errors: list[str] = []
        self.snapshots: list[str] = []

    # ------------------------------------------------------------ broker process

    async def start_broker(self, kill_after: float | None = None) -> bool:
        """Start the broker; wait until it accepts connections. With ``kill_after``, SIGKILL it
        that many seconds after the start if it is not ready by then (returns False)."""
        n = len(self.starts)
        path = os.path.join(self.log_dir, f"start-{n:03d}.log")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.join(REPO, "src") + os.pathsep + env.get("PYTHONPATH", "")
        with open(path, "wb") as logf:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "leveret", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", self.data_dir],
                stdout=logf, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        rec = {"n": n, "log": path, "ready_s": None, "killed_in_recovery": False}
        self.starts.append(rec)
        deadline = t0 + self.args.start_timeout
        while True:
            now = time.monotonic()
            if kill_after is not None and now - t0 >= kill_after:
                await self.kill_broker()
                rec["killed_in_recovery"] = True
                rec["killed_at_s"] = round(now - t0, 3)
                return False
            if self.proc.poll() is not None:
                raise Fatal(f"broker exited with {self.proc.returncode} during start; see {path}")
            if now > deadline:
                raise Fatal(f"broker did not accept connections within {self.args.start_timeout}s; see {path}")
            try:
                _r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 0.5)
                w.close()
                rec["ready_s"] = round(time.monotonic() - t0, 4)
                return True
            except (OSError, TimeoutError):
                await asyncio.sleep(0.01)

    async def kill_broker(self) -> None:
        self.inc.dead = True
        self.proc.send_signal(signal.SIGKILL)
        while self.proc.poll() is None:
            await asyncio.sleep(0.005)
        self.kills += 1

    async def term_broker(self) -> int:
        self.inc.dead = True
        self.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        while self.proc.poll() is None:
            if time.monotonic() - t0 > 30:
                self.proc.kill()
                self.proc.wait()
                raise Fatal("broker did not stop within 30 s of SIGTERM")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def snapshot(self) -> None:
        """Copy the data directory as the kill left it (``--snapshots``)."""
        if not self.args.snapshots:
            return
        dst = os.path.join(self.snap_dir, f"kill-{self.kills:03d}")
        shutil.copytree(self.data_dir, dst, ignore=shutil.ignore_patterns("crashtest-logs", ".lock"))
        self.snapshots.append(dst)
        while len(self.snapshots) > self.args.snapshots:
            shutil.rmtree(self.snapshots.pop(0), ignore_errors=True)

    def inject_loss(self) -> list[str]:
        """Self-test of the checker (``--inject-loss``): delete every message segment, as a store
        that loses confirmed messages would. The run must then FAIL with LOST > 0."""
        gone = []
        for dirpath, _dirs, files in os.walk(os.path.join(self.data_dir, "queues")):
            for fn in files:
                if fn.endswith(".msgs"):
                    os.unlink(os.path.join(dirpath, fn))
                    gone.append(fn)
        return gone

    # ------------------------------------------------------------ AMQP helpers

    async def connect(self) -> aiormq.Connection:
        return await asyncio.wait_for(aiormq.connect(self.url), 5)

    @staticmethod
    async def close_quietly(conn) -> None:
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), 2)
        except BaseException as e:   # the broker may be dead; only our own cancellation counts
            if isinstance(e, asyncio.CancelledError) and asyncio.current_task().cancelling():
                raise

    async def declare_definitions(self) -> None:
        conn = await self.connect()
        try:
            ch = await conn.channel()
            await ch.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
            for q in self.queues:
                await ch.queue_declare(q, durable=True)
                await ch.queue_bind(q, EXCHANGE, routing_key=q)
        finally:
            await self.close_quietly(conn)

    async def check_definitions(self) -> dict[str, int]:
        """Passive declares: the queues and the exchange survived. Returns ready message counts."""
        counts = {}
        conn = await self.connect()
        try:
            for q in self.queues:
                ch = await conn.channel()
                try:
                    ok = await ch.queue_declare(q, passive=True)
                    counts[q] = ok.message_count
                except aiormq.exceptions.ChannelNotFoundEntity:
                    self.definition_failures.append(f"incarnation {self.inc.num}: queue {q} missing")
            ch = await conn.channel()
            try:
                await ch.exchange_declare(EXCHANGE, exchange_type="direct", passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                self.definition_failures.append(f"incarnation {self.inc.num}: exchange {EXCHANGE} missing")
        finally:
            await self.close_quietly(conn)
        return counts

    async def queue_counts(self) -> dict[str, int]:
        conn = await self.connect()
        try:
            ch = await conn.channel()
            return {q: (await ch.queue_declare(q, passive=True)).message_count for q in self.queues}
        finally:
            await self.close_quietly(conn)

    # ------------------------------------------------------------ workers

    async def wait_ready(self) -> Incarnation | None:
        while not self.stop_workers:
            inc = self.inc
            if inc.ready and not inc.dead:
                return inc
            await asyncio.sleep(0.01)
        return None

    async def wait_dead(self, inc: Incarnation) -> None:
        while not inc.dead and not self.stop_workers:
            await asyncio.sleep(0.01)

    async def worker(self, name: str, session, want) -> None:
        """Run ``session(inc)`` against every incarnation in which ``want(inc)`` holds."""
        while True:
            inc = await self.wait_ready()
            if inc is None:
                return
            if not want(inc):
                await self.wait_dead(inc)
                continue
            try:
                await session(inc)
            except (Exception, asyncio.CancelledError) as e:
                if isinstance(e, asyncio.CancelledError) and asyncio.current_task().cancelling():
                    raise
                # ``dead`` is set before the SIGKILL, so anything the kill causes lands here as
                # expected; while the broker is up a failing session is a broker error (a channel
                # or connection closed on us) or a harness bug: both fail the run
                if not (inc.dead or self.stop_workers):
                    self.worker_errors.append(f"{name} (incarnation {inc.num}): {traceback.format_exc()}")
            if not inc.dead and not self.stop_workers:
                await asyncio.sleep(0.05)          # the session failed but the broker lives: retry

    async def publisher_session(self, idx: int, rng: random.Random, inc: Incarnation) -> None:
        conn = await self.connect()
        pending: set[asyncio.Task] = set()
        try:
            ch = await conn.channel(publisher_confirms=True)
            for q in self.queues:
                await ch.queue_declare(q, durable=True)
            closing = conn.closing
            while inc.publish and not inc.dead and not closing.done() and not self.stop_workers:
                if len(pending) >= self.args.window:
                    await asyncio.wait(pending | {closing}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if self.led.backlog_bytes > self.args.max_backlog_mb * 1_000_000:
                    await asyncio.sleep(0.05)       # do not let the queues grow without bound
                    continue
                seq = self.seq[idx]
                self.seq[idx] += 1
                size = pick_size(rng)
                mid = make_id(self.run_tag, idx, seq, size)
                q = rng.choice(self.queues)
                ex = EXCHANGE if rng.random() < 0.5 else ""
                t = asyncio.create_task(self.publish_one(ch, inc, mid, q, ex, size))
                pending.add(t)
                t.add_done_callback(pending.discard)
                await asyncio.sleep(0)
            if not closing.done():
                closing.cancel()
            if pending:
                await asyncio.wait(pending, timeout=30)
        finally:
            await self.close_quietly(conn)
            if pending:
                await asyncio.wait(pending, timeout=10)

    async def publish_one(self, ch, inc: Incarnation, mid: str, queue: str, exchange: str, size: int) -> None:
        body = body_for(mid)
        pub = self.led.pubs[mid] = Pub(queue, size, inc.num)
        inc.published += 1
        props = spec.Basic.Properties(delivery_mode=2, message_id=mid,
                                      headers={"sha256": hashlib.sha256(body).hexdigest()})
        try:
            res = await ch.basic_publish(body, exchange=exchange, routing_key=queue, properties=props,
                                         mandatory=True)
        except aiormq.exceptions.PublishError:
            pub.state = RETURNED
        except aiormq.exceptions.DeliveryError:
            pub.state = NACKED
        except (Exception, asyncio.CancelledError):
            pub.state = IN_DOUBT          # the connection died before the confirm
        else:
            if isinstance(res, spec.Basic.Ack):
                pub.state = CONFIRMED
                inc.confirmed += 1
                if mid not in self.led.seen:
                    self.led.backlog_bytes += size
            elif isinstance(res, spec.Basic.Nack):
                pub.state = NACKED
            elif isinstance(res, DeliveredMessage):
                pub.state = RETURNED
            else:
                pub.state = IN_DOUBT
        pub.inc_settled = inc.num

    async def consumer_session(self, idx: int, inc: Incarnation, hoarder: bool = False) -> None:
        conn = await self.connect()
        held: set[str] = set()              # the hoarder's unacked deliveries
        acks: list[str] = []                # ids whose basic.ack is queued, not yet proven processed
        active = False
        try:
            ch = await conn.channel()
            prefetch = self.hoard_rng.randint(5, 100) if hoarder else self.args.prefetch
            await ch.basic_qos(prefetch_count=prefetch)
            queues = [self.hoard_rng.choice(self.queues)] if hoarder else self.queues
            inc.had_consumer = True
            for q in queues:
                await ch.basic_consume(q, lambda m: self.on_message(m, inc, held if hoarder else None, acks))
            if not hoarder:
                self.consumers_active += 1
                active = True
            closing = conn.closing
            while not inc.dead and not closing.done() and not self.stop_workers:
                await asyncio.wait({closing}, timeout=0.1)
                if acks and not closing.done():
                    # a round trip after the acks: once qos-ok is back the broker has read them,
                    # so after a kill these ids should not come back (counted, see the report)
                    batch = acks[:]
                    del acks[:]
                    await ch.basic_qos(prefetch_count=prefetch)
                    self.led.ack_processed.update(dict.fromkeys(batch, inc.num))
            if not closing.done():
                closing.cancel()
        finally:
            if active:
                self.consumers_active -= 1
            if held:
                self.led.hoarded.update(held)
                self.led.hoard_total += len(held)
            await self.close_quietly(conn)

    async def on_message(self, m: DeliveredMessage, inc: Incarnation, held: set | None, acks: list) -> None:
        led = self.led
        props = m.header.properties
        mid = props.message_id
        redelivered = bool(m.delivery.redelivered)
        led.deliveries += 1
        led.last_delivery = time.monotonic()
        problem = None
        if not isinstance(mid, str) or mid.count(".") != 3:
            problem = f"bad message_id {mid!r}"
        elif mid not in led.pubs:
            led.phantoms.append(mid)
        else:
            body = bytes(m.body)
            sha = (props.headers or {}).get("sha256")
            if sha != hashlib.sha256(body).hexdigest():
                problem = "sha256 header does not match the body"
            elif body != body_for(mid):
                problem = "body differs from the published one"
        if problem:
            led.corrupt.append({"id": mid, "problem": problem, "len": len(m.body), "incarnation": inc.num,
                                "queue": m.routing_key})
        if redelivered:
            led.redelivered_flag += 1
        if mid in led.seen:
            led.redeliveries += 1
            led.redeliveries_flagged += redelivered
            if mid in led.acked:
                led.duplicates += 1
            if mid in led.ack_processed:
                led.dup_after_processed_ack.append(
                    {"id": mid, "ack_read_in": led.ack_processed.pop(mid), "back_in": inc.num})
        else:
            led.flag_on_first_sight += redelivered
            pub = led.pubs.get(mid)
            if redelivered and pub is not None and not any(
                    i.had_consumer for i in self.incs[pub.inc_sent:inc.num]):
                led.flag_never_delivered.append(mid)
            led.seen.add(mid)
            pub = led.pubs.get(mid)
            if pub is not None and pub.state == CONFIRMED:
                led.backlog_bytes -= pub.size
        if mid in led.hoarded:
            led.hoarded.discard(mid)
            led.hoard_back += 1
            led.hoard_back_flagged += redelivered
        if inc.phase == "final":
            led.final_seen.add(mid)
        if held is not None:
            held.add(mid)                   # the hoarder never acks
            return
        led.acked.add(mid)                  # recorded before the ack is sent: a lost ack = duplicate
        try:
            await m.channel.basic_ack(m.delivery.delivery_tag)
        except (aiormq.exceptions.AMQPError, ConnectionError, aiormq.exceptions.ChannelInvalidStateError):
            return
        acks.append(mid)

    # ------------------------------------------------------------ the run

    def choose_phase(self, k: int) -> str:
        if k == 0:                          # there is always traffic before the first kill
            return "backlog" if self.args.inject_loss else "steady"
        r = self.rng.random()
        backlog_ok = self.led.backlog_bytes < self.args.max_backlog_mb * 500_000
        if r < 0.10 and self.starts and self.starts[-1]["ready_s"]:
            return "recovery"
        if r < 0.45:
            return "steady"
        if r < 0.65:
            return "backlog" if backlog_ok else "drain"
        if r < 0.88:
            return "hoard"
        return "drain"

    async def main(self) -> dict:
        a = self.args
        self.seq = [0] * a.publishers
        workers = []
        for i in range(a.publishers):
            rng = random.Random(f"{a.seed}.pub{i}")
            workers.append(self.worker(f"publisher{i}", lambda inc, i=i, rng=rng: self.publisher_session(i, rng, inc),
                                       lambda inc: inc.publish))
        for i in range(a.consumers):
            workers.append(self.worker(f"consumer{i}", lambda inc, i=i: self.consumer_session(i, inc),
                                       lambda inc: inc.consume))
        workers.append(self.worker("hoarder", lambda inc: self.consumer_session(-1, inc, hoarder=True),
                                   lambda inc: inc.hoard))
        tasks = [asyncio.create_task(w) for w in workers]
        try:
            t_start = time.monotonic()
            for k in range(a.kills):
                phase = self.choose_phase(k)
                inc = self.inc = Incarnation(k, phase)
                self.incs.append(inc)
                cyc = {"n": k, "phase": phase}
                self.cycles.append(cyc)
                if phase == "recovery":
                    # aim at the previous start's recovery window (just before it listened)
                    prev = self.starts[-1]
                    window = (self.recovery_seconds(prev) or 0.0) + 0.03
                    kill_after = max(0.05, prev["ready_s"] - self.rng.uniform(0.0, 1.5) * window)
                    ready = await self.start_broker(kill_after=kill_after)
                    if ready:               # it was quicker than that: kill it before any client
                        await self.kill_broker()
                    else:
                        self.kills_in_recovery += 1
                    cyc.update(kill_after_s=round(kill_after, 3), killed_before_ready=not ready,
                               recovery_finished=self.recovery_seconds(self.starts[-1]) is not None)
                    self.snapshot()
                    if a.verbose:
                        print(f"kill {self.kills:3d}/{a.kills} phase=recovery kill_after={kill_after:.3f}s "
                              f"before_ready={not ready}", file=sys.stderr)
                    continue
                await self.start_broker()
                if k == 0:
                    await self.declare_definitions()
                else:
                    cyc["ready_counts"] = await self.check_definitions()
                inc.ready = True
                run = self.rng.uniform(a.min_run, a.max_run)
                await asyncio.sleep(run)
                await self.kill_broker()
                self.snapshot()
                if k == 0 and a.inject_loss:
                    cyc["injected"] = self.inject_loss()
                cyc.update(run_s=round(run, 3), published=inc.published, confirmed=inc.confirmed)
                if a.verbose:
                    print(f"kill {self.kills:3d}/{a.kills} phase={phase:8s} published={inc.published:5d} "
                          f"confirmed={inc.confirmed:5d} backlog={self.led.backlog_bytes / 1e6:.1f} MB",
                          file=sys.stderr)
            # the final incarnation: no publishing, drain everything
            inc = self.inc = Incarnation(a.kills, "final")
            self.incs.append(inc)
            await self.start_broker()
            await self.check_definitions()
            inc.ready = True
            drained, final_counts = await self.drain()
            self.stop_workers = True
            await asyncio.wait(tasks, timeout=30)
            rc = await self.term_broker()
            # after a clean stop, nothing that was acked may come back
            self.inc = Incarnation(a.kills + 1, "verify")
            await self.start_broker()
            resurrected = await self.queue_counts()
            rc2 = await self.term_broker()
            elapsed = time.monotonic() - t_start
        finally:
            self.stop_workers = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.report(drained, final_counts, rc, rc2, resurrected, elapsed)

    async def drain(self) -> tuple[bool, dict]:
        """Consume until every queue reports 0 messages and nothing arrived for ~1 s."""
        deadline = time.monotonic() + self.args.drain_timeout
        counts: dict = {}
        while time.monotonic() < deadline:
            counts = await self.queue_counts()
            quiet = time.monotonic() - self.led.last_delivery
            if (not any(counts.values()) and quiet > 1.0
                    and self.consumers_active == self.args.consumers):
                return True, counts
            await asyncio.sleep(0.2)
        return False, counts

    # ------------------------------------------------------------ verdict

    def report(self, drained, final_counts, rc, rc2, resurrected, elapsed) -> dict:
        led = self.led
        confirmed = [m for m, p in led.pubs.items() if p.state == CONFIRMED]
        seen_ok = led.acked | led.final_seen
        lost = [m for m in confirmed if m not in seen_ok]
        in_doubt = [m for m, p in led.pubs.items() if p.state == IN_DOUBT]
        survived = sum(1 for m in in_doubt if m in led.seen)
        returned = led.count(RETURNED)
        # delivered at some point but neither acked nor drained: only unconfirmed messages may do that
        # (a confirmed one is in ``lost``), since the broker promised nothing about them
        seen_unacked = [m for m in led.seen if m not in seen_ok]
        restart = [s["ready_s"] for s in self.starts[1:] if s["ready_s"] is not None]
        recov = self.recovery_summary()
        checks = {
            "lost == 0": len(lost) == 0,
            "corrupt == 0": len(led.corrupt) == 0,
            "phantom == 0": len(led.phantoms) == 0,
            "returned == 0 (bindings survive)": returned == 0,
            "definitions survive every restart": not self.definition_failures,
            f"kills == {self.args.kills}": self.kills == self.args.kills,
            "confirmed > 0": len(confirmed) > 0,
            "final drain emptied the queues": drained,
            "SIGTERM exit status 0": rc == 0 and rc2 == 0,
            "nothing back after a clean restart": not any(resurrected.values()),
            ACKS_CHECK: not led.dup_after_processed_ack,
            "no client session failed while the broker was up": not self.worker_errors,
        }
        rep = {
            "ok": all(checks.values()),
            "checks": checks,
            "args": vars(self.args),
            "run_tag": self.run_tag,
            "data_dir": self.data_dir,
            "elapsed_s": round(elapsed, 1),
            "kills": self.kills,
            "kills_in_recovery": self.kills_in_recovery,
            "kills_in_recovery_before_recovered_line": sum(
                1 for c in self.cycles if c.get("killed_before_ready") and not c.get("recovery_finished")),
            "phases": {p: sum(1 for c in self.cycles if c["phase"] == p)
                       for p in ("steady", "backlog", "hoard", "drain", "recovery")},
            "published": len(led.pubs),
            "published_bytes": sum(p.size for p in led.pubs.values()),
            "confirmed": len(confirmed),
            "nacked": led.count(NACKED),
            "returned": returned,
            "in_doubt": len(in_doubt),
            "in_doubt_survived": survived,
            "in_doubt_vanished": len(in_doubt) - survived,
            "lost": len(lost),
            "lost_ids": [self.describe(m) for m in lost[:50]],
            "corrupt": len(led.corrupt),
            "corrupt_samples": led.corrupt[:20],
            "phantom": len(led.phantoms),
            "phantom_samples": led.phantoms[:20],
            "deliveries": led.deliveries,
            "distinct_delivered": len(led.seen),
            "delivered_in_final_drain": len(led.final_seen),
            "delivered_never_acked": len(seen_unacked),
            "duplicates": led.duplicates,
            "duplicates_after_processed_ack": len(led.dup_after_processed_ack),
            "duplicates_after_processed_ack_samples": [dict(self.describe(d["id"]), **d)
                                                       for d in led.dup_after_processed_ack[:10]],
            "redeliveries": led.redeliveries,
            "redeliveries_flagged": led.redeliveries_flagged,
            "redelivered_flag_total": led.redelivered_flag,
            "redelivered_flag_on_first_sight": led.flag_on_first_sight,
            "redelivered_flag_never_delivered": len(led.flag_never_delivered),
            "redelivered_flag_missing": led.redeliveries - led.redeliveries_flagged,
            "hoarded_unacked_at_kill": led.hoard_total,
            "hoarded_came_back": led.hoard_back,
            "hoarded_came_back_flagged": led.hoard_back_flagged,
            "hoarded_never_back": len(led.hoarded),
            "hoarded_never_back_confirmed": sum(1 for m in led.hoarded if led.pubs[m].state == CONFIRMED),
            "final_counts": final_counts,
            "resurrected_after_clean_restart": resurrected,
            "sigterm_exit": [rc, rc2],
            "first_start_s": self.starts[0]["ready_s"] if self.starts else None,
            "restart_s_max": max(restart) if restart else None,
            "restart_s_mean": round(statistics.mean(restart), 4) if restart else None,
            "recovery": recov,
            "definition_failures": self.definition_failures,
            "worker_errors": self.worker_errors[:5],
            "cycles": self.cycles,
            "log_dir": self.log_dir,
        }
        return rep

    def describe(self, mid: str) -> dict:
        p = self.led.pubs[mid]
        return {"id": mid, "queue": p.queue, "size": p.size, "state": p.state, "published_in": p.inc_sent,
                "confirmed_in": p.inc_settled, "phase": self.cycles[p.inc_sent]["phase"]
                if 0 <= p.inc_sent < len(self.cycles) else None,
                "delivered_ever": mid in self.led.seen}

    @staticmethod
    def recovery_seconds(start: dict) -> float | None:
        """The seconds of the "recovered ..." line in a start's log (None: no such line)."""
        try:
            with open(start["log"], errors="replace") as f:
                m = RECOVERED_RE.search(f.read())
        except OSError:
            return None
        return float(m[3]) if m else None

    def recovery_summary(self) -> dict:
        lines, errors, tracebacks = [], [], []
        for s in self.starts:
            try:
                with open(s["log"], errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            for m in RECOVERED_RE.finditer(text):
                lines.append((int(m[1]), int(m[2]), float(m[3]), int(m[4] or 0)))
            log_lines = text.splitlines()
            for i, ln in enumerate(log_lines):
                if " ERROR " in ln or " CRITICAL " in ln:
                    errors.append(f"start {s['n']}: {ln[:300]}")
                elif ln.startswith("Traceback"):
                    block = [ln]
                    for nxt in log_lines[i + 1:i + 40]:
                        if re.match(r"\d{4}-\d\d-\d\d ", nxt):     # the next log record
                            break
                        block.append(nxt)
                    tracebacks.append(f"start {s['n']}:\n" + "\n".join(block))
        out = {"lines": len(lines), "starts": len(self.starts), "broker_error_lines": len(errors),
               "broker_error_samples": errors[:10], "broker_tracebacks": len(tracebacks),
               "broker_traceback_samples": tracebacks[:3]}
        if lines:
            out.update(
                queues_max=max(x[0] for x in lines),
                messages_total=sum(x[1] for x in lines),
                messages_max=max(x[1] for x in lines),
                seconds_max=max(x[2] for x in lines),
                seconds_mean=round(statistics.mean(x[2] for x in lines), 4),
                torn_bytes_total=sum(x[3] for x in lines),
                starts_with_torn_bytes=sum(1 for x in lines if x[3]),
            )
        return out


# ---------------------------------------------------------------- output

def summary(rep: dict) -> str:
    r = rep["recovery"]
    lines = []
    add = lines.append
    add(f"Leveret crash test: {rep['kills']} kills ({rep['kills_in_recovery']} while starting, "
        f"{rep['kills_in_recovery_before_recovered_line']} of them before recovery finished) "
        f"in {rep['elapsed_s']} s, seed {rep['args']['seed']}, data dir {rep['data_dir']}")
    add("phases: " + ", ".join(f"{k} {v}" for k, v in rep["phases"].items()))
    add(f"published {rep['published']} ({rep['published_bytes'] / 1e6:.1f} MB): confirmed {rep['confirmed']}, "
        f"nacked {rep['nacked']}, returned {rep['returned']}, in-doubt {rep['in_doubt']} "
        f"(survived {rep['in_doubt_survived']}, vanished {rep['in_doubt_vanished']})")
    add(f"deliveries {rep['deliveries']} ({rep['distinct_delivered']} distinct, {rep['delivered_in_final_drain']} "
        f"in the final drain); duplicates (redelivered after ack) {rep['duplicates']}, of which after "
        f"an ack the broker had provably read {rep['duplicates_after_processed_ack']}")
    add(f"redeliveries {rep['redeliveries']}, flagged {rep['redeliveries_flagged']} "
        f"(missing flag {rep['redelivered_flag_missing']}); redelivered=True total {rep['redelivered_flag_total']}, "
        f"on first sight {rep['redelivered_flag_on_first_sight']} (never delivered before: "
        f"{rep['redelivered_flag_never_delivered']}; a crash marks all recovered messages redelivered)")
    add(f"hoarded (delivered, unacked at a kill) {rep['hoarded_unacked_at_kill']}: came back "
        f"{rep['hoarded_came_back']}, with redelivered=True {rep['hoarded_came_back_flagged']}, "
        f"never back {rep['hoarded_never_back']} (confirmed: {rep['hoarded_never_back_confirmed']}; "
        f"an unconfirmed message may be delivered and still not survive the kill)")
    add(f"LOST {rep['lost']}  CORRUPT {rep['corrupt']}  PHANTOM {rep['phantom']}")
    add(f"broker start: first {rep['first_start_s']} s; restarts max {rep['restart_s_max']} s, "
        f"mean {rep['restart_s_mean']} s")
    if r["lines"]:
        add(f"recovery log lines {r['lines']}/{r['starts']} starts: up to {r['queues_max']} queues, "
            f"{r['messages_total']} messages recovered in total (max {r['messages_max']} at once), "
            f"recovery max {r['seconds_max']} s mean {r['seconds_mean']} s, "
            f"torn bytes cut {r['torn_bytes_total']} in {r['starts_with_torn_bytes']} starts")
    else:
        add(f"recovery log lines 0/{r['starts']} starts")
    add(f"broker ERROR lines {r['broker_error_lines']}, tracebacks {r['broker_tracebacks']}")
    for e in r["broker_error_samples"]:
        lines.append(f"  broker: {e}")
    for tb in r["broker_traceback_samples"][:1]:
        lines.append("  broker " + tb.replace("\n", "\n    "))
    for d in rep["definition_failures"]:
        lines.append(f"  definitions: {d}")
    for m in rep["lost_ids"][:10]:
        lines.append(f"  lost: {m}")
    for c in rep["corrupt_samples"][:10]:
        lines.append(f"  corrupt: {c}")
    for d in rep["duplicates_after_processed_ack_samples"][:5]:
        lines.append(f"  back after its ack was read: {d}")
    for e in rep["worker_errors"]:
        lines.append(f"  session error: {e}")
    lines.append("checks:")
    for name, ok in rep["checks"].items():
        lines.append(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    lines.append("RESULT: " + ("PASS" if rep["ok"] else "FAIL"))
    return "\n".join(lines)


def locate(ids: list[str], roots: list[str]) -> dict:
    """Where each id's bytes appear in the given directories (file, offset): for a bug report."""
    found: dict = {m: [] for m in ids}
    needles = {m: m.encode() for m in ids}
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for fn in files:
                if not fn.endswith(".msgs"):
                    continue
                path = os.path.join(dirpath, fn)
                with open(path, "rb") as f:
                    data = f.read()
                for m, nb in needles.items():
                    i = data.find(nb)
                    if i >= 0:
                        found[m].append(f"{path}@{i}")
    return found


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=50, help="number of SIGKILLs (default 50)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--publishers", type=int, default=2)
    p.add_argument("--consumers", type=int, default=2)
    p.add_argument("--queues", type=int, default=2)
    p.add_argument("--data-dir", default=None, help="an empty or new directory (default: a temp dir)")
    p.add_argument("--min-run", type=float, default=0.3, help="min seconds from ready to kill (default 0.3)")
    p.add_argument("--max-run", type=float, default=2.0, help="max seconds from ready to kill (default 2.0)")
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    p.add_argument("--window", type=int, default=64, help="unconfirmed publishes per publisher")
    p.add_argument("--prefetch", type=int, default=50, help="consumer prefetch")
    p.add_argument("--max-backlog-mb", type=float, default=150,
                   help="publishers pause while this many MB of confirmed messages are undelivered")
    p.add_argument("--drain-timeout", type=float, default=300)
    p.add_argument("--start-timeout", type=float, default=60)
    p.add_argument("--snapshots", type=int, default=0,
                   help="keep copies of the data dir after the last N kills (for investigating)")
    p.add_argument("--evidence", default=None, help="on failure, copy data dir, logs, snapshots here")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir even on success")
    p.add_argument("--inject-loss", action="store_true",
                   help="self-test: delete the queues' segment files after the first kill; must FAIL (LOST > 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per kill on stderr")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = random.randrange(1 << 31)
    if not 0 <= a.min_run <= a.max_run:
        p.error("need 0 <= --min-run <= --max-run")
    if a.kills < 1 or a.publishers < 1 or a.consumers < 1 or a.queues < 1:
        p.error("--kills, --publishers, --consumers and --queues must be >= 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    # aiormq logs a traceback for every connection the kill cuts: expected here, so silenced
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    try:
        t = CrashTest(args)
        rep = asyncio.run(t.main())
    except Fatal as e:
        print(f"crashtest: harness error: {e}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("crashtest: harness error (see the traceback above)", file=sys.stderr)
        return 2
    if not rep["ok"] and t.snapshots:
        rep["lost_located"] = locate([m["id"] for m in rep["lost_ids"][:20]], t.snapshots + [t.data_dir])
    print(summary(rep))
    if args.report:
        with open(args.report, "w") as f:
            json.dump(rep, f, indent=1, default=str)
    if not rep["ok"] and args.evidence:
        dst = os.path.join(args.evidence, f"run-{t.run_tag}")
        shutil.copytree(t.data_dir, os.path.join(dst, "data"), ignore=shutil.ignore_patterns(".lock"))
        for s in t.snapshots:
            shutil.copytree(s, os.path.join(dst, "snapshots", os.path.basename(s)))
        with open(os.path.join(dst, "report.json"), "w") as f:
            json.dump(rep, f, indent=1, default=str)
        print(f"evidence copied to {dst}")
    if t.snapshots and rep["ok"] and not args.keep:
        shutil.rmtree(t.snap_dir, ignore_errors=True)
    elif t.snapshots:
        print(f"snapshots kept: {t.snap_dir}")
    if rep["ok"] and t.own_dir and not args.keep:
        shutil.rmtree(t.data_dir, ignore_errors=True)
    elif not rep["ok"]:
        print(f"data dir kept: {t.data_dir}")
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
