"""Leveret's metric families against RabbitMQ 3.10.8's: every family Leveret produces on
/metrics, /metrics/per-object and /metrics/detailed has RabbitMQ's name, type, HELP text and
label names (but the differences listed below, which docs/operations.md lists too), and Leveret
produces every family RabbitMQ has except those in ABSENT. RabbitMQ's families were recorded
into tests/data/prometheus/rabbitmq-3.10.8.json by tools/record_prometheus.py (the same
traffic as here). Against RabbitMQ itself the test compares the live node with its recording."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .scrape import ENDPOINTS, describe, families, fetch, traffic

RECORDED = json.loads((Path(__file__).parent.parent / "data" / "prometheus" / "rabbitmq-3.10.8.json").read_text())

# RabbitMQ families Leveret does not produce (without the rabbitmq_ / rabbitmq_detailed_ prefix);
# plus every erlang_vm_*, erlang_mnesia_* and telemetry_* family
ABSENT = {
    # Erlang VM and process internals
    "erlang_processes_used", "erlang_processes_limit", "erlang_gc_runs_total", "erlang_gc_reclaimed_bytes_total",
    "erlang_scheduler_context_switches_total", "erlang_scheduler_run_queue", "erlang_net_ticktime_seconds",
    "queue_process_reductions_total", "channel_process_reductions_total", "connection_process_reductions_total",
    "queue_process_memory_bytes",
    # RabbitMQ's persister and schema database
    "io_read_ops_total", "io_read_bytes_total", "io_write_ops_total", "io_write_bytes_total", "io_sync_ops_total",
    "io_seek_ops_total", "io_reopen_ops_total", "schema_db_ram_tx_total", "schema_db_disk_tx_total",
    "msg_store_read_total", "msg_store_write_total", "queue_index_read_ops_total", "queue_index_write_ops_total",
    "io_read_time_seconds_total", "io_write_time_seconds_total", "io_sync_time_seconds_total",
    "io_seek_time_seconds_total", "queue_disk_reads_total", "queue_disk_writes_total",
    # Raft (Leveret's quorum queues have no Raft log)
    "raft_term_total", "raft_log_snapshot_index", "raft_log_last_applied_index", "raft_log_commit_index",
    "raft_log_last_written_index", "raft_entry_commit_latency_seconds",
    # not counted by Leveret
    "auth_attempts_total", "auth_attempts_succeeded_total", "auth_attempts_failed_total",
    "auth_attempts_detailed_total", "auth_attempts_detailed_succeeded_total", "auth_attempts_detailed_failed_total",
    "queue_consumer_capacity", "queue_consumer_utilisation", "queue_messages_persistent",
    "queue_messages_persistent_bytes", "queue_messages_bytes", "queue_messages_unacked_bytes",
    "queue_head_message_timestamp", "queue_messages_published_total",
    "global_messages_dead_lettered_confirmed_total", "global_messages_dead_lettered_delivery_limit_total",
    "global_messages_dead_lettered_expired_total", "global_messages_dead_lettered_maxlen_total",
    "global_messages_dead_lettered_rejected_total",
}
# label names that differ: name (without prefix) -> (RabbitMQ's, Leveret's)
_PER_CHANNEL = {n: (["channel", "exchange", "vhost"], ["channel"]) for n in (
    "channel_messages_published_total", "channel_messages_confirmed_total",
    "channel_messages_unroutable_returned_total", "channel_messages_unroutable_dropped_total")}
_PER_CHANNEL.update({n: (["channel", "queue", "vhost"], ["channel"]) for n in (
    "channel_get_ack_total", "channel_get_total", "channel_messages_delivered_ack_total",
    "channel_messages_delivered_total", "channel_messages_redelivered_total", "channel_messages_acked_total",
    "channel_get_empty_total")})
LABELS_DIFFER = {
    "build_info": (["erlang_version", "prometheus_client_version", "prometheus_plugin_version", "rabbitmq_version"],
                   ["product_name", "product_version", "prometheus_client_version", "prometheus_plugin_version",
                    "rabbitmq_version"]),
    "identity_info": (["rabbitmq_cluster", "rabbitmq_cluster_permanent_id", "rabbitmq_node"],
                      ["rabbitmq_cluster", "rabbitmq_node"]),
}


def _base(name: str) -> str:
    for p in ("rabbitmq_detailed_", "rabbitmq_cluster_", "rabbitmq_"):
        if name.startswith(p):
            return name[len(p):]
    return name


def _absent(name: str) -> bool:
    return name.startswith(("erlang_vm_", "erlang_mnesia_", "telemetry_")) or _base(name) in ABSENT


@pytest.fixture(scope="module")
def scraped(broker_url, metrics_base, on_rabbitmq):
    with traffic(broker_url, wait=12 if on_rabbitmq else 0):
        return {name: describe(families(fetch(metrics_base, path))) for name, path in ENDPOINTS.items()}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_families_match_rabbitmq(scraped, endpoint, on_rabbitmq):
    theirs, ours = RECORDED["endpoints"][endpoint], scraped[endpoint]
    expected = set(theirs) if on_rabbitmq else {n for n in theirs if not _absent(n)}
    assert set(ours) == expected, (sorted(set(ours) - expected), sorted(expected - set(ours)))
    for name, d in ours.items():
        r = theirs[name]
        assert (d["type"], d["help"]) == (r["type"], r["help"]), name
        rabbit_labels, leveret_labels = LABELS_DIFFER.get(_base(name), (r["labels"], r["labels"]))
        if endpoint != "metrics" and _base(name) in _PER_CHANNEL:
            rabbit_labels, leveret_labels = _PER_CHANNEL[_base(name)]
        assert r["labels"] == rabbit_labels, name
        if on_rabbitmq and bool(r["labels"]) != bool(d["labels"]):
            # a family that had no samples when recorded (e.g. raft metrics without a quorum
            # queue) has no labels there, and the live RabbitMQ may have samples now; or the
            # other way round: a fresh node has no telemetry_scrape_* samples for an endpoint
            # before its first scrape
            continue
        assert d["labels"] == (rabbit_labels if on_rabbitmq else leveret_labels), name
