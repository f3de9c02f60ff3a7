#!/usr/bin/env bash
# Alternating Leveret-vs-RabbitMQ runs of ../shared/bench/amqpbench.py scenarios.
# Usage: bench/compare.sh OUT.jsonl REPS SCENARIO [SCENARIO ...]
# Needs RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-conformance starts one) and starts its own
# `leveret serve` on port 5699. Prints `amqpbench.py summarize` at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; reps=$2; shift 2
bench=../shared/bench/amqpbench.py
py=.venv/bin/python
data=$(mktemp -d)
$py -m leveret serve --port 5699 --data-dir "$data" --log-level WARNING &
lpid=$!
trap 'kill $lpid 2>/dev/null; wait $lpid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/5699) 2>/dev/null && break; sleep 0.1; done
rpid=$(pgrep -o beam.smp)
for i in $(seq 1 "$reps"); do
  for sc in "$@"; do
    python3 $bench --scenario "$sc" --uri amqp://guest:guest@127.0.0.1:5672/%2F --label rabbitmq --broker-pid "$rpid" >> "$out"
    python3 $bench --scenario "$sc" --uri amqp://guest:guest@127.0.0.1:5699/%2F --label leveret --broker-pid "$lpid" >> "$out"
  done
done
python3 $bench summarize "$out"
