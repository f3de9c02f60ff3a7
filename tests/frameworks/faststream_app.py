"""The FastStream application of test_faststream.py, run by ``faststream run faststream_app:app``.

A two-stage pipeline (``<prefix>in`` -> ``<prefix>mid`` -> ``<prefix>out``, each stage a
subscriber whose return value its publisher sends on), a topic-exchange subscriber
(``<prefix>events`` with binding key ``order.*``, forwarding to ``<prefix>out``) and an RPC
responder on ``<prefix>rpc`` (the return value goes to the request's ``reply_to``).
"""
from __future__ import annotations

import os

from faststream import FastStream
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue

PREFIX = os.environ.get("LEVERET_FW_PREFIX", "fw.")
broker = RabbitBroker(os.environ.get("LEVERET_FW_URL", "amqp://guest:guest@127.0.0.1:5672/"))
app = FastStream(broker)


@broker.subscriber(RabbitQueue(f"{PREFIX}in"))
@broker.publisher(f"{PREFIX}mid")
async def parse(body: dict) -> dict:
    return {**body, "stages": body.get("stages", []) + ["parse"]}


@broker.subscriber(RabbitQueue(f"{PREFIX}mid"))
@broker.publisher(f"{PREFIX}out")
async def enrich(body: dict) -> dict:
    return {**body, "stages": body["stages"] + ["enrich"], "total": sum(body["items"])}


@broker.subscriber(RabbitQueue(f"{PREFIX}orders", routing_key="order.*"),
                   RabbitExchange(f"{PREFIX}events", type=ExchangeType.TOPIC))
@broker.publisher(f"{PREFIX}out")
async def on_order(body: dict) -> dict:
    return {**body, "stages": ["order-event"]}


@broker.subscriber(RabbitQueue(f"{PREFIX}rpc"))
async def square(body: dict) -> dict:
    return {"square": body["n"] ** 2}
