#!/usr/bin/env bash
# A/B of broker variants (two trees, or one tree with different environment) on one amqpbench
# scenario, runs interleaved. Each variant is NAME:PORT:ENV:SRC — ENV is space-separated VAR=value
# (use X=1 for none), SRC the src/ directory put first on PYTHONPATH (another tree, e.g. a
# `git worktree add /tmp/base HEAD~1`). A variant named `rabbitmq` is the running RabbitMQ on PORT.
# Usage: bench/ab.sh REPS SCENARIO VARIANT [VARIANT ...]
#   bench/ab.sh 3 ack-prefetch100-1KB "base:5691:X=1:/tmp/base/src" "new:5692:X=1:$PWD/src"
# Prints: name, deliveries/s (or conn/s), broker cores, other cores, lost, duplicated, p50, p99.
set -uo pipefail
reps=$1; sc=$2; shift 2
cd "$(dirname "$0")/.."
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
for v in "$@"; do
  IFS=: read -r name port envs src <<< "$v"
  [ "$name" = rabbitmq ] && continue
  d=$(mktemp -d)
  # shellcheck disable=SC2086
  env $envs PYTHONPATH="$src" .venv/bin/python -m leveret serve --port "$port" --data-dir "$d" \
      --log-level WARNING > "/tmp/ab-$name.log" 2>&1 &
  pids+=($!)
done
sleep 2
for _ in $(seq 1 "$reps"); do
  for v in "$@"; do
    IFS=: read -r name port envs src <<< "$v"
    pid=$(pgrep -f "port $port " | head -1)
    [ "$name" = rabbitmq ] && pid=$(pgrep -o beam.smp)
    python3 ../shared/bench/amqpbench.py --scenario "$sc" --uri "amqp://guest:guest@127.0.0.1:$port/%2F" \
        --label "$name" --broker-pid "$pid" | python3 -c "
import json, sys
d = json.load(sys.stdin); l = d['latency_ms']
print('$name', d.get('received_rate') or d.get('conn_rate'), d['cpu']['broker_cores'], d['cpu']['other_cores'],
      d.get('lost'), d.get('duplicated'), l.get('p50'), l.get('p99'))"
  done
done
