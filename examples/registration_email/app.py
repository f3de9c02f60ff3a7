#!/usr/bin/env python
"""The web app: POST /register records the user and queues a welcome mail; it never talks SMTP.

Sending mail in the request would make sign-up as slow and as fragile as the mail provider.
Instead the handler publishes one persistent JSON message to the durable 'registrations' queue
with pika (publisher confirms + mandatory: the 202 is only returned once the broker has the
message) and returns at once; worker.py sends the mail.

  POST /register {"email": "alice@example.com", "name": "Alice"}
    202 {"user_id": "...", "status": "welcome mail queued"}
    409 when the address is registered already, 422 for a malformed body,
    503 when the broker cannot take the message (the registration is not kept then)
  GET /users  the registered users

pika's BlockingConnection is not thread-safe and FastAPI runs plain ``def`` handlers in a thread
pool, so one lock guards the connection; a connection that went away (broker restart, missed
heartbeats while idle) is reopened once per publish.

Usage: app.py [--url URL] [--prefix P] [--host 127.0.0.1] [--port 8000]
"""
import json
import sys
import threading
import uuid
from contextlib import asynccontextmanager

import pika
import pika.exceptions
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from common import QUEUE, parser


class Registration(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    name: str = Field(min_length=1, max_length=100)


class Publisher:
    """One confirmed channel, used under a lock, reopened when it has gone away."""

    def __init__(self, url: str, queue: str):
        self.url, self.queue = url, queue
        self.lock = threading.Lock()
        self.connection = self.channel = None

    def _open(self) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.connection.channel()
        self.channel.queue_declare(self.queue, durable=True)
        self.channel.confirm_delivery()

    def publish(self, body: bytes, message_id: str) -> None:
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                          message_id=message_id)
        with self.lock:
            for attempt in (1, 2):
                try:
                    if self.channel is None or not self.channel.is_open:
                        self._open()
                    # Raises UnroutableError / NackError unless the queue has the message.
                    self.channel.basic_publish("", self.queue, body, properties, mandatory=True)
                    return
                except pika.exceptions.AMQPError:
                    self._close()
                    if attempt == 2:
                        raise

    def _close(self) -> None:
        if self.connection is not None and self.connection.is_open:
            try:
                self.connection.close()
            except pika.exceptions.AMQPError:
                pass
        self.connection = self.channel = None

    def close(self) -> None:
        with self.lock:
            self._close()


def create_app(url: str, queue: str) -> FastAPI:
    publisher = Publisher(url, queue)
    users: dict[str, dict] = {}  # email -> user; a real app has a database here

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        publisher._open()  # fail at start-up, not at the first request, when the broker is unreachable
        yield
        publisher.close()

    app = FastAPI(title="registration", lifespan=lifespan)

    @app.post("/register", status_code=202)
    def register(registration: Registration) -> dict:
        email = registration.email.lower()
        if email in users:
            raise HTTPException(409, f"{email} is registered already")
        user = {"user_id": uuid.uuid4().hex, "email": email, "name": registration.name}
        try:
            publisher.publish(json.dumps(user).encode(), user["user_id"])
        except pika.exceptions.AMQPError as exc:
            raise HTTPException(503, f"could not queue the welcome mail: {exc!r}") from None
        users[email] = user
        print(f" [x] Registered {email}, welcome mail queued", flush=True)
        return {"user_id": user["user_id"], "status": "welcome mail queued"}

    @app.get("/users")
    def list_users() -> list[dict]:
        return list(users.values())

    return app


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    uvicorn.run(create_app(args.url, args.prefix + QUEUE), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
