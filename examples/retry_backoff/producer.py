#!/usr/bin/env python
"""Publish jobs to the 'work' queue.

Each job is ``ID`` or ``ID:FAILS``: the worker pretends the job fails on its first FAILS
attempts (an integer, or ``always``) and succeeds after that. The body is JSON, e.g.
``{"id": "job-b", "fail": 2}``; the header ``published-at-ms`` records when it was sent.

Usage: producer.py [--url URL] [--prefix P] job-a job-b:2 job-c:always
"""
import argparse
import json
import sys
import time

import pika

from topology import Topology, add_connection_options


def parse_job(spec: str) -> dict:
    job_id, _, fails = spec.partition(":")
    if not job_id:
        raise argparse.ArgumentTypeError(f"empty job id in {spec!r}")
    if fails in ("", "0"):
        return {"id": job_id, "fail": 0}
    if fails == "always":
        return {"id": job_id, "fail": "always"}
    try:
        return {"id": job_id, "fail": int(fails)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"FAILS must be a number or 'always': {spec!r}") from None


def main() -> int:
    parser = add_connection_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("jobs", nargs="+", type=parse_job, metavar="ID[:FAILS]")
    args = parser.parse_args()

    topology = Topology(args.prefix)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    topology.declare_work(channel)  # the worker declares the rest; the work queue holds jobs until then
    channel.confirm_delivery()      # basic_publish now waits for the broker's ack

    for job in args.jobs:
        channel.basic_publish(
            exchange="",
            routing_key=topology.work,
            body=json.dumps(job),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=job["id"],
                headers={"published-at-ms": int(time.time() * 1000)},
            ),
            mandatory=True,  # an unroutable job raises UnroutableError instead of vanishing
        )
        fails = "always fails" if job["fail"] == "always" else f"fails {job['fail']} time(s)"
        print(f" [x] Sent {job['id']} ({fails})", flush=True)

    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
