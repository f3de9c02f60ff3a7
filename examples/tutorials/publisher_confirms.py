#!/usr/bin/env python
"""Tutorial 7, "Publisher Confirms": three ways for a publisher to learn that the broker
has taken responsibility for its messages.

1. individually - wait for the confirm of each message before publishing the next one
                  (BlockingConnection: basic_publish on a confirm channel blocks until the
                  broker acks, and raises NackError on a nack).
2. in batches   - publish a batch, then wait until the whole batch is confirmed.
3. asynchronously - publish everything and handle acks/nacks in a callback as they come
                  (SelectConnection, channel.confirm_delivery(ack_nack_callback=...)).
                  One ack with multiple=True confirms every delivery tag up to its own.

Each strategy publishes to a fresh exclusive queue and reports how many messages the
queue held once everything was confirmed.

Usage: publisher_confirms.py [--messages N] [--batch-size B]
                             [--strategy individually|batches|async|all]
"""
import argparse
import collections
import sys
import time
import uuid

import pika
from pika.spec import Basic

from tutorial_support import AMQP_URL, name


def new_queue_name():
    return name(f"publisher_confirms.{uuid.uuid4().hex}")


def report(strategy, count, started, acked, nacked, queue_count):
    ms = (time.monotonic() - started) * 1000
    print(f"Published {count:,} messages {strategy} in {ms:,.0f} ms: "
          f"{acked} confirmed, {nacked} nacked, queue held {queue_count}", flush=True)
    return acked == count and nacked == 0 and queue_count == count


def publish_messages_individually(count):
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    queue = new_queue_name()
    channel.queue_declare(queue=queue, exclusive=True)
    channel.confirm_delivery()

    acked = nacked = 0
    started = time.monotonic()
    for i in range(count):
        try:
            # Returns only once the broker has confirmed this very message.
            channel.basic_publish(exchange="", routing_key=queue, body=str(i))
            acked += 1
        except pika.exceptions.NackError:
            nacked += 1
    queue_count = channel.queue_declare(queue=queue, passive=True).method.message_count
    ok = report("individually", count, started, acked, nacked, queue_count)
    channel.queue_delete(queue=queue)
    connection.close()
    return ok


class AsyncConfirmPublisher:
    """Publishes ``count`` messages on a SelectConnection and tracks confirms in a callback.

    With ``batch_size`` set, it publishes one batch and waits for every outstanding confirm
    before the next batch ("in batches"); without it, it publishes everything at once and
    just keeps up with the confirms as they arrive ("asynchronously").
    """

    def __init__(self, count, batch_size=None):
        self.count = count
        self.batch_size = batch_size
        self.queue = new_queue_name()
        self.published = 0
        self.next_delivery_tag = 1
        # delivery tag -> message body, in publishing (= delivery tag) order
        self.outstanding = collections.OrderedDict()
        self.acked = 0
        self.nacked = 0
        self.ok = False
        self.started = None
        self.channel = None
        self.connection = pika.SelectConnection(
            pika.URLParameters(AMQP_URL),
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_connection_error,
            on_close_callback=self.on_connection_closed,
        )

    def run(self):
        self.connection.ioloop.start()
        return self.ok

    # --- setting up -------------------------------------------------------
    def on_connection_open(self, connection):
        connection.channel(on_open_callback=self.on_channel_open)

    def on_connection_error(self, connection, error):
        print(f"Connection failed: {error!r}", file=sys.stderr, flush=True)
        connection.ioloop.stop()

    def on_connection_closed(self, connection, reason):
        connection.ioloop.stop()

    def on_channel_open(self, channel):
        self.channel = channel
        channel.queue_declare(queue=self.queue, exclusive=True, callback=self.on_queue_declared)

    def on_queue_declared(self, frame):
        # confirm.select: from now on the broker acks (or nacks) every message we publish,
        # numbering them 1, 2, 3, ... on this channel.
        self.channel.confirm_delivery(ack_nack_callback=self.on_confirm,
                                      callback=self.on_confirm_selected)

    def on_confirm_selected(self, frame):
        self.started = time.monotonic()
        self.publish_some()

    # --- publishing and confirms -------------------------------------------
    def publish_some(self):
        remaining = self.count - self.published
        batch = remaining if self.batch_size is None else min(self.batch_size, remaining)
        for _ in range(batch):
            body = str(self.published)
            self.channel.basic_publish(exchange="", routing_key=self.queue, body=body)
            self.outstanding[self.next_delivery_tag] = body
            self.next_delivery_tag += 1
            self.published += 1

    def on_confirm(self, frame):
        method = frame.method
        if method.multiple:
            tags = [tag for tag in self.outstanding if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            self.outstanding.pop(tag, None)
        if isinstance(method, Basic.Ack):
            self.acked += len(tags)
        else:
            self.nacked += len(tags)  # a real publisher would re-publish these

        if self.outstanding:
            return
        if self.published < self.count:
            self.publish_some()  # the batch is confirmed: go on with the next one
        else:
            self.channel.queue_declare(queue=self.queue, passive=True,
                                       callback=self.on_all_confirmed)

    def on_all_confirmed(self, frame):
        strategy = ("asynchronously" if self.batch_size is None
                    else f"in batches of {self.batch_size}")
        self.ok = report(strategy, self.count, self.started, self.acked, self.nacked,
                         frame.method.message_count)
        self.channel.queue_delete(queue=self.queue, callback=lambda _frame: self.connection.close())


def publish_messages_in_batch(count, batch_size):
    return AsyncConfirmPublisher(count, batch_size=batch_size).run()


def handle_publish_confirms_asynchronously(count):
    return AsyncConfirmPublisher(count).run()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--strategy", default="all",
                        choices=["individually", "batches", "async", "all"])
    args = parser.parse_args()

    results = []
    if args.strategy in ("individually", "all"):
        results.append(publish_messages_individually(args.messages))
    if args.strategy in ("batches", "all"):
        results.append(publish_messages_in_batch(args.messages, args.batch_size))
    if args.strategy in ("async", "all"):
        results.append(handle_publish_confirms_asynchronously(args.messages))

    if all(results):
        print("All messages confirmed", flush=True)
        return 0
    print("Some messages were not confirmed", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
