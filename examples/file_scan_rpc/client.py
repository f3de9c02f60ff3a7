#!/usr/bin/env python
"""Scan files through the scanners, with a private callback queue for the replies.

1. Declare a callback queue: name "" (the broker picks one, ``amq.gen-...``), exclusive (only
   this connection may use it, and the broker deletes it when the connection closes).
2. Publish one request per file to 'scan.requests': the bytes as body, ``reply_to`` = the
   callback queue, a fresh ``correlation_id``, ``expiration`` = the timeout (a request nobody
   picked up in time is dropped rather than answered to nobody) and ``mandatory`` (no
   'scan.requests' queue means no scanner ever ran: the request comes back at once).
3. Consume the callback queue; replies arrive in any order and are matched by correlation_id
   (a reply with an unknown id, e.g. a late answer to an earlier run, is ignored).

Output: the callback queue, then one line per reply, then a summary; exit status 1 when a file
got no verdict (no reply, returned, or an error reply):

  [*] callback queue amq.gen-JzTY20BRgKO-HjmUJj0wLg
  [.] eicar.com: infected: EICAR-Test-File (sha256 275a02..., 68 bytes, corr ...)
  [=] 3 of 3 files scanned, 1 infected

Usage: client.py [--url URL] [--prefix P] [--timeout 5] FILE [FILE ...]
"""
import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import pika

QUEUE = "scan.requests"


class ScanClient:
    def __init__(self, url: str, queue: str):
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.callback_queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(self.callback_queue, self.on_reply, auto_ack=True)
        self.channel.add_on_return_callback(self.on_return)
        self.pending: dict[str, str] = {}    # correlation_id -> file name
        self.results: dict[str, dict] = {}   # correlation_id -> reply

    def request(self, name: str, data: bytes, timeout: float) -> None:
        corr = str(uuid.uuid4())
        self.pending[corr] = name
        self.channel.basic_publish("", self.queue, data, pika.BasicProperties(
            reply_to=self.callback_queue, correlation_id=corr, headers={"filename": name},
            expiration=str(int(timeout * 1000))), mandatory=True)

    def on_reply(self, ch, method, props, body):
        name = self.pending.pop(props.correlation_id, None)
        if name is None:
            print(f" [?] ignoring a reply with unknown correlation id {props.correlation_id}", flush=True)
            return
        reply = json.loads(body)
        self.results[props.correlation_id] = reply
        details = f"sha256 {reply['sha256']}, " if "sha256" in reply else ""
        print(f" [.] {name}: {reply['verdict']} ({details}{reply['size']} bytes, corr {props.correlation_id})",
              flush=True)

    def on_return(self, ch, method, props, body):
        name = self.pending.pop(props.correlation_id, None)
        if name is not None:
            self.results[props.correlation_id] = {"verdict": f"error: {method.reply_code} {method.reply_text}"}
            print(f" [!] {name}: request returned, {method.reply_code} {method.reply_text} "
                  f"(is a scanner running?)", flush=True)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=min(0.05, max(0.0, deadline - time.monotonic())))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    p.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for all verdicts")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = p.parse_args()
    try:
        files = [(path.name, path.read_bytes()) for path in args.files]
    except OSError as exc:
        p.error(f"cannot read {exc.filename}: {exc.strerror}")
    client = ScanClient(args.url, args.prefix + QUEUE)
    print(f" [*] callback queue {client.callback_queue}", flush=True)
    try:
        for name, data in files:
            client.request(name, data, args.timeout)
        client.wait(args.timeout)
        for name in client.pending.values():
            print(f" [!] {name}: no verdict within {args.timeout} s", flush=True)
    finally:
        client.connection.close()  # the exclusive callback queue goes with the connection
    verdicts = [reply["verdict"] for reply in client.results.values()]
    scanned = sum(not v.startswith("error") for v in verdicts)
    infected = sum(v.startswith("infected") for v in verdicts)
    print(f" [=] {scanned} of {len(files)} files scanned, {infected} infected", flush=True)
    return 0 if scanned == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())
