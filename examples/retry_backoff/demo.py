"""Demo: three jobs, one failing twice and one failing three times, come back after 100, 200
and 400 ms through the TTL retry queues; a job that always fails is parked.
Run it with ``python examples/run.py retry_backoff [--url URL]``."""
QUEUES = ("work", "work.parking", "work.retry.1", "work.retry.2", "work.retry.3")
EXCHANGES = ()


def demo(d):
    d.say("the worker declares work, work.retry.1..3 (TTL 100/200/400 ms) and work.parking")
    worker = d.start("worker.py", "--base-delay-ms", "100", "--max-attempts", "4", "--max-jobs", "4",
                     ready="Waiting for jobs")
    d.say("publish: ok (never fails), twice (fails 2 times), thrice (3 times), doomed (always)")
    d.run("producer.py", "ok", "twice:2", "thrice:3", "doomed:always")
    worker.expect("thrice attempt 4")
    worker.expect("parked in " + d.name("work.parking"))
    worker.finish()
