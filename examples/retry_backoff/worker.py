#!/usr/bin/env python
"""Consume jobs from 'work'; retry failures with exponential backoff; park hopeless ones.

On a failure the worker republishes the message, unchanged but for a ``retried-at-ms``
header, to the retry queue for its attempt (``work.retry.1`` waits ``base`` ms, ``.2`` twice
that, ...) and acks the original. When the retry queue's TTL runs out the broker
dead-letters the message back to 'work' and records the expiry in the x-death header, from
which the next attempt number is computed. After ``--max-attempts`` failed attempts the worker
rejects the message (requeue=False) and the work queue's dead-letter settings move it to
'work.parking'.

Every attempt prints one line:

  [>] job-b attempt 2 (203 ms in work.retry.1, 215 ms since published): FAILED (...) -> work.retry.2 in 200 ms
  [>] job-b attempt 3 (402 ms in work.retry.2, 621 ms since published): done
  [>] job-c attempt 4 (...): FAILED (...) -> parked in work.parking

Usage: worker.py [--url URL] [--prefix P] [--base-delay-ms 100] [--levels 3]
                 [--max-attempts 4] [--max-jobs N] [--timeout S]
"""
import argparse
import json
import os
import sys
import time

import pika

from topology import Topology, add_connection_options


class SimulatedFailure(Exception):
    pass


def process(job: dict, attempt: int) -> None:
    """The "work": fails while attempt <= job['fail'] (or always)."""
    fail = job.get("fail", 0)
    if fail == "always":
        raise SimulatedFailure("fails every time")
    if attempt <= int(fail):
        raise SimulatedFailure(f"failure {attempt} of {fail}")


def main() -> int:
    parser = add_connection_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--base-delay-ms", type=int,
                        default=int(os.environ.get("RETRY_BASE_DELAY_MS", "100")),
                        help="delay of work.retry.1; each further level doubles it (default 100)")
    parser.add_argument("--levels", type=int, default=3, help="number of retry queues (default 3)")
    parser.add_argument("--max-attempts", type=int, default=4,
                        help="attempts before a job is parked (default 4: the first try + 3 retries)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="exit after this many jobs are done or parked (default: run forever)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="exit after this many seconds (default: run forever)")
    args = parser.parse_args()

    topology = Topology(args.prefix, args.levels, args.base_delay_ms)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    topology.declare(channel)
    channel.confirm_delivery()  # a retry copy is confirmed before the original is acked
    channel.basic_qos(prefetch_count=10)
    finished = 0

    def finish_one(ch) -> None:
        nonlocal finished
        finished += 1
        if args.max_jobs is not None and finished >= args.max_jobs:
            ch.stop_consuming()

    def on_message(ch, method, properties, body):
        now_ms = int(time.time() * 1000)
        headers = dict(properties.headers or {})
        attempt = topology.attempt(properties)
        try:
            job = json.loads(body)
            job_id = job["id"]
        except (ValueError, KeyError, TypeError):
            print(f" [!] unreadable message {body[:60]!r} -> parked in {topology.parking}", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            finish_one(ch)
            return

        timing = []
        if attempt > 1 and "retried-at-ms" in headers:
            timing.append(f"{now_ms - int(headers['retried-at-ms'])} ms in {headers.get('retried-via')}")
        if "published-at-ms" in headers:
            timing.append(f"{now_ms - int(headers['published-at-ms'])} ms since published")
        line = f" [>] {job_id} attempt {attempt} ({', '.join(timing)})"

        try:
            process(job, attempt)
        except Exception as exc:  # any failure of the work is retried, up to max-attempts
            if attempt >= args.max_attempts:
                # Dead-lettering: the broker moves it to work.parking and adds an x-death
                # entry {queue: work, reason: rejected}.
                ch.basic_reject(method.delivery_tag, requeue=False)
                print(f"{line}: FAILED ({exc}) -> parked in {topology.parking}", flush=True)
                finish_one(ch)
                return
            queue, delay_ms = topology.retry_queue_after(attempt)
            headers["retried-at-ms"] = int(time.time() * 1000)
            headers["retried-via"] = queue
            headers["last-error"] = str(exc)
            properties.headers = headers  # keeps x-death, which the broker extends on expiry
            ch.basic_publish("", queue, body, properties, mandatory=True)
            ch.basic_ack(method.delivery_tag)
            print(f"{line}: FAILED ({exc}) -> {queue} in {delay_ms} ms", flush=True)
        else:
            ch.basic_ack(method.delivery_tag)
            print(f"{line}: done", flush=True)
            finish_one(ch)

    channel.basic_consume(topology.work, on_message)
    delays = ", ".join(f"{q} {d} ms" for q, d in zip(topology.retry_queues, topology.delays_ms))
    print(f" [*] Waiting for jobs on {topology.work} (retries: {delays}; "
          f"parking after {args.max_attempts} attempts)", flush=True)
    if args.timeout is not None:
        connection.call_later(args.timeout, channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
