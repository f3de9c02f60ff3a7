"""Demo: two generated images and a file that is not an image go through the resize, watermark
and thumbnail workers (three processes chained by queues); the broken one is parked in
images.failed. Run it with ``python examples/run.py image_pipeline [--url URL]`` (needs Pillow)."""
QUEUES = ("images.resize", "images.watermark", "images.thumbnail", "images.done", "images.failed")
EXCHANGES = ()


def demo(d):
    env = {"IMAGE_STORE": str(d.tmp / "store")}
    workers = [d.start("worker.py", "--max-messages", str(n), stage, ready="Waiting for images", env=env,
                       label=stage) for stage, n in (("resize", 3), ("watermark", 2), ("thumbnail", 2))]
    broken = d.tmp / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    d.run("ingest.py", "--generate", "2", str(broken), env=env)
    for worker in workers:
        worker.finish()
    for stage in ("resize", "watermark", "thumbnail"):
        d.say(f"{stage}/: " + ", ".join(sorted(p.name for p in (d.tmp / "store" / stage).iterdir())))
