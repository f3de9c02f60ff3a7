"""Leveret inside an asyncio application: the broker runs on the application's own event loop,
and the application publishes to it and consumes from it with aio-pika."""
import asyncio

import aio_pika

from leveret import Broker, Settings


async def main() -> None:
    async with Broker(Settings(port=0)) as broker:        # port 0: any free port
        print("broker listening at", broker.url)
        connection = await aio_pika.connect(broker.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("greetings")
            await channel.default_exchange.publish(
                aio_pika.Message(b"hello from the same process"), routing_key="greetings")
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():         # acks when the block ends
                        print("received:", message.body.decode())
                    break
    print("broker stopped")


asyncio.run(main())
