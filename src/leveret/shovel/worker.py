"""One dynamic shovel: consume from the source, publish to the destination, acknowledge as
``ack-mode`` says -- RabbitMQ 3.10.8's ``rabbit_shovel_worker`` + ``rabbit_amqp091_shovel``.

* **Connect.** A URI is picked at random from ``src-uri`` (then ``dest-uri``); one that fails
  is dropped and another tried; when none is left the shovel fails. Connections are named
  ``Shovel <name>`` (``connection_name``). An ``amqp://`` URI without a host is a direct
  connection to this broker (``Listener.open_direct``: no port, no password, RabbitMQ's
  all-powerful ``none`` user), to the URI's vhost (``/`` when it has no path), as
  ``amqp_uri:parse`` reads it.
* **Declare.** ``src-queue`` / ``dest-queue``: a passive declare, and if the queue is missing
  (404) a durable declare with ``src-queue-args`` / ``dest-queue-args`` on a fresh channel
  (``ensure_queue``). ``src-exchange``: a server-named exclusive queue bound to it with
  ``src-exchange-key``.
* **Consume.** ``basic.qos`` ``src-prefetch-count`` (not with no-ack), then ``basic.consume``
  with ``no_ack`` for ``no-ack`` and ``src-consumer-args``. ``src-delete-after``:
  ``queue-length`` reads the queue's length at start (passive declare), a number is that
  many; once that many are acknowledged (confirmed, published) the shovel deletes its own
  parameter; deliveries beyond it are left unacked, so they go back to the queue. With 0 to
  move it deletes itself at once.
* **Publish.** To ``dest-queue`` through the default exchange, else to ``dest-exchange`` (or
  the message's own exchange) with ``dest-exchange-key`` (or its own routing key); the
  properties as received, overridden by ``dest-publish-properties``; ``dest-add-forward-headers``
  prepends a table to the ``x-shovelled`` array header (shovelled-by = the cluster name,
  shovel-type, shovel-name, shovel-vhost, src-uri, dest-uri without credentials, then the
  source and destination endpoints); ``dest-add-timestamp-header`` sets
  ``x-shovelled-timestamp`` (seconds). Frames are written as the client library would, but
  without its invented ``message_id`` (aiormq gives every message without one a random id;
  RabbitMQ's shovel forwards the properties untouched).
* **Acknowledge.** ``on-confirm``: the destination channel is in confirm mode, and each
  source delivery is acked when the destination confirms it (nacked when it nacks);
  ``on-publish``: acked once published; ``no-ack``: nothing to ack. Acks go in delivery order,
  a settled run as one ``basic.ack`` with ``multiple`` (:class:`Acker`), and the publishes of
  one turn of the loop in one write (:class:`Outbox`): bench/shovel.py measured 1.5x the rate
  and 25% less CPU per message than a frame and a write per message.
* **Fail.** A connection or channel closing ends the run: the shovel is ``terminated`` with
  the reason for ``reconnect-delay`` seconds, then starts again; with a delay of 0 it stays
  terminated (RabbitMQ's ``temporary`` child). Unacked deliveries return to the source
  queue when its connection closes: with ``on-confirm`` nothing is lost, a message the
  destination got but whose confirm was lost is sent again (a duplicate).

Why aiormq: a well-kept asyncio AMQP 0-9-1 client (the one under aio-pika), running in the
broker's own loop; its ``TransportFactory`` lets the local end use a socket pair.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from urllib.parse import quote

import aiormq
from aiormq.abc import ChannelFrame
from aiormq.connection import TransportFactory
from pamqp import commands as spec
from pamqp.header import ContentHeader

from .config import ShovelConfig, URIError, parse_uri

log = logging.getLogger("leveret.shovel")


class DirectTransport(TransportFactory):
    """aiormq's transport over a direct connection to this broker."""

    def __init__(self, listener, user):
        self.listener, self.user = listener, user

    async def create(self, url, **kwargs):
        sock = await self.listener.open_direct(self.user)
        return await asyncio.open_connection(sock=sock)


class Stop(Exception):
    """The shovel moved what ``src-delete-after`` asked for."""


class Shovel:
    """One shovel's run loop and status (``starting``, ``running``, ``terminated``)."""

    def __init__(self, supervisor, cfg: ShovelConfig):
        self.sup, self.cfg = supervisor, cfg
        self.state, self.reason = "starting", None
        self.info: dict = {}
        self.timestamp = time.time()
        self.task: asyncio.Task | None = None
        self._conns: list = []

    # ------------------------------------------------------------ status

    def status(self) -> dict:
        """``rabbit_shovel_mgmt``'s row (without node and timestamp formatting)."""
        d = {"name": self.cfg.name, "vhost": self.cfg.vhost, "type": "dynamic", "state": self.state}
        if self.state == "running":
            d.update(self.info)
        elif self.state == "terminated":
            d["reason"] = self.reason
        return d

    def _set(self, state: str, reason=None) -> None:
        self.state, self.reason, self.timestamp = state, reason, time.time()

    # ------------------------------------------------------------ life

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"shovel {self.cfg.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            except Exception:   # the run loop logged it
                pass
        await self._close()

    async def run(self) -> None:
        cfg = self.cfg
        while True:
            self._set("starting")
            try:
                await self._once()
            except Stop:
                await self._close()
                log.info("shovel '%s' in vhost '%s' moved what it was asked to: deleting it", cfg.name, cfg.vhost)
                self.sup.autodelete(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = _reason(e)
                log.warning("shovel '%s' in vhost '%s' terminated: %s", cfg.name, cfg.vhost, reason)
                self._set("terminated", reason)
                await self._close()
                if not cfg.reconnect_delay or cfg.reconnect_delay <= 0:
                    return
                await asyncio.sleep(cfg.reconnect_delay)

    async def _close(self) -> None:
        conns, self._conns = self._conns, []
        await close_all(conns)

    async def _connect(self, uris: list[str]):
        left = list(uris)
        last = None
        while left:
            text = random.choice(left)
            try:
                uri = parse_uri(text)
                props = {"connection_name": f"Shovel {self.cfg.name}"}
                if uri.direct:
                    url = "amqp://none:none@localhost/" + quote(uri.vhost, safe="")
                    conn = aiormq.Connection(url, transport_factory=DirectTransport(self.sup.listener,
                                                                                    self.sup.user),
                                             client_properties=props)
                else:
                    conn = aiormq.Connection(text, client_properties=props)
                await conn.connect()
            except (URIError, OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError) as e:
                log.error("shovel '%s' in vhost '%s' failed to connect (URI: %s): %s", self.cfg.name,
                          self.cfg.vhost, parse_uri(text).without_credentials() if _parses(text) else text, e)
                last = e
                left.remove(text)
                continue
            self._conns.append(conn)
            return conn, uri.without_credentials()
        raise ConnectionError(f"failed_to_connect_using_provided_uris ({_reason(last)})")

    async def _ensure_queue(self, conn, queue: str, args: dict) -> int:
        """``rabbit_shovel_parameters:ensure_queue``: the queue's message count."""
        ch = await conn.channel()
        try:
            ok = await ch.queue_declare(queue, passive=True)
            return ok.message_count
        except aiormq.exceptions.ChannelNotFoundEntity:
            ch2 = await conn.channel()
            ok = await ch2.queue_declare(queue, durable=True, arguments=args or None)
            await ch2.close()
            return ok.message_count
        finally:
            if not ch.is_closed:
                await ch.close()

    async def _once(self) -> None:
        cfg = self.cfg
        src, src_uri = await self._connect(cfg.src_uris)
        dest, dest_uri = await self._connect(cfg.dest_uris)
        in_ch = await src.channel()
        if cfg.src_queue is not None:
            count = await self._ensure_queue(src, cfg.src_queue, cfg.src_queue_args)
            queue = cfg.src_queue
        else:
            ok = await in_ch.queue_declare("", exclusive=True)
            queue, count = ok.queue, 0
            await in_ch.queue_bind(queue, cfg.src_exchange, routing_key=cfg.src_exchange_key)
        if cfg.dest_queue is not None:
            await self._ensure_queue(dest, cfg.dest_queue, cfg.dest_queue_args)
        confirm = cfg.ack_mode == "on-confirm"
        out_ch = await dest.channel(publisher_confirms=confirm)
        no_ack = cfg.ack_mode == "no-ack"
        if not no_ack:
            await in_ch.basic_qos(prefetch_count=int(cfg.prefetch_count))
        remaining = (None if cfg.delete_after == "never" else count if cfg.delete_after == "queue-length"
                     else int(cfg.delete_after))
        if remaining == 0:
            raise Stop()
        done = asyncio.get_running_loop().create_future()
        state = {"remaining": remaining, "unacked": remaining}
        headers_prefix = [("shovelled-by", self.sup.cluster_name()), ("shovel-type", "dynamic"),
                          ("shovel-name", cfg.name), ("shovel-vhost", cfg.vhost),
                          ("src-uri", src_uri), ("dest-uri", dest_uri)] + cfg.header_suffix()

        def settled(n: int) -> None:
            if state["remaining"] is not None:
                state["remaining"] -= n
                if state["remaining"] <= 0 and not done.done():
                    done.set_result(None)

        acker = Acker(in_ch, settled)
        out = Outbox(out_ch, confirm, acker if cfg.ack_mode == "on-publish" else None)

        def confirmed(tag: int, fut: asyncio.Future) -> None:
            ok = not fut.cancelled() and fut.exception() is None and isinstance(fut.result(), spec.Basic.Ack)
            acker.settle(tag, ok)

        async def on_message(message) -> None:
            if state["unacked"] is not None:
                if state["unacked"] <= 0:
                    return          # past delete-after: left unacked, back to the queue at close
                state["unacked"] -= 1
            d = message.delivery
            props = message.header.properties
            self._apply(props, headers_prefix)
            if cfg.dest_queue is not None:
                x, key = "", cfg.dest_queue
            else:
                x = cfg.dest_exchange if cfg.dest_exchange is not None else d.exchange
                key = cfg.dest_exchange_key if cfg.dest_exchange_key is not None else d.routing_key
            if not no_ack:
                acker.expect(d.delivery_tag)
            fut = out.publish(x, key, props, message.body, d.delivery_tag)
            if confirm:
                fut.add_done_callback(lambda f, tag=d.delivery_tag: confirmed(tag, f))
            elif no_ack:
                settled(1)

        await in_ch.basic_consume(queue, on_message, no_ack=no_ack, arguments=cfg.src_consumer_args or None)
        self.info = {"src_uri": src_uri, "src_protocol": "amqp091", "dest_protocol": "amqp091",
                     "dest_uri": dest_uri, **cfg.source_endpoint(), **cfg.dest_endpoint()}
        self._set("running")
        watch = [asyncio.ensure_future(f) for f in (src.closing, dest.closing, in_ch.closing, out_ch.closing)]
        try:
            await asyncio.wait([done, *watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in watch:
                w.cancel()
        if done.done():
            raise Stop()
        for f, what in zip(watch, ("inbound_conn_died", "outbound_conn_died", "inbound_link_or_channel_closure",
                                   "outbound_link_or_channel_closure")):
            if f.done() and not f.cancelled():
                e = f.exception()
                raise ConnectionError(f"{what}: {_reason(e) if e else 'closed'}")
        raise ConnectionError("closed")

    def _apply(self, props, prefix) -> None:
        cfg = self.cfg
        for k, v in cfg.publish_properties.items():
            setattr(props, k, v)
        if cfg.add_forward_headers:
            h = dict(props.headers or {})
            old = h.get("x-shovelled")
            h["x-shovelled"] = [dict(prefix)] + (list(old) if isinstance(old, list) else [])
            props.headers = h
        if cfg.add_timestamp_header:
            h = dict(props.headers or {})
            h["x-shovelled-timestamp"] = int(time.time())
            props.headers = h


class Acker:
    """Acknowledges the source's deliveries in delivery order, coalesced: every settled run at
    the front of the pending ones goes out as one ``basic.ack`` with ``multiple`` (a nacked one
    as its own ``basic.nack`` with requeue), written once per turn of the loop -- RabbitMQ's
    shovel acks with ``multiple`` too when the destination confirms several at once.
    Deliveries it was never told to expect (past ``src-delete-after``) come after every
    expected one, so no ``multiple`` ack covers them."""

    def __init__(self, ch, settled):
        self.ch, self.settled = ch, settled
        self.pending: collections.deque[int] = collections.deque()
        self.results: dict[int, bool] = {}
        self.task: asyncio.Task | None = None

    def expect(self, tag: int) -> None:
        self.pending.append(tag)

    def settle(self, tag: int, ok: bool) -> None:
        if self.ch.is_closed:
            return          # the deliveries go back to the queue with the channel
        self.results[tag] = ok
        if self.task is None:
            self.task = asyncio.ensure_future(self._flush())

    def _frames(self) -> tuple[list, int]:
        frames, last, n = [], None, 0
        while self.pending and self.pending[0] in self.results:
            tag = self.pending.popleft()
            if self.results.pop(tag):
                last, n = tag, n + 1
            else:
                if last is not None:
                    frames.append(spec.Basic.Ack(delivery_tag=last, multiple=True))
                    last = None
                frames.append(spec.Basic.Nack(delivery_tag=tag, requeue=True))
        if last is not None:
            frames.append(spec.Basic.Ack(delivery_tag=last, multiple=True))
        return frames, n

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)
            while True:
                frames, n = self._frames()
                if not frames or self.ch.is_closed:
                    return
                await self.ch.write_queue.put(ChannelFrame.marshall(frames=frames, channel_number=self.ch.number))
                self.settled(n)
        finally:
            self.task = None


class Outbox:
    """The destination channel's publishes, written in batches: every publish made in one turn
    of the loop goes out in one write (aiormq writes each queued item with its own ``send``).
    In confirm mode each gets its confirmation future (aiormq's bookkeeping: the channel's
    ``delivery_tag`` and ``confirmations``); with ``acker`` (on-publish) each source delivery
    is settled once its publish is handed to the connection's writer."""

    def __init__(self, ch, confirm: bool, acker: Acker | None):
        self.ch, self.confirm, self.acker = ch, confirm, acker
        self.frames: list = []
        self.tags: list[int] = []
        self.task: asyncio.Task | None = None

    def publish(self, exchange: str, routing_key: str, props, body: bytes, src_tag: int):
        """``basic.publish`` as aiormq sends it, minus the invented ``message_id``; returns the
        confirmation future in confirm mode."""
        ch = self.ch
        self.frames += [spec.Basic.Publish(exchange=exchange, routing_key=routing_key),
                        ContentHeader(properties=props, body_size=len(body)), *ch._split_body(body)]
        self.tags.append(src_tag)
        fut = None
        if self.confirm:
            ch.delivery_tag += 1
            fut = ch.create_future()
            ch.confirmations[ch.delivery_tag] = fut
        if self.task is None:
            self.task = asyncio.ensure_future(self._flush())
        return fut

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)      # (the deliveries already read publish in this batch too)
            while self.frames and not self.ch.is_closed:
                frames, tags, self.frames, self.tags = self.frames, self.tags, [], []
                await self.ch.write_queue.put(ChannelFrame.marshall(frames=frames, channel_number=self.ch.number))
                if self.acker is not None:
                    for t in tags:
                        self.acker.settle(t, True)
        finally:
            self.task = None


async def close_all(conns) -> None:
    """Close client connections (a shovel's, a federation link's), each at most 10 s, errors
    ignored: the peer may be gone already."""
    for c in conns:
        try:
            await asyncio.wait_for(c.close(), 10)
        except Exception:
            pass


def _parses(text: str) -> bool:
    try:
        parse_uri(text)
        return True
    except URIError:
        return False


def _reason(e) -> str:
    if e is None:
        return "unknown"
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if not isinstance(e, ConnectionError) else text
