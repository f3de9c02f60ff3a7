#!/usr/bin/env python
"""One stage of the image pipeline: consume 'images.<STAGE>', process, pass the job on.

For each job the worker opens ``<store>/<path>``, applies the stage (resize to at most 512 px,
watermark the bottom-right corner, thumbnail to at most 96 px), saves ``<store>/<STAGE>/<job>.png``
and publishes the job, with the new path and one more ``history`` entry, to the next stage's
queue (or 'images.done'); it acks only after that publish is confirmed. A job it cannot process
(not JSON, missing file, not an image) goes to 'images.failed' with ``failed-stage`` and
``error`` headers. Run as many workers per stage as you like: they share the queue.

  [>] photo resize: incoming/photo.png 1600x1200 -> resize/photo.png 512x384 (41 ms)
  [!] broken resize: FAILED (cannot identify image file ...) -> images.failed

Usage: worker.py [--url URL] [--prefix P] [--store DIR] [--max-messages N] [--timeout S] STAGE
"""
import argparse
import json
import sys
import time

import pika
from PIL import Image

from pipeline import OPERATIONS, STAGES, Queues, add_options


def main() -> int:
    parser = add_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--max-messages", type=int, default=None, help="exit after this many jobs")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    args = parser.parse_args()
    queues = Queues(args.prefix)
    source, target = queues.stage[args.stage], queues.after(args.stage)
    (args.store / args.stage).mkdir(parents=True, exist_ok=True)

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queues.declare(channel)
    channel.confirm_delivery()
    channel.basic_qos(prefetch_count=1)  # images are heavy: one at a time per worker
    handled = 0

    def on_job(ch, method, properties, body):
        nonlocal handled
        started = time.monotonic()
        job_id = properties.message_id or "?"
        try:
            job = json.loads(body)
            job_id = job["job"]
            with Image.open(args.store / job["path"]) as image:
                image.load()
                result = OPERATIONS[args.stage](image)
            out = f"{args.stage}/{job_id}.png"
            result.save(args.store / out)
        except Exception as exc:  # any bad input: park the job with the reason, keep the worker alive
            headers = {**(properties.headers or {}), "failed-stage": args.stage, "error": str(exc)[:500]}
            ch.basic_publish("", queues.failed, body, pika.BasicProperties(
                content_type=properties.content_type, message_id=properties.message_id,
                delivery_mode=pika.DeliveryMode.Persistent, headers=headers))
            print(f" [!] {job_id} {args.stage}: FAILED ({exc}) -> {queues.failed}", flush=True)
        else:
            ms = int((time.monotonic() - started) * 1000)
            job["history"].append({"stage": args.stage, "in": job["path"], "out": out,
                                   "size": list(result.size), "ms": ms})
            in_path, job["path"] = job["path"], out
            ch.basic_publish("", target, json.dumps(job), pika.BasicProperties(
                content_type="application/json", message_id=job_id,
                delivery_mode=pika.DeliveryMode.Persistent), mandatory=True)
            print(f" [>] {job_id} {args.stage}: {in_path} {image.size[0]}x{image.size[1]} -> {out} "
                  f"{result.size[0]}x{result.size[1]} ({ms} ms)", flush=True)
        ch.basic_ack(method.delivery_tag)
        handled += 1
        if args.max_messages is not None and handled >= args.max_messages:
            ch.stop_consuming()

    channel.basic_consume(source, on_job)
    print(f" [*] Waiting for images on {source} (output to {target}, store {args.store})", flush=True)
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
