"""The order service tested with Leveret's fixtures only: ``leveret_url`` is a fresh vhost for
each test, so every test declares the same names and never sees another's messages."""
from __future__ import annotations

import asyncio
import json

import pika
import pytest

from orders import EXCHANGE, FAILED, ORDERS, OrderDesk, Warehouse, declare


def _shipped_listener(url: str):
    """A pika channel and queue receiving every ``order.shipped`` event."""
    c = pika.BlockingConnection(pika.URLParameters(url))
    ch = c.channel()
    declare(ch)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, EXCHANGE, "order.shipped")
    return c, ch, q


def test_an_order_placed_waits_in_the_warehouse_queue(leveret_url):
    desk = OrderDesk(leveret_url)
    desk.place("A-1", {"book": 1})
    method, props, body = desk.channel.basic_get(ORDERS, auto_ack=True)
    assert json.loads(body) == {"id": "A-1", "items": {"book": 1}}
    assert props.message_id == "A-1" and props.delivery_mode == 2
    assert method.routing_key == "order.placed" and method.message_count == 0
    desk.close()


def test_every_test_starts_with_an_empty_broker(leveret_url):
    # the orders placed by other tests are in their own vhosts: this queue holds only these two
    desk = OrderDesk(leveret_url)
    desk.place("B-1", {"pen": 2})
    desk.place("B-2", {"pen": 2})
    assert desk.channel.queue_declare(ORDERS, passive=True).method.message_count == 2
    desk.close()


async def test_the_warehouse_ships_what_it_has_and_dead_letters_the_rest(leveret_url):
    listener, ch, shipped_q = _shipped_listener(leveret_url)
    desk = OrderDesk(leveret_url)
    desk.place("C-1", {"lamp": 1})
    desk.place("C-2", {"lamp": 5})       # more than in stock
    desk.place("C-3", {"lamp": 1})
    warehouse = Warehouse(leveret_url, {"lamp": 2})
    await asyncio.wait_for(warehouse.run(count=3), timeout=30)
    assert warehouse.shipped == ["C-1", "C-3"] and warehouse.stock == {"lamp": 0}
    events = []
    for _ in range(2):
        method, _, body = ch.basic_get(shipped_q, auto_ack=True)
        events.append(json.loads(body)["id"])
    assert events == ["C-1", "C-3"]
    method, props, body = ch.basic_get(FAILED, auto_ack=True)
    assert json.loads(body)["id"] == "C-2"
    death = props.headers["x-death"][0]
    assert death["reason"] == "rejected" and death["queue"] == ORDERS
    desk.close()
    listener.close()


@pytest.mark.parametrize("n", [1, 2])
async def test_queue_names_are_free_in_every_test(leveret_url, n):
    warehouse = Warehouse(leveret_url, {"x": n})
    desk = await asyncio.to_thread(OrderDesk, leveret_url)
    await asyncio.to_thread(desk.place, f"D-{n}", {"x": n})
    await asyncio.wait_for(warehouse.run(count=1), timeout=30)
    assert warehouse.shipped == [f"D-{n}"]
    await asyncio.to_thread(desk.close)
