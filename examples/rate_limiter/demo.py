"""Demo: 12 requests arrive at once at a limiter allowing 10/s with a burst of 5: the first 5 pass,
the excess takes trips through the TTL delay queue and is processed at the rate.
Run it with ``python examples/run.py rate_limiter [--url URL]``."""
QUEUES = ("api.requests", "api.requests.delay", "api.requests.rejected")
EXCHANGES = ()


def demo(d):
    limiter = d.start("limiter.py", "--rate", "10", "--burst", "5", "--retry-delay-ms", "200",
                      "--max-retries", "50", "--max-requests", "12", ready="Waiting for requests")
    d.run("client.py", "--count", "12")
    limiter.finish(timeout=30)
