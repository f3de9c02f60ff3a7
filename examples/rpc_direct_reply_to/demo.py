"""Demo: two fib servers, one client sending five requests at once over direct reply-to; the
replies come back out of order and are matched by correlation id.
Run it with ``python examples/run.py rpc_direct_reply_to [--url URL]``."""
QUEUES = ("rpc.fib",)
EXCHANGES = ()


def demo(d):
    for n in (1, 2):
        d.start("server.py", ready="Awaiting RPC requests", label=f"server{n}")
    d.say("the client consumes amq.rabbitmq.reply-to and sends fib(28), fib(1), fib(10), fib(20), fib(5)")
    d.run("client.py", "--timeout", "10", "28", "1", "10", "20", "5")
