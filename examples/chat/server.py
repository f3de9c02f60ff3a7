#!/usr/bin/env python
"""A real-time chat backend: WebSocket clients in rooms, rooms are topics of the 'chat' exchange.

A client connects to ``ws://HOST:PORT/rooms/<room>?user=<name>``. For that connection the server
opens an AMQP channel and an exclusive, auto-delete, server-named queue bound to the durable
topic exchange 'chat' with ``room.<room>.*``, and forwards everything arriving there to the
socket as JSON text frames. What the client sends (text frames) is published with routing key
``room.<room>.<user>``:

  {"type": "join",    "room": "lobby", "user": "bob",   "server": "s2"}
  {"type": "message", "room": "lobby", "user": "alice", "server": "s1", "text": "hello"}
  {"type": "leave",   "room": "lobby", "user": "bob",   "server": "s2"}

The exchange, not the server, fans messages out, so any number of server processes can share
the rooms: a client on one server talks with clients on another. Each client sees its own join
first (its queue is bound before the join is published) and its own messages echoed.

Room and user names are 1-32 letters, digits, '_' or '-' (they become routing-key words: a '.',
'*' or '#' would change the routing); anything else closes the socket with 1008 and the reason.

Usage: server.py [--url URL] [--prefix P] [--host 127.0.0.1] [--port 8765] [--name s1] [--timeout S]
"""
import argparse
import asyncio
import json
import os
import re
import sys
from urllib.parse import parse_qs, urlsplit

import aio_pika
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_TEXT = 4096


def parse_path(path: str) -> tuple[str, str]:
    """(room, user) of ``/rooms/<room>?user=<name>``; ValueError with the reason otherwise."""
    parts = urlsplit(path)
    m = re.fullmatch(r"/rooms/([^/]*)", parts.path)
    user = parse_qs(parts.query).get("user", [""])[0]
    if not m:
        raise ValueError("connect to /rooms/<room>?user=<name>")
    if not (NAME.fullmatch(m.group(1)) and NAME.fullmatch(user)):
        raise ValueError("room and user: 1-32 letters, digits, '_' or '-'")
    return m.group(1), user


class ChatServer:
    def __init__(self, amqp: aio_pika.abc.AbstractRobustConnection, exchange_name: str, name: str):
        self.amqp, self.exchange_name, self.name = amqp, exchange_name, name

    async def handle(self, ws: ServerConnection) -> None:
        try:
            room, user = parse_path(ws.request.path)
        except ValueError as exc:
            await ws.close(1008, str(exc))
            return
        channel = await self.amqp.channel()
        try:
            exchange = await channel.get_exchange(self.exchange_name, ensure=False)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await queue.bind(exchange, routing_key=f"room.{room}.*")

            async def forward(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    try:
                        await ws.send(message.body.decode())
                    except ConnectionClosed:
                        pass  # the client left; its queue goes with the channel

            await queue.consume(forward)

            async def publish(kind: str, **extra) -> None:
                event = {"type": kind, "room": room, "user": user, "server": self.name, **extra}
                await exchange.publish(aio_pika.Message(json.dumps(event).encode(), content_type="application/json"),
                                       routing_key=f"room.{room}.{user}")

            await publish("join")
            print(f" [+] {user} joined {room}", flush=True)
            try:
                async for text in ws:
                    if isinstance(text, bytes) or len(text) > MAX_TEXT:
                        await ws.close(1003, f"text frames of at most {MAX_TEXT} characters only")
                        break
                    await publish("message", text=text)
            except ConnectionClosed:
                pass
            await publish("leave")
            print(f" [-] {user} left {room}", flush=True)
        finally:
            await channel.close()  # cancels the consumer: the auto-delete queue goes away


async def run(args) -> None:
    amqp = await aio_pika.connect_robust(args.url)
    async with amqp:
        channel = await amqp.channel()
        exchange_name = args.prefix + "chat"
        await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        chat = ChatServer(amqp, exchange_name, args.name)
        async with serve(chat.handle, args.host, args.port) as server:
            port = server.sockets[0].getsockname()[1]
            print(f" [*] Chat server {args.name} on ws://{args.host}:{port}/rooms/<room>?user=<name> "
                  f"(exchange {exchange_name})", flush=True)
            await asyncio.sleep(args.timeout if args.timeout is not None else float("inf"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--prefix", default=os.environ.get("EXAMPLE_PREFIX", ""))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="WebSocket port (0: any free port)")
    parser.add_argument("--name", default="s1", help="this server's name, carried in every event")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
