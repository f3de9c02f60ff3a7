"""``leveret perf``: an AMQP 0-9-1 throughput / latency / correctness tester.

Like RabbitMQ's PerfTest or LavinMQ's lavinmqperf, it runs against any broker
URL (Leveret, RabbitMQ, ...). It speaks AMQP itself over raw sockets, with
pre-encoded frames and producers and consumers in separate forked processes,
so that the tool is not the bottleneck. Usage and output: docs/perf.md.

Modules: :mod:`.run` (options, orchestration, report), :mod:`.wire` (URI,
handshake, RPCs), :mod:`.producer`, :mod:`.consumer`, :mod:`.churn` (worker
processes), :mod:`.stats` (histograms, confirm and loss accounting).
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    from .run import main as run_main
    return run_main(argv)
