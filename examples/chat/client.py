#!/usr/bin/env python
"""A terminal chat client: join a room, print what arrives, send what you type.

Usage: client.py [--server ws://127.0.0.1:8765] ROOM USER
"""
import argparse
import json
import sys
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="ws://127.0.0.1:8765")
    parser.add_argument("room")
    parser.add_argument("user")
    args = parser.parse_args()
    with connect(f"{args.server}/rooms/{args.room}?user={args.user}") as ws:
        def show() -> None:
            try:
                for frame in ws:
                    event = json.loads(frame)
                    what = event["text"] if event["type"] == "message" else f"({event['type']})"
                    print(f"[{event['room']}] {event['user']}@{event['server']}: {what}", flush=True)
            except ConnectionClosed as exc:
                print(f"closed: {exc}", flush=True)

        threading.Thread(target=show, daemon=True).start()
        for line in sys.stdin:
            ws.send(line.rstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
