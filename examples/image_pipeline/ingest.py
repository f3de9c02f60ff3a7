#!/usr/bin/env python
"""Put images into the store and start a pipeline job for each.

Every FILE is copied to ``<store>/incoming/<name>`` (job id: the file name without its
extension) and a job ``{"job": ..., "path": "incoming/<name>", "history": []}`` is published to
'images.resize' (persistent, publisher confirms). ``--generate N`` makes N synthetic test images
(colour gradients of different sizes) instead of, or in addition to, FILEs.

Usage: ingest.py [--url URL] [--prefix P] [--store DIR] [--generate N] [FILE ...]
"""
import argparse
import json
import shutil
from pathlib import Path
import sys

import pika
from PIL import Image

from pipeline import Queues, add_options

SIZES = [(1600, 1200), (480, 960), (200, 200), (1024, 256)]


def generate(store, n: int) -> list:
    paths = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        image = Image.linear_gradient("L").resize((w, h)).convert("RGB")
        image = Image.merge("RGB", (image.getchannel(0), image.getchannel(0).rotate(90), Image.new("L", (w, h), 40 * i % 256)))
        path = store / "incoming" / f"generated-{i + 1}.png"
        image.save(path)
        paths.append(path)
    return paths


def main() -> int:
    parser = add_options(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--generate", type=int, default=0, metavar="N", help="make N synthetic images")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    incoming = args.store / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    paths = generate(args.store, args.generate)
    for name in args.files:
        try:
            paths.append(shutil.copy(name, incoming))
        except OSError as exc:
            parser.error(f"cannot read {name}: {exc}")
    if not paths:
        parser.error("nothing to ingest: give FILEs or --generate N")

    queues = Queues(args.prefix)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queues.declare(channel)
    channel.confirm_delivery()
    for path in map(Path, paths):
        job = {"job": path.stem, "path": f"incoming/{path.name}", "history": []}
        channel.basic_publish("", queues.stage["resize"], json.dumps(job),
                              pika.BasicProperties(content_type="application/json", message_id=path.stem,
                                                   delivery_mode=pika.DeliveryMode.Persistent),
                              mandatory=True)
        print(f" [x] {path.stem}: {job['path']} -> {queues.stage['resize']}", flush=True)
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
