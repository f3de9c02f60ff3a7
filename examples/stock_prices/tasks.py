"""The Celery app of the stock-price example: a beat schedule and the task that publishes ticks.

Celery beat sends ``stocks.publish_tick(market, symbol)`` for every symbol every
``TICK_INTERVAL`` seconds (default 1.0) to the Celery queue 'stock.ticks'; a worker runs it,
moves the symbol's price one random step and publishes the tick to the durable topic exchange
'prices' with routing key ``stock.<market>.<symbol>``, through Celery's own broker connection
pool (kombu). Subscribers bind whatever patterns they want (subscriber.py).

Configuration: ``AMQP_URL`` (Celery's broker, default ``amqp://guest:guest@localhost:5672/%2F``;
``amqp://`` is Celery's py-amqp transport, the same as ``pyamqp://``), ``EXAMPLE_PREFIX``
(prepended to the queue and exchange names), ``TICK_INTERVAL`` (seconds).
"""
from __future__ import annotations

import os
import random
import time

from celery import Celery
from kombu import Exchange

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
PREFIX = os.environ.get("EXAMPLE_PREFIX", "")
TICK_INTERVAL = float(os.environ.get("TICK_INTERVAL", "1.0"))
SYMBOLS = {("nasdaq", "AAPL"): 190.0, ("nasdaq", "MSFT"): 410.0, ("nyse", "IBM"): 170.0, ("xetra", "SAP"): 180.0}

PRICES = Exchange(PREFIX + "prices", type="topic", durable=True)

app = Celery("stock_prices", broker=URL)
app.conf.update(
    task_default_queue=PREFIX + "stock.ticks",
    task_default_exchange=PREFIX + "stock.ticks",
    task_default_routing_key="stock.ticks",
    task_ignore_result=True,               # ticks go to subscribers, not to a result backend
    task_expires=TICK_INTERVAL * 5,        # a tick nobody ran in time is stale: drop it
    worker_enable_remote_control=False,    # no pidbox exchange: the example declares only its own names
    broker_connection_retry_on_startup=True,
    beat_scheduler="celery.beat:Scheduler",  # in memory: no celerybeat-schedule file (worker.py passes it on)
    beat_schedule={f"tick-{market}-{symbol}": {"task": "stocks.publish_tick", "schedule": TICK_INTERVAL,
                                               "args": (market, symbol)}
                   for market, symbol in SYMBOLS},
)

_prices = dict(SYMBOLS)
_sequence = {key: 0 for key in SYMBOLS}


@app.task(name="stocks.publish_tick", bind=True)
def publish_tick(self, market: str, symbol: str) -> dict:
    """One price tick: a random step of at most 1 %, published to 'prices'."""
    key = (market, symbol)
    if key not in _prices:
        raise ValueError(f"unknown symbol {market}.{symbol}")
    _prices[key] = round(max(0.01, _prices[key] * (1 + random.uniform(-0.01, 0.01))), 2)
    _sequence[key] += 1
    tick = {"market": market, "symbol": symbol, "price": _prices[key], "seq": _sequence[key],
            "ts": time.time(), "task_id": self.request.id}
    with app.producer_or_acquire() as producer:
        producer.publish(tick, exchange=PRICES, routing_key=f"stock.{market}.{symbol}",
                         serializer="json", declare=[PRICES], delivery_mode="transient", retry=True)
    return tick
