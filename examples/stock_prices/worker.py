#!/usr/bin/env python
"""Run Celery beat and a Celery worker for tasks.py in this one process.

Beat (``celery.beat.EmbeddedService`` in a thread) sends a ``stocks.publish_tick`` task per
symbol every TICK_INTERVAL seconds; the worker (solo pool) consumes 'stock.ticks' and runs them.
The same as ``celery -A tasks worker -B --pool solo`` but with beat as a thread, so stopping
this process (Ctrl-C, SIGTERM, ``--timeout``) stops everything: nothing keeps publishing.
In production run beat once (``celery -A tasks beat``) and as many workers as needed
(``celery -A tasks worker``).

Usage: worker.py [--timeout S]     (configuration: see tasks.py)
"""
import argparse
import os
import signal
import sys
import threading

from celery.beat import EmbeddedService

from tasks import PREFIX, TICK_INTERVAL, app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=None, help="warm shutdown after this many seconds")
    args = parser.parse_args()
    if args.timeout is not None:
        timer = threading.Timer(args.timeout, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
    beat = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
    beat.start()
    print(f" [*] Beat sends a tick per symbol every {TICK_INTERVAL:g} s; worker consuming "
          f"{PREFIX}stock.ticks", flush=True)
    try:
        app.worker_main(["worker", "--pool", "solo", "--loglevel", "INFO",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
    finally:
        beat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
