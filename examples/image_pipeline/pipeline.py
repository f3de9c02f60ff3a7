"""The image pipeline's stages, queues and file store, shared by ingest.py and worker.py.

    ingest ──> [images.resize] ──worker resize──> [images.watermark] ──worker watermark──>
               [images.thumbnail] ──worker thumbnail──> [images.done]
    any stage that cannot process an image ──> [images.failed] (headers: failed-stage, error)

Messages carry a reference to a file, never the image itself: ``{"job": "photo", "path":
"resize/photo.png", "history": [...]}``, where ``path`` is relative to the store directory
(``--store`` / ``$IMAGE_STORE``, default ``./store``), a stand-in for an object store. Each stage
reads ``path``, writes ``<stage>/<job>.png`` and passes the new path on. All queues are durable,
all messages persistent, routing goes through the default exchange "".
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image, ImageDraw

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
STAGES = ("resize", "watermark", "thumbnail")
RESIZE_MAX = 512       # longest side after "resize"
THUMBNAIL_MAX = 96     # longest side after "thumbnail"


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL), help="broker URL")
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""), help="queue name prefix")
    parser.add_argument("--store", type=Path, default=Path(os.environ.get("IMAGE_STORE", "store")),
                        help="the file store directory (default $IMAGE_STORE or ./store)")
    return parser


class Queues:
    def __init__(self, prefix: str = ""):
        self.stage = {stage: f"{prefix}images.{stage}" for stage in STAGES}
        self.done = prefix + "images.done"
        self.failed = prefix + "images.failed"

    def after(self, stage: str) -> str:
        """Where a stage sends its output."""
        i = STAGES.index(stage)
        return self.stage[STAGES[i + 1]] if i + 1 < len(STAGES) else self.done

    def declare(self, channel) -> None:
        for name in (*self.stage.values(), self.done, self.failed):
            channel.queue_declare(name, durable=True)


def resize(image: Image.Image) -> Image.Image:
    """Longest side at most RESIZE_MAX, aspect ratio kept (never enlarged)."""
    image = image.convert("RGB")
    image.thumbnail((RESIZE_MAX, RESIZE_MAX), Image.Resampling.LANCZOS)
    return image


def watermark(image: Image.Image, text: str = "leveret") -> Image.Image:
    """A translucent box with ``text`` in the bottom-right corner (a quarter of each side)."""
    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    w, h = base.size
    box = (w - max(1, w // 4), h - max(1, h // 4), w, h)
    draw = ImageDraw.Draw(overlay)
    draw.rectangle(box, fill=(255, 255, 255, 128))
    draw.text((box[0] + 2, box[1] + 2), text, fill=(0, 0, 0, 200))
    return Image.alpha_composite(base, overlay).convert("RGB")


def thumbnail(image: Image.Image) -> Image.Image:
    image = image.copy()
    image.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX), Image.Resampling.LANCZOS)
    return image


OPERATIONS = {"resize": resize, "watermark": watermark, "thumbnail": thumbnail}
