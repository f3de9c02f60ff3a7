"""Federation links, as RabbitMQ 3.10.8's ``rabbit_federation_exchange_link`` and
``rabbit_federation_queue_link`` run them: one asyncio task per (downstream exchange or queue,
upstream), over aiormq (the shovel's client: a direct connection for the local end).

**Exchange link.** Opens a direct connection to the downstream vhost (connection name
``Federation link (upstream: U, policy: P)``; a confirm channel with ``on-confirm``) and a
connection to one of the upstream's URIs (a URI without a vhost path means the downstream's
vhost). On the upstream it declares

* the queue ``federation: <X> -> <cluster name>`` (``:<vhost>:<X>`` appended when the
  downstream vhost or exchange name differ from the upstream's), durable, with
  ``x-expires`` / ``x-message-ttl`` (``expires`` / ``message-ttl``), ``x-ha-policy`` and
  ``x-internal-purpose: federation``;
* the upstream exchange itself if it is missing (the downstream's type, flags and arguments);
* the internal exchange ``<queue name> A`` (or ``B``: the suffix alternates at each start and
  the other one is deleted), durable, auto-delete, internal, of type ``x-federation-upstream``
  with ``x-max-hops`` (long), ``x-downstream-name`` (this node's cluster name),
  ``x-downstream-vhost`` and ``x-internal-purpose`` -- or ``fanout`` with only the purpose when
  the upstream answers 503 (no federation plugin there), on a throw-away connection;

binds the queue to the internal exchange and the internal exchange to the upstream exchange
once per distinct (routing key, arguments) of the downstream exchange's bindings, with an
``x-bound-from`` table prepended (cluster-name, vhost, exchange ``<vhost>:<X> <suffix>``,
hops: ``max-hops``, or one less than the binding's own if it came from further downstream --
0 drops it, as does a binding already bound from the upstream itself). Binding changes on
the downstream exchange are propagated while the link runs (bind when the first binding of a
key appears, unbind when its last one goes). Deliveries from the queue are republished to the
downstream exchange with their routing key and an ``x-received-from`` table prepended (uri
without credentials, exchange, redelivered, the upstream's cluster-name and vhost); a message
that already went ``max-hops`` hops or came through this downstream is acknowledged and
dropped (``should_forward``). ``user_id`` is cleared unless ``trust-user-id``. Acks as
``ack-mode``: ``on-confirm`` acks the upstream delivery when the downstream confirms it.
A link stopped for good (its exchange deleted, the policy gone) deletes the upstream queue
and internal exchange unless ``resource-cleanup-mode`` is ``never``.

**Queue link.** Checks that the upstream announces ``consumer_priorities``, declares the
upstream queue if missing (the downstream's flags and arguments), sets the prefetch and
consumes (tag ``consumer-tag``, ``x-priority: -1``) only while the downstream queue is empty
and has an active consumer of priority >= 0 (``rabbit_federation_queue:consumer_state_changed``
and the link's ``run`` / ``pause``), cancelling otherwise. The local queue tells the link when
that may have changed (``Queue.watch``: consumers added or removed, messages enqueued,
delivered, settled, requeued, purged); the link re-checks once per turn of the event loop
(coalesced) and wakes its task only when the answer differs from what it is doing. Messages are published to the downstream queue through
the default exchange, with ``x-received-from`` (uri, queue, redelivered, visit-count) and,
the first time, ``x-original-exchange`` / ``x-original-routing-key``; ``CC`` becomes
``x-original-cc``.

Failures: any error ends the run; the link reports ``error`` (with the reason) and starts
again after ``reconnect-delay`` seconds.

Methods whose argument types matter to RabbitMQ (``x-max-hops`` must be a ``long``) or that
carry Leveret's typed binding arguments are encoded with Leveret's own codec and sent through
aiormq (:func:`rpc`); message properties go through aiormq/pamqp as the shovel's do (integer
header values take pamqp's smallest type).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import random
import time
from urllib.parse import quote, urlsplit

import aiormq
from aiormq.abc import ChannelFrame
from aiormq.tools import awaitable
from pamqp import commands as pspec
from pamqp.header import ContentHeader

from ..amqp import spec as lspec
from ..amqp.codec import Typed, table_plain
from ..broker.exchanges import should_forward
from ..shovel.config import URIError, parse_uri
from ..shovel.worker import DirectTransport, close_all
from .config import Upstream

log = logging.getLogger("leveret.federation")


# ------------------------------------------------------------ methods with typed arguments

def _raw_class(base):
    class Raw(base):
        def marshal(self) -> bytes:
            return self._payload
    Raw.__name__ = base.__name__
    return Raw


_RAW = {c: _raw_class(c) for c in (pspec.Exchange.Declare, pspec.Exchange.Delete, pspec.Exchange.Bind,
                                   pspec.Exchange.Unbind, pspec.Queue.Declare, pspec.Queue.Bind,
                                   pspec.Queue.Delete, pspec.Basic.Consume)}


async def rpc(ch, pamqp_cls, method):
    """Send a Leveret-encoded method through an aiormq channel and await its reply (also for
    names pamqp refuses to send: ``federation: x -> node`` has spaces and ``>``)."""
    f = _RAW[pamqp_cls]()
    f._payload = method.encode()[4:]
    return await ch.rpc(f)


async def consume(ch, queue: str, callback, no_ack: bool, tag: str, arguments=None):
    """``basic.consume`` as aiormq's ``basic_consume``, without pamqp's name check."""
    ch.consumers[tag] = awaitable(callback)
    return await rpc(ch, pspec.Basic.Consume, lspec.BasicConsume(queue=queue, consumer_tag=tag, no_ack=no_ack,
                                                                 arguments=arguments or {}))


async def delete_exchange(ch, name: str):
    return await rpc(ch, pspec.Exchange.Delete, lspec.ExchangeDelete(exchange=name))


async def delete_queue(ch, name: str):
    return await rpc(ch, pspec.Queue.Delete, lspec.QueueDelete(queue=name))


async def declare_passive(ch, kind: str, name: str):
    if kind == "exchange":
        return await rpc(ch, pspec.Exchange.Declare, lspec.ExchangeDeclare(exchange=name, passive=True))
    return await rpc(ch, pspec.Queue.Declare, lspec.QueueDeclare(queue=name, passive=True))


def _s(v: str) -> Typed:
    return Typed("S", v)


def _long(v) -> Typed:
    return Typed("l", int(v))


# ------------------------------------------------------------ the common part


async def _send(ch, frame) -> None:
    """One frame on an aiormq channel (a federation link's acks)."""
    if not ch.is_closed:
        await ch.write_queue.put(ChannelFrame.marshall(frames=[frame], channel_number=ch.number))


async def _publish(ch, exchange: str, routing_key: str, props, body: bytes, confirm: bool):
    """``basic.publish`` as aiormq sends it (its confirm bookkeeping), minus the invented
    ``message_id``; returns the confirmation future in confirm mode. One message a time (a
    shovel batches through ``shovel.worker.Outbox``)."""
    frames = [pspec.Basic.Publish(exchange=exchange, routing_key=routing_key),
              ContentHeader(properties=props, body_size=len(body)), *ch._split_body(body)]
    fut = None
    async with ch.lock:
        if confirm:
            ch.delivery_tag += 1
            fut = ch.create_future()
            ch.confirmations[ch.delivery_tag] = fut
        await ch.write_queue.put(ChannelFrame.marshall(frames=frames, channel_number=ch.number))
    return fut


class Link:
    kind = ""

    def __init__(self, sup, vhost: str, name: str, upstream: Upstream, policy: str | None):
        self.sup, self.vhost, self.name, self.up, self.policy = sup, vhost, name, upstream, policy
        self.status, self.error, self.local_connection = "starting", None, None
        self.uri = None
        self.timestamp = time.time()
        self.task: asyncio.Task | None = None
        self._conns: list = []
        self.cleanup = False            # stopped for good: delete the upstream resources

    @property
    def key(self) -> tuple:
        return (self.kind, self.vhost, self.name, self.up.name)

    def _set(self, status, error=None) -> None:
        self.status, self.error, self.timestamp = status, error, time.time()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"federation {self.key}")

    async def stop(self, cleanup: bool = False) -> None:
        self.cleanup = cleanup
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except BaseException:
                pass
        await self._close()

    async def run(self) -> None:
        while True:
            self._set("starting")
            try:
                await self._once()
                raise ConnectionError("closed")
            except asyncio.CancelledError:
                if self.cleanup and self.up.resource_cleanup_mode != "never":
                    try:
                        await asyncio.wait_for(self._cleanup(), 10)
                    except Exception:
                        pass
                raise
            except Exception as e:
                reason = _reason(e)
                log.warning("Federation %s '%s' in vhost '%s' (upstream %s): %s", self.kind, self.name, self.vhost,
                            self.up.name, reason)
                self._set("error", reason)
                await self._close()
                delay = self.up.reconnect_delay
                await asyncio.sleep(delay if isinstance(delay, (int, float)) and delay > 0 else 1)

    async def _cleanup(self) -> None:
        pass

    async def _close(self) -> None:
        conns, self._conns = self._conns, []
        await close_all(conns)

    def connection_name(self) -> str:
        if self.policy is None:
            return "Federation link"
        return f"Federation link (upstream: {self.up.name}, policy: {self.policy})"

    async def _direct(self, vhost: str):
        url = "amqp://none:none@localhost/" + quote(vhost, safe="")
        conn = aiormq.Connection(url, transport_factory=DirectTransport(self.sup.listener, self.sup.user),
                                 client_properties={"connection_name": self.connection_name()})
        await conn.connect()
        self._conns.append(conn)
        return conn

    async def _connect_upstream(self):
        """``to_params``: one URI at random; a URI without a path names the downstream vhost."""
        text = random.choice(self.up.uris)
        try:
            uri = parse_uri(text)
        except URIError as e:
            raise ConnectionError(f"invalid URI: {e}") from None
        vhost = uri.vhost if urlsplit(text).path else self.vhost
        self.uri = uri.without_credentials()
        if uri.direct:
            return await self._direct(vhost), vhost
        if not urlsplit(text).path:
            parts = urlsplit(text)
            text = parts._replace(path="/" + quote(vhost, safe="")).geturl()
        conn = aiormq.Connection(text, client_properties={"connection_name": self.connection_name()})
        await conn.connect()
        self._conns.append(conn)
        return conn, vhost

    async def _downstream(self):
        dconn = await self._direct(self.vhost)
        dch = await dconn.channel(publisher_confirms=self.up.ack_mode == "on-confirm")
        return dconn, dch

    async def _disposable(self, conn, coro_fn):
        """``disposable_channel_call``: one method on a channel of its own; a channel error
        comes back as the exception (the channel is gone either way)."""
        ch = await conn.channel()
        try:
            return await coro_fn(ch)
        finally:
            if not ch.is_closed:
                try:
                    await ch.close()
                except Exception:
                    pass

    def _watch(self, *things):
        return [asyncio.ensure_future(t.closing) for t in things]

    async def _forward(self, message, ch, dch, exchange: str, key: str, headers: dict, confirm: bool):
        """``rabbit_federation_link_util:forward`` after the forward check."""
        props = message.header.properties
        props.headers = headers
        if not self.up.trust_user_id:
            props.user_id = None
        tag = message.delivery.delivery_tag
        fut = await _publish(dch, exchange, key, props, message.body, confirm)
        if confirm:
            def done(f, tag=tag):
                ok = not f.cancelled() and f.exception() is None and isinstance(f.result(), pspec.Basic.Ack)
                frame = pspec.Basic.Ack(delivery_tag=tag) if ok else pspec.Basic.Nack(delivery_tag=tag, requeue=True)
                asyncio.ensure_future(_send(ch, frame))
            fut.add_done_callback(done)
        elif self.up.ack_mode == "on-publish":
            await _send(ch, pspec.Basic.Ack(delivery_tag=tag))

    def row(self) -> dict:
        """``rabbit_federation_status:format`` (without node / timestamp formatting)."""
        d = self.identity()
        d["status"] = self.status
        if self.status == "running":
            d["local_connection"] = self.local_connection
        elif self.status == "error":
            d["error"] = self.error
        d["uri"] = self.uri
        return d


def _reason(e) -> str:
    if isinstance(e, aiormq.exceptions.ChannelClosed) or isinstance(e, aiormq.exceptions.ConnectionClosed):
        return f"{type(e).__name__}: {e}"
    if isinstance(e, ConnectionRefusedError) or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED):
        return "econnrefused"
    cause = getattr(e, "__cause__", None) or (e.args[0] if e.args and isinstance(e.args[0], OSError) else None)
    if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        return "econnrefused"
    return str(e) or type(e).__name__


# ------------------------------------------------------------ exchanges

class ExchangeLink(Link):
    kind = "exchange"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.queue = self.int_x = None
        self.bound: dict = {}           # (key, akey) -> upstream args
        self.sync_needed = asyncio.Event()

    def identity(self) -> dict:
        return {"exchange": self.name, "upstream_exchange": self.up.exchange, "type": "exchange",
                "vhost": self.vhost, "upstream": self.up.name, "id": self.sup.link_id(self)}

    def bindings_changed(self) -> None:
        self.sync_needed.set()

    def queue_name(self, up_vhost: str) -> str:
        node = self.sup.cluster_name()
        if self.vhost == up_vhost:
            down = "" if self.name == self.up.exchange else f":{self.name}"
        else:
            down = f":{self.vhost}:{self.name}"
        return f"federation: {self.up.exchange} -> {node}{down}"

    async def _once(self) -> None:
        up = self.up
        dconn, dch = await self._downstream()
        conn, up_vhost = await self._connect_upstream()
        self.up_vhost = up_vhost
        props = conn.server_properties or {}
        cn = props.get("cluster_name")
        self.up_cluster = cn.decode() if isinstance(cn, bytes) else cn
        ch = await conn.channel()
        self.conn, self.ch = conn, ch
        cmd = ch if up.channel_use_mode == "single" else await conn.channel()
        self.cmd = cmd
        # consume_from_upstream_queue
        q = self.queue = self.queue_name(up_vhost)
        args = {}
        if up.expires is not None:
            args["x-expires"] = _long(up.expires)
        if up.message_ttl is not None:
            args["x-message-ttl"] = _long(up.message_ttl)
        if up.ha_policy is not None:
            args["x-ha-policy"] = _s(up.ha_policy)
        args["x-internal-purpose"] = _s("federation")
        await rpc(ch, pspec.Queue.Declare, lspec.QueueDeclare(queue=q, durable=True, arguments=args))
        no_ack = up.ack_mode == "no-ack"
        if not no_ack:
            await ch.basic_qos(prefetch_count=up.prefetch_count)
        confirm = up.ack_mode == "on-confirm"
        cluster = self.sup.cluster_name()

        async def on_message(message) -> None:
            headers = dict(message.header.properties.headers or {})
            if not _should_forward(headers, up.max_hops, cluster, self.vhost):
                if not no_ack:
                    await _send(ch, pspec.Basic.Ack(delivery_tag=message.delivery.delivery_tag))
                return
            info = {"uri": self.uri, "exchange": self.name, "redelivered": bool(message.delivery.redelivered)}
            if self.up_cluster is not None:
                info["cluster-name"] = self.up_cluster
            info["vhost"] = up_vhost
            _prepend(headers, "x-received-from", info)
            await self._forward(message, ch, dch, self.name, message.delivery.routing_key, headers, confirm)

        await consume(ch, q, on_message, no_ack, f"amq.ctag-federation-{id(self):x}")
        # ensure_upstream_bindings
        old = self.sup.suffixes.get(self.key[1:], "A")
        suffix = "B" if old == "A" else "A"
        self.int_x = f"{q} {suffix}"
        await self._ensure_upstream_exchange(conn)
        await self._ensure_internal_exchange(conn)
        await rpc(ch, pspec.Queue.Bind, lspec.QueueBind(queue=q, exchange=self.int_x, arguments={}))
        self.sup.suffixes[self.key[1:]] = suffix
        self.suffix = suffix
        self.bound = {}
        await self._sync()
        await self._disposable(conn, lambda c: delete_exchange(c, f"{q} {old}"))
        self.local_connection = self.connection_name()
        self._set("running")
        watch = self._watch(conn, dconn, ch, dch, cmd)
        try:
            while True:
                waiter = asyncio.ensure_future(self.sync_needed.wait())
                done, _ = await asyncio.wait([waiter, *watch], return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    break
                self.sync_needed.clear()
                await self._sync()
        finally:
            for w in watch:
                w.cancel()
        for w in watch:
            if w.done() and not w.cancelled() and w.exception() is not None:
                raise w.exception()

    async def _ensure_upstream_exchange(self, conn) -> None:
        x = self.sup.broker.vhosts[self.vhost].exchanges.get(self.name)
        try:
            await self._disposable(conn, lambda c: declare_passive(c, "exchange", self.up.exchange))
        except aiormq.exceptions.ChannelNotFoundEntity:
            if x is None:
                raise ConnectionError("downstream exchange gone") from None
            await rpc(self.ch, pspec.Exchange.Declare, lspec.ExchangeDeclare(
                exchange=self.up.exchange, type=x.type_name, durable=x.durable, auto_delete=x.auto_delete,
                internal=x.internal, arguments=dict(x.arguments)))

    async def _ensure_internal_exchange(self, conn) -> None:
        await self._disposable(conn, lambda c: delete_exchange(c, self.int_x))
        purpose = {"x-internal-purpose": _s("federation")}
        args = {"x-max-hops": _long(self.up.max_hops), "x-downstream-name": _s(self.sup.cluster_name()),
                "x-downstream-vhost": _s(self.vhost), **purpose}
        # a connection of its own: an unknown exchange type closes the connection (503)
        try:
            tmp = await self._open_like(conn)
        except Exception as e:
            raise ConnectionError(f"disposable connection: {_reason(e)}") from None
        try:
            c = await tmp.channel()
            await rpc(c, pspec.Exchange.Declare, lspec.ExchangeDeclare(
                exchange=self.int_x, type="x-federation-upstream", durable=True, auto_delete=True, internal=True,
                arguments=args))
        except aiormq.exceptions.ConnectionCommandInvalid:
            await rpc(self.ch, pspec.Exchange.Declare, lspec.ExchangeDeclare(
                exchange=self.int_x, type="fanout", durable=True, auto_delete=True, internal=True,
                arguments=purpose))
        finally:
            try:
                await asyncio.wait_for(tmp.close(), 10)
            except Exception:
                pass

    async def _open_like(self, conn):
        text = random.choice(self.up.uris)
        uri = parse_uri(text)
        if uri.direct:
            url = "amqp://none:none@localhost/" + quote(self.up_vhost, safe="")
            c = aiormq.Connection(url, transport_factory=DirectTransport(self.sup.listener, self.sup.user),
                                  client_properties={"connection_name": "Disposable exchange federation link connection"})
        else:
            parts = urlsplit(text)
            if not parts.path:
                text = parts._replace(path="/" + quote(self.up_vhost, safe="")).geturl()
            c = aiormq.Connection(text, client_properties={
                "connection_name": "Disposable exchange federation link connection"})
        await c.connect()
        return c

    # ------------------------------------------------------------ bindings

    def _desired(self) -> dict:
        v = self.sup.broker.vhosts.get(self.vhost)
        x = v.exchanges.get(self.name) if v is not None else None
        out = {}
        if x is None:
            return out
        for b in list(x.bindings.values()):
            k = (b.routing_key, b.akey)
            if k not in out:
                args = self._upstream_args(b.arguments)
                if args is not None:
                    out[k] = (b.routing_key, args)
        return out

    def _upstream_args(self, args: dict):
        """``update_binding``: the binding's arguments with an ``x-bound-from`` table prepended,
        or None to not propagate it."""
        max_hops = self.up.max_hops
        been = args.get("x-bound-from")
        if been is None:
            hops = max_hops
        else:
            items = table_plain(been) if getattr(been, "tag", "A") == "A" else None
            if not isinstance(items, list) or not items:
                hops = max_hops
            else:
                prev = items[0].get("hops") if isinstance(items[0], dict) else None
                prev = table_plain(prev)
                seen = any(isinstance(t, dict) and _text(t.get("cluster-name")) == self.up_cluster
                           and _text(t.get("vhost")) == self.up_vhost for t in items)
                hops = 0 if seen else min((prev if isinstance(prev, int) else max_hops) - 1, max_hops)
        if hops <= 0:
            return None
        info = {"cluster-name": _s(self.sup.cluster_name()), "vhost": _s(self.vhost),
                "exchange": _s(f"{self.vhost}:{self.name} {self.suffix}"), "hops": Typed("s", hops)}
        new = dict(args)
        old = args.get("x-bound-from")
        rest = list(old.value) if isinstance(old, Typed) and old.tag == "A" else []
        new["x-bound-from"] = Typed("A", [Typed("F", info), *rest])
        return new

    async def _sync(self) -> None:
        want = self._desired()
        for k in [k for k in self.bound if k not in want]:
            key, args = self.bound.pop(k)
            await rpc(self.cmd, pspec.Exchange.Unbind, lspec.ExchangeUnbind(
                destination=self.int_x, source=self.up.exchange, routing_key=key, arguments=args))
        for k, (key, args) in want.items():
            if k not in self.bound:
                await rpc(self.cmd, pspec.Exchange.Bind, lspec.ExchangeBind(
                    destination=self.int_x, source=self.up.exchange, routing_key=key, arguments=args))
                self.bound[k] = (key, args)

    async def _cleanup(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is None or conn.is_closed or self.queue is None:
            return
        await self._disposable(conn, lambda c: delete_queue(c, self.queue))
        await self._disposable(conn, lambda c: delete_exchange(c, self.int_x))


def _text(v):
    v = table_plain(v)
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _should_forward(headers: dict, max_hops: int, name: str, vhost: str) -> bool:
    """``should_forward`` over pamqp-decoded headers."""
    been = headers.get("x-received-from")
    if not isinstance(been, list):
        return True
    return should_forward({"x-received-from": Typed("A", been)}, max_hops, name, vhost)


def _prepend(headers: dict, name: str, table: dict) -> None:
    """``rabbit_basic:prepend_table_header``."""
    old = headers.get(name)
    headers[name] = [table] + (list(old) if isinstance(old, list) else [])


# ------------------------------------------------------------ queues

class QueueLink(Link):
    kind = "queue"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.consuming = False
        self.wake = asyncio.Event()
        self._check_pending = False

    def poke(self) -> None:
        """The local queue's watcher: re-check once this turn of the loop is over."""
        if not self._check_pending:
            self._check_pending = True
            asyncio.get_running_loop().call_soon(self._check)

    def _check(self) -> None:
        self._check_pending = False
        if self._wants() != self.consuming:
            self.wake.set()

    def identity(self) -> dict:
        return {"queue": self.name, "upstream_queue": self.up.queue, "consumer_tag": self.up.consumer_tag,
                "type": "queue", "vhost": self.vhost, "upstream": self.up.name, "id": self.sup.link_id(self)}

    def _local(self):
        v = self.sup.broker.vhosts.get(self.vhost)
        return v.queues.get(self.name) if v is not None else None

    def _wants(self) -> bool:
        """Empty, with an active consumer of priority >= 0 (``consumer_state_changed``)."""
        q = self._local()
        if q is None or q.message_count:
            return False
        return any(c.priority >= 0 and c.can_take() for c in q.consumers)

    async def _once(self) -> None:
        up = self.up
        dconn, dch = await self._downstream()
        conn, up_vhost = await self._connect_upstream()
        caps = (conn.server_properties or {}).get("capabilities") or {}
        if not caps.get("consumer_priorities"):
            raise ConnectionError("upstream_lacks_consumer_priorities")
        ch = await conn.channel()
        self.conn = conn
        local = self._local()
        if local is None:
            raise ConnectionError("downstream queue gone")
        try:
            await self._disposable(conn, lambda c: declare_passive(c, "queue", up.queue))
        except aiormq.exceptions.ChannelNotFoundEntity:
            await rpc(ch, pspec.Queue.Declare, lspec.QueueDeclare(
                queue=up.queue, durable=local.durable, auto_delete=local.auto_delete,
                arguments=dict(local.arguments)))
        no_ack = up.ack_mode == "no-ack"
        if not no_ack:
            await ch.basic_qos(prefetch_count=up.prefetch_count)
        confirm = up.ack_mode == "on-confirm"
        table = {"uri": self.uri, "queue": self.name}

        async def on_message(message) -> None:
            d = message.delivery
            headers = dict(message.header.properties.headers or {})
            been = headers.get("x-received-from")
            if not isinstance(been, list):
                headers["x-original-exchange"] = d.exchange
                headers["x-original-routing-key"] = d.routing_key
                count = 0
            else:
                match = [t for t in been if isinstance(t, dict) and
                         all(t.get(k) == table.get(k) for k in ("uri", "virtual_host", "queue"))]
                rest = [t for t in been if not any(t is m for m in match)]
                count = match[0].get("visit-count", 0) if match else 0
                headers["x-received-from"] = rest
                count = count if isinstance(count, int) else 0
            if "CC" in headers:
                headers = {("x-original-cc" if k == "CC" else k): v for k, v in headers.items()}
            _prepend(headers, "x-received-from", {**table, "redelivered": bool(d.redelivered),
                                                  "visit-count": count + 1})
            await self._forward(message, ch, dch, "", self.name, headers, confirm)

        self.local_connection = self.connection_name()
        self._set("running")
        watch = self._watch(conn, dconn, ch, dch)
        self.consuming = False
        local.watch(self.poke)
        try:
            while not any(w.done() for w in watch):
                self.wake.clear()
                want = self._wants()
                if want and not self.consuming:
                    self.consuming = True
                    await consume(ch, up.queue, on_message, no_ack, up.consumer_tag, {"x-priority": _long(-1)})
                elif not want and self.consuming:
                    self.consuming = False
                    await ch.basic_cancel(up.consumer_tag)
                waiter = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait([waiter, *watch], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            local.watch(self.poke, on=False)
            self.consuming = False
            for w in watch:
                w.cancel()
        for w in watch:
            if w.done() and not w.cancelled() and w.exception() is not None:
                raise w.exception()
