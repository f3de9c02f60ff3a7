#!/usr/bin/env python3
"""Record what ``rabbitmqctl`` and ``rabbitmq-diagnostics`` print, scenario by scenario.

Runs each scenario below against the local RabbitMQ node (``rabbitmqctl`` on PATH, as root or
the rabbitmq user) and writes ``tests/data/rabbitmqctl/<scenario>.json``: every step's argv,
stdin, stdout, stderr and exit code. ``tests/test_ctl.py`` replays the same steps with
``leveret ctl`` against a fresh Leveret broker and compares.

Scenarios mix command lines with AMQP work (queues, messages, consumers, kept connections;
``tests/ctl_steps.py``), run with pika: use the venv's Python.

The node may be shared: every object a scenario creates is named ``lvctl.*``; the
script deletes them before and after each scenario and touches nothing else. Listing steps
(``"rows": true``) keep only rows about ``lvctl.*`` objects, the ``guest`` user and the ``/``
vhost (the objects a fresh Leveret broker has too), so other users of the node do not leak
into the fixtures.

    /work/main/.venv/bin/python tools/capture_rabbitmqctl.py            # all scenarios
    /work/main/.venv/bin/python tools/capture_rabbitmqctl.py users      # one
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from ctl_steps import AmqpSession  # noqa: E402  (the AMQP steps, shared with tests/test_ctl.py)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "rabbitmqctl")
USERS = ("lvctl.u1", "lvctl.u2", "lvctl.u3", "lvctl.u4")
VHOSTS = ("lvctl.vh1", "lvctl.vh2", "lvctl.vh3", "lvctl.vh4", "lvctl.vh5", "lvctl.vh6")


def step(*argv: str, stdin: str | None = None, rows: bool = False, tool: str = "rabbitmqctl",
         keep: str | None = None, shape: bool = False) -> dict:
    """A command line. ``rows``: a listing (compared in any row order; rows of other users of
    the node dropped); ``keep``: keep only listing rows matching this regular expression
    (``"ports"``: rows naming a local port of this scenario's AMQP connections); ``shape``: the
    output's values cannot match (pids, timings, memory): compared by the test's own rules."""
    d = {"argv": list(argv), "stdin": stdin, "rows": rows}
    if tool != "rabbitmqctl":
        d["tool"] = tool
    if keep:
        d["keep"] = keep
    if shape:
        d["shape"] = True
    return d


def diag(*argv: str, **kw) -> dict:
    return step(*argv, tool="rabbitmq-diagnostics", **kw)


def amqp(conn: str, vhost: str, *actions) -> dict:
    """AMQP work on the kept connection ``conn`` (tests/ctl_steps.py)."""
    return {"amqp": conn, "vhost": vhost, "actions": [list(a) for a in actions]}


V1 = ("-p", "lvctl.vh1")


SCENARIOS: dict[str, list[dict]] = {
    "users": [
        step("add_user", "lvctl.u1", "secret"),
        step("add_user", "lvctl.u1", "secret"),                      # user_already_exists: 70
        step("add_user", "lvctl.u2"),                                # no password, no stdin: 65
        step("add_user", "lvctl.u2", stdin="pw2\n"),                 # password from stdin
        step("add_user", "lvctl.u3", ""),                            # no password (blank)
        step("add_user", "-q", "lvctl.u4", "pw4"),
        step("list_users", rows=True),
        step("list_users", "--no-table-headers", rows=True),
        step("list_users", "-q", rows=True),
        step("list_users", "-s", rows=True),
        step("list_users", "--formatter", "json", rows=True),
        step("list_users", "--formatter", "csv", rows=True),
        step("authenticate_user", "lvctl.u1", "secret"),
        step("authenticate_user", "-q", "lvctl.u1", "secret"),
        step("authenticate_user", "lvctl.u1", "wrong"),              # 65
        step("authenticate_user", "lvctl.nouser", "secret"),
        step("authenticate_user", "lvctl.u2", stdin="pw2\n"),
        step("authenticate_user", "lvctl.u3", ""),                   # blank password
        step("authenticate_user", "lvctl.u3", "x"),
        step("set_user_tags", "lvctl.u1", "administrator", "monitoring"),
        step("set_user_tags", "lvctl.u2", "foo,bar"),
        step("set_user_tags", "lvctl.u3"),
        step("set_user_tags", "lvctl.nouser", "administrator"),      # 67
        step("list_users", rows=True),
        step("list_users", "--formatter", "json", rows=True),
        step("list_users", "--formatter", "csv", rows=True),
        step("change_password", "lvctl.u1", "newpw"),
        step("authenticate_user", "lvctl.u1", "newpw"),
        step("authenticate_user", "lvctl.u1", "secret"),
        step("change_password", "lvctl.nouser", "newpw"),            # 67
        step("change_password", "lvctl.u1"),                         # no password: 70
        step("change_password", "lvctl.u4", stdin="pw4b\n"),
        step("authenticate_user", "lvctl.u4", "pw4b"),
        step("clear_password", "lvctl.u1"),
        step("authenticate_user", "lvctl.u1", "newpw"),
        step("clear_password", "lvctl.nouser"),                      # 69
        step("delete_user", "lvctl.u4"),
        step("delete_user", "lvctl.u4"),                             # 67
        step("delete_user", "-s", "lvctl.u3"),
        step("list_users", "-q", "--no-table-headers", rows=True),
    ],
    "vhosts": [
        step("add_vhost", "lvctl.vh1"),
        step("add_vhost", "lvctl.vh1"),                              # exists: fine
        step("list_vhosts", rows=True),
        step("list_vhosts", "name", "tracing", rows=True),
        step("list_vhosts", "-s", rows=True),
        step("list_vhosts", "--formatter", "json", rows=True),
        step("list_vhosts", "bogus"),                                # 64
        step("delete_vhost", "lvctl.vh1"),
        step("delete_vhost", "lvctl.vh1"),                           # 65
        step("list_vhosts", "-q", rows=True),
    ],
    "vhost_metadata": [
        step("add_vhost", "lvctl.vh1", "--description", "Staging: orders", "--tags", "a,b , c",
             "--default-queue-type", "quorum"),
        step("add_vhost", "lvctl.vh2", "-d", "tags kept as text", "--tags", "x,y"),     # (no split)
        step("add_vhost", "lvctl.vh3", "--default-queue-type", "classic", "--description", 'tab\there "q" \u00e9'),
        step("add_vhost", "lvctl.vh4", "--tags", ""),
        step("add_vhost", "lvctl.vh5", "--default-queue-type", "bogus"),                # 69, not created
        step("add_vhost", "lvctl.vh5", "--default-queue-type", "Quorum"),
        step("add_vhost", "lvctl.vh1", "--description", "changed", "--tags", "z",
             "--default-queue-type", "bogus"),                                           # exists: unchanged
        step("add_vhost", "-q", "lvctl.vh5", "--description=eq", "--default-queue-type=quorum", "--tags=solo"),
        step("add_vhost", "lvctl.vh6", "--bogus", "x"),                                 # 64
        step("list_vhosts", "name", "description", "tags", "default_queue_type", "tracing", "cluster_state",
             rows=True),
        step("list_vhosts", "--formatter", "json", "name", "description", "tags", "default_queue_type", "tracing",
             "cluster_state", rows=True),
        step("list_vhosts", "--formatter", "csv", "name", "description", "tags", "default_queue_type",
             "cluster_state", rows=True),
        step("list_vhosts", "-s", "name", "tags", rows=True),
        step("set_vhost_tags", "lvctl.vh2", "a,b", "c"),
        step("set_vhost_tags", "lvctl.vh4"),
        step("set_vhost_tags", "lvctl.novh", "t"),                                      # 65
        step("set_vhost_tags"),                                                         # 64
        step("list_vhosts", "name", "description", "tags", "default_queue_type", rows=True),
        # the default queue type applies to a declare without x-queue-type
        step("set_permissions", "-q", *V1, "guest", ".*", ".*", ".*"),
        amqp("c1", "lvctl.vh1", ("queue_declare", {"queue": "lvctl.q1", "durable": True}),
             ("queue_declare", {"queue": "lvctl.q2", "durable": True, "arguments": {"x-queue-type": "classic"}})),
        step("list_queues", *V1, "name", "type", "durable", rows=True),
        step("delete_vhost", "-q", "lvctl.vh1"),
        step("list_vhosts", "-q", "name", "default_queue_type", rows=True),
    ],
    "permissions": [
        step("add_user", "-q", "lvctl.u1", "secret"),
        step("add_user", "-q", "lvctl.u2", "secret"),
        step("add_vhost", "-q", "lvctl.vh1"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", ".*", ".*"),
        step("set_permissions", "lvctl.u1", "^a", "", "b$"),
        step("set_permissions", "--vhost", "lvctl.vh1", "lvctl.u2", "^lvctl", "^lvctl", "^lvctl"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.nouser", ".*", ".*", ".*"),   # 67
        step("set_permissions", "-p", "lvctl.novh", "lvctl.u1", ".*", ".*", ".*"),      # 69
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", "(", ".*", ".*"),        # bad regexp
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", "[a", ".*"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", ".*", "a)"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", "*", ".*", ".*"),
        step("set_permissions", "-p", "lvctl.vh1", "lvctl.u1", ".*", ".*"),             # 64
        step("list_permissions", "-p", "lvctl.vh1", rows=True),
        step("list_permissions", rows=True),
        step("list_permissions", "-p", "lvctl.vh1", "--formatter", "json", rows=True),
        step("list_permissions", "-p", "lvctl.novh"),                                   # 65
        step("list_user_permissions", "lvctl.u1", rows=True),
        step("list_user_permissions", "--formatter", "json", "lvctl.u1", rows=True),
        step("list_user_permissions", "lvctl.nouser"),                                  # 69
        step("set_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "amq.topic", "^a", "^b"),
        step("set_topic_permissions", "lvctl.u1", "amq.topic", ".*", ".*"),
        step("set_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "lvctl.x", "(", "^b"),
        step("set_topic_permissions", "-p", "lvctl.vh1", "lvctl.nouser", "amq.topic", "^a", "^b"),
        step("set_topic_permissions", "-p", "lvctl.novh", "lvctl.u1", "amq.topic", "^a", "^b"),
        step("list_topic_permissions", "-p", "lvctl.vh1", rows=True),
        step("list_topic_permissions", rows=True),
        step("list_topic_permissions", "-p", "lvctl.vh1", "--formatter", "json", rows=True),
        step("list_topic_permissions", "-p", "lvctl.novh"),
        step("list_user_topic_permissions", "lvctl.u1", rows=True),
        step("list_user_topic_permissions", "lvctl.u2", rows=True),
        step("list_user_topic_permissions", "lvctl.nouser"),
        step("clear_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "amq.topic"),
        step("clear_topic_permissions", "-p", "lvctl.vh1", "lvctl.u1", "amq.topic"),
        step("clear_topic_permissions", "lvctl.u1"),
        step("clear_topic_permissions", "lvctl.nouser"),
        step("clear_topic_permissions", "-p", "lvctl.novh", "lvctl.u1"),
        step("list_topic_permissions", rows=True),
        step("clear_permissions", "-p", "lvctl.vh1", "lvctl.u1"),
        step("clear_permissions", "-p", "lvctl.vh1", "lvctl.u1"),
        step("clear_permissions", "-p", "lvctl.vh1", "lvctl.nouser"),
        step("clear_permissions", "-p", "lvctl.novh", "lvctl.u1"),
        step("list_permissions", "-p", "lvctl.vh1", rows=True),
        step("list_permissions", "-s", "-p", "lvctl.vh1", rows=True),
        step("delete_vhost", "lvctl.vh1"),
        step("list_user_permissions", "lvctl.u2", rows=True),
    ],
    "limits": [
        step("add_user", "-q", "lvctl.u1", "secret"),
        step("add_user", "-q", "lvctl.u2", "secret"),
        step("add_vhost", "-q", "lvctl.vh1"),
        step("add_vhost", "-q", "lvctl.vh2"),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-connections": 10, "max-queues": 5}'),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-connections": 10'),          # bad JSON
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-foo": 10}'),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-queues": "x"}'),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-queues": 1.5}'),
        step("set_vhost_limits", "-p", "lvctl.novh", '{"max-queues": 1}'),
        step("list_vhost_limits", "-p", "lvctl.vh1"),
        step("list_vhost_limits", "-p", "lvctl.vh2"),
        step("list_vhost_limits", "--global", rows=True),
        step("list_vhost_limits", "-p", "lvctl.novh"),
        step("set_vhost_limits", "-p", "lvctl.vh1", '{"max-queues": -1}'),               # replaces
        step("list_vhost_limits", "-p", "lvctl.vh1"),
        step("clear_vhost_limits", "-p", "lvctl.vh1"),
        step("clear_vhost_limits", "-p", "lvctl.vh1"),                                   # none left
        step("clear_vhost_limits", "-p", "lvctl.novh"),
        step("list_vhost_limits", "-p", "lvctl.vh1"),
        step("set_user_limits", "lvctl.u1", '{"max-connections": 10}'),
        step("set_user_limits", "lvctl.u1", '{"max-channels": 3}'),                      # merges
        step("set_user_limits", "lvctl.u1", '{"max-channels": 3'),
        step("set_user_limits", "lvctl.u1", '{"max-foo": 3}'),
        step("set_user_limits", "lvctl.u1", '{"max-channels": "x"}'),
        step("set_user_limits", "lvctl.nouser", '{"max-channels": 3}'),
        step("list_user_limits", "--user", "lvctl.u1"),
        step("list_user_limits", "--user", "lvctl.u2"),
        step("list_user_limits", "--user", "lvctl.nouser"),
        step("list_user_limits", "--global", rows=True),
        step("list_user_limits"),
        step("clear_user_limits", "lvctl.u1", "max-channels"),
        step("list_user_limits", "--user", "lvctl.u1"),
        step("clear_user_limits", "lvctl.u1", "all"),
        step("list_user_limits", "--user", "lvctl.u1"),
        step("clear_user_limits", "lvctl.nouser", "all"),
        step("clear_user_limits", "lvctl.u1"),                                           # 64
    ],
    "queues": [
        step("add_vhost", "-q", "lvctl.vh1"),
        step("set_permissions", "-q", *V1, "guest", ".*", ".*", ".*"),
        step("list_queues", *V1, rows=True),                                    # none: no header
        step("list_queues", *V1, "--formatter", "json", rows=True),
        amqp("c1", "lvctl.vh1",
             ("queue_declare", {"queue": "lvctl.q1", "durable": True}),
             ("queue_declare", {"queue": "lvctl.q2", "arguments": {"x-max-length": 10, "x-queue-mode": "lazy"}}),
             ("queue_declare", {"queue": "lvctl.q3", "durable": True, "arguments": {"x-queue-type": "quorum"}}),
             ("exchange_declare", {"exchange": "lvctl.x", "exchange_type": "topic"}),
             ("exchange_declare", {"exchange": "lvctl.xd", "exchange_type": "fanout", "durable": True,
                                   "arguments": {"alternate-exchange": "lvctl.x"}}),
             ("queue_bind", {"queue": "lvctl.q1", "exchange": "lvctl.x", "routing_key": "a.#",
                             "arguments": {"k": "v"}}),
             ("exchange_bind", {"destination": "lvctl.x", "source": "lvctl.xd", "routing_key": ""}),
             ("publish", {"routing_key": "lvctl.q1", "body": "one"}),
             ("publish", {"routing_key": "lvctl.q1", "body": "two"}),
             ("publish", {"routing_key": "lvctl.q3", "body": "three"})),
        step("list_queues", *V1, "name", "messages", "consumers", "durable", "arguments", "--formatter", "json",
             rows=True),
        step("list_queues", *V1, rows=True),
        step("list_queues", *V1, "name", "durable", "auto_delete", "exclusive", "arguments", "policy", "type",
             "state", rows=True),
        step("list_queues", *V1, "name", "messages_ready", "messages_unacknowledged", "messages_ready_ram",
             "message_bytes_ready", "exclusive_consumer_tag", rows=True),
        step("list_queues", *V1, "-s", "name", "messages", rows=True),
        step("list_queues", *V1, "--no-table-headers", "name", rows=True),
        step("list_queues", *V1, "-q", "name", rows=True),
        step("list_queues", *V1, "--formatter", "csv", "name", "messages", rows=True),
        step("list_queues", *V1, "name,messages", rows=True),
        step("list_queues", *V1, "bogus"),                                      # 64
        step("list_queues", "-p", "lvctl.novh"),
        step("list_exchanges", *V1, rows=True),
        step("list_exchanges", *V1, "name", "type", "durable", "auto_delete", "internal", "arguments", "policy",
             rows=True),
        step("list_exchanges", *V1, "--formatter", "json", "name", "arguments", rows=True),
        step("list_exchanges", *V1, "bogus"),
        step("list_bindings", *V1, rows=True),
        step("list_bindings", *V1, "--formatter", "json", rows=True),
        step("list_bindings", *V1, "source_name", "destination_name", "routing_key", rows=True),
        step("list_bindings", *V1, "bogus"),
        step("purge_queue", *V1, "lvctl.q1"),
        step("purge_queue", *V1, "lvctl.q1"),
        step("purge_queue", *V1, "lvctl.noq"),                                  # 69
        step("purge_queue", *V1),                                               # 64
        step("list_queues", *V1, "name", "messages", rows=True),
        step("delete_queue", *V1, "--if-empty", "lvctl.q3"),                    # not empty
        step("delete_queue", *V1, "-e", "lvctl.q2"),
        step("delete_queue", *V1, "lvctl.q3"),
        step("delete_queue", *V1, "lvctl.noq"),
        step("delete_queue", *V1, "-q", "lvctl.q1"),
        step("delete_queue", *V1),                                              # 64
        step("list_queues", *V1, rows=True),
    ],
    "connections": [
        step("add_vhost", "-q", "lvctl.vh1"),
        step("set_permissions", "-q", *V1, "guest", ".*", ".*", ".*"),
        amqp("c1", "lvctl.vh1",
             ("queue_declare", {"queue": "lvctl.q1"}),
             ("queue_declare", {"queue": "lvctl.q2", "arguments": {"x-single-active-consumer": True}}),
             ("publish", {"routing_key": "lvctl.q1", "body": "one"}),
             ("publish", {"routing_key": "lvctl.q1", "body": "two"}),
             ("basic_qos", {"prefetch_count": 5}),
             ("basic_consume", {"queue": "lvctl.q1", "consumer_tag": "lvctl.t1"}),
             ("basic_consume", {"queue": "lvctl.q2", "consumer_tag": "lvctl.t2", "auto_ack": True}),
             ("confirm_delivery", {"channel": 2}),
             ("tx_select", {"channel": 3})),
        amqp("c2", "lvctl.vh1",
             ("basic_consume", {"queue": "lvctl.q2", "consumer_tag": "lvctl.t3"})),
        step("list_connections", rows=True, keep="ports"),
        step("list_connections", "name", "user", "vhost", "state", "channels", "protocol", "auth_mechanism",
             "ssl", "frame_max", "channel_max", "timeout", rows=True, keep="lvctl.vh1"),
        step("list_connections", "vhost", "user", "channels", "--formatter", "json", rows=True, keep="lvctl.vh1"),
        step("list_connections", "bogus"),
        step("list_channels", "vhost", "name", "number", "user", "consumer_count", "prefetch_count",
             "global_prefetch_count", "confirm", "transactional", "messages_unacknowledged",
             "messages_unconfirmed", "messages_uncommitted", "acks_uncommitted", rows=True, keep="lvctl.vh1"),
        step("list_channels", "vhost", "number", "--formatter", "json", rows=True, keep="lvctl.vh1"),
        step("list_channels", "bogus"),
        step("list_consumers", *V1, rows=True),
        step("list_consumers", *V1, "queue_name", "consumer_tag", "ack_required", "prefetch_count", "active",
             "activity_status", "arguments", rows=True),
        step("list_consumers", *V1, "queue_name", "consumer_tag", "--formatter", "json", rows=True),
        step("list_consumers", *V1, "bogus"),
        step("list_consumers", "-p", "lvctl.novh"),
        step("delete_queue", *V1, "--if-unused", "lvctl.q1"),                   # in use
        step("close_connection", "{conn:c2}", "lvctl says bye"),
        step("close_connection", "<rabbit@nohost.1.2.3>", "x"),
        step("close_connection", "nope", "x"),
        step("close_connection", "{conn:c1}"),                                  # 64
        step("list_consumers", *V1, "queue_name", "consumer_tag", rows=True),
        step("close_all_connections", *V1, "lvctl says bye to all"),
        # (never --global here: on a shared node it closes everyone's connections)
        step("close_all_connections"),                                          # 64
        step("list_connections", "vhost", "user", rows=True, keep="lvctl.vh1"),
    ],
    "policies": [
        step("add_vhost", "-q", "lvctl.vh1"),
        step("set_policy", *V1, "lvctl.p1", "^lvctl\\.", '{"max-length": 10}'),
        step("set_policy", *V1, "--priority", "5", "--apply-to", "queues", "lvctl.p2", "^lvctl\\.q",
             '{"message-ttl": 1000, "dead-letter-exchange": "dlx"}'),
        step("set_policy", *V1, "lvctl.p3", "^a", '{"max-length": "x"}'),          # invalid
        step("set_policy", *V1, "lvctl.p3", "^a", '{"bogus-key": 1}'),
        step("set_policy", *V1, "lvctl.p3", "^a", '{"max-length": 1'),             # bad JSON
        step("set_policy", *V1, "--apply-to", "things", "lvctl.p3", "^a", '{"max-length": 1}'),
        step("set_policy", *V1, "--priority", "x", "lvctl.p3", "^a", '{"max-length": 1}'),
        step("set_policy", "-p", "lvctl.novh", "lvctl.p3", "^a", '{"max-length": 1}'),
        step("set_policy", *V1, "lvctl.p3", "^a"),                                 # 64
        step("list_policies", *V1, rows=True),
        step("list_policies", *V1, "--formatter", "json", rows=True),
        step("list_policies", *V1, "-s", rows=True),
        step("list_policies", "-p", "lvctl.novh"),
        step("clear_policy", *V1, "lvctl.p1"),
        step("clear_policy", *V1, "lvctl.p1"),
        step("clear_policy", "-p", "lvctl.novh", "lvctl.p1"),
        step("list_policies", *V1, rows=True),
        step("set_operator_policy", *V1, "lvctl.op1", "^lvctl", '{"max-length": 100}'),
        step("set_operator_policy", *V1, "--priority", "2", "--apply-to", "queues", "lvctl.op2", ".*",
             '{"message-ttl": 5000, "expires": 60000}'),
        step("set_operator_policy", *V1, "lvctl.op3", ".*", '{"dead-letter-exchange": "x"}'),
        step("list_operator_policies", *V1, rows=True),
        step("list_operator_policies", *V1, "--formatter", "json", rows=True),
        step("clear_operator_policy", *V1, "lvctl.op1"),
        step("clear_operator_policy", *V1, "lvctl.op1"),
        step("list_operator_policies", *V1, rows=True),
        step("set_parameter", *V1, "vhost-limits", "limits", '{"max-queues": 7}'),
        step("set_parameter", *V1, "policy", "lvctl.pp",
             '{"pattern": "^x", "definition": {"max-length": 1}, "apply-to": "queues", "priority": 1}'),
        step("set_parameter", *V1, "shovel", "lvctl.s", '{"src-uri": "amqp://"}'),
        step("set_parameter", *V1, "vhost-limits", "limits", '{"max-queues": 7'),
        step("set_parameter", "-p", "lvctl.novh", "vhost-limits", "limits", '{"max-queues": 7}'),
        step("list_parameters", *V1, rows=True),
        step("list_parameters", *V1, "--formatter", "json", rows=True),
        step("list_policies", *V1, rows=True),
        step("clear_parameter", *V1, "vhost-limits", "limits"),
        step("clear_parameter", *V1, "vhost-limits", "limits"),
        step("clear_parameter", *V1, "shovel", "lvctl.s"),
        step("list_parameters", *V1, rows=True),
        step("set_global_parameter", "lvctl.g1", '{"a": [1, 2]}'),
        step("set_global_parameter", "lvctl.g2", '"text"'),
        step("set_global_parameter", "lvctl.g3", '{"a": 1'),
        step("list_global_parameters", rows=True, keep="lvctl|^name"),
        step("list_global_parameters", "--formatter", "json", rows=True, keep="lvctl"),
        step("clear_global_parameter", "lvctl.g1"),
        step("clear_global_parameter", "lvctl.g1"),
        step("clear_global_parameter", "-q", "lvctl.g2"),
        step("list_global_parameters", rows=True, keep="lvctl|^name"),
    ],
    "node": [
        step("await_startup"),
        step("await_startup", "-q"),
        step("status", shape=True),
        step("status", "--formatter", "json", shape=True),
        step("status", "--unit", "mb", shape=True),
        step("status", "--unit", "bogus"),
        step("environment", shape=True),
        step("report", shape=True),
        diag("ping"),
        diag("ping", "-q"),
        diag("ping", "--formatter", "json"),
        diag("check_running"),
        diag("check_running", "--formatter", "json"),
        diag("check_local_alarms"),
        diag("check_local_alarms", "--formatter", "json"),
        diag("check_port_connectivity", shape=True),
        diag("check_port_connectivity", "--formatter", "json", shape=True),
        diag("status", shape=True),
        diag("memory_breakdown", shape=True),
        diag("memory_breakdown", "--unit", "mb", shape=True),
        diag("memory_breakdown", "--formatter", "json", shape=True),
        diag("bogus_command"),
    ],
    "definitions": [
        step("add_vhost", "-q", "lvctl.vh1"),
        step("import_definitions", stdin=json.dumps({
            "vhosts": [{"name": "lvctl.vh1"}],
            "queues": [{"name": "lvctl.dq", "vhost": "lvctl.vh1", "durable": True, "auto_delete": False,
                        "arguments": {"x-max-length": 3}}],
            "exchanges": [{"name": "lvctl.dx", "vhost": "lvctl.vh1", "type": "direct", "durable": True,
                           "auto_delete": False, "internal": False, "arguments": {}}],
            "bindings": [{"source": "lvctl.dx", "vhost": "lvctl.vh1", "destination": "lvctl.dq",
                          "destination_type": "queue", "routing_key": "k", "arguments": {}}],
            "policies": [{"vhost": "lvctl.vh1", "name": "lvctl.dp", "pattern": "^lvctl", "apply-to": "all",
                          "definition": {"max-length": 5}, "priority": 0}]})),
        step("import_definitions", stdin="{not json"),
        step("import_definitions", "/nonexistent/lvctl.json"),
        step("import_definitions", "-"),                                        # "-" is a file name here
        step("import_definitions", "a", "b"),                                   # 64
        step("list_queues", *V1, "name", "arguments", "policy", rows=True),
        step("list_bindings", *V1, rows=True),
        step("export_definitions", "-", shape=True),
        step("export_definitions", "/tmp/lvctl-definitions.json"),
        step("export_definitions", "/nonexistent/dir/lvctl.json"),
        step("export_definitions"),                                             # 64
        step("export_definitions", "-", "--format", "bogus"),
    ],
    "usage": [
        step("add_user"),
        step("add_user", "lvctl.u1", "pw", "extra"),
        step("delete_user"),
        step("list_users", "extra"),
        step("list_users", "--bogus"),
        step("set_user_tags"),
        step("add_vhost"),
        step("set_permissions", "lvctl.u1"),
        step("set_topic_permissions", "lvctl.u1", "amq.topic"),
        step("set_vhost_limits"),
        step("clear_user_limits", "lvctl.u1"),
        step("list_user_permissions"),
        step("authenticate_user"),
    ],
}


def run(argv: list[str], stdin: str | None, tool: str = "rabbitmqctl") -> dict:
    p = subprocess.run([tool, *argv], input=stdin or "", capture_output=True, text=True,
                       timeout=120)
    return {"stdout": p.stdout, "stderr": p.stderr, "rc": p.returncode}


def ours(text: str) -> bool:
    return "lvctl." in text or text.split("\t")[0] in ("guest", "/") or text.startswith(('"guest"', '"/"'))


def reduce_shape(stdout: str, argv: list[str]) -> str:
    """What a ``shape`` step keeps of a large output: an export's keys and this script's
    entries; a report's headings and "Listing ..." lines; the first lines of the rest."""
    if argv[0] == "export_definitions":
        d = json.loads(stdout)
        return json.dumps({k: [x for x in v if "lvctl." in json.dumps(x)] if isinstance(v, list) else v
                           for k, v in d.items()}, sort_keys=True) + "\n"
    if argv[0] == "report":
        return "".join(line + "\n" for line in stdout.split("\n")
                       if line.startswith(("\x1b[1m", "Listing", "Status", "Reporting")))
    if argv[0] == "environment":
        return "\n".join(stdout.split("\n")[:3]) + "\n"
    return stdout


def scoped(argv: list[str]) -> bool:
    """A listing of one of this script's vhosts (nothing of others' in it)."""
    return any(a in ("-p", "--vhost") and b.startswith("lvctl.") for a, b in zip(argv, argv[1:]))


def keep_rows(stdout: str, argv: list[str], keep: str | None = None) -> str:
    """Drop rows about objects this script did not create (other users of a shared node);
    with ``keep``, every row not matching it."""
    mine = (lambda text: re.search(keep, text) is not None) if keep else ours
    if "json" in argv:
        rows = json.loads(stdout)
        if keep:
            rows = [r for r in rows if mine(json.dumps(r, separators=(",", ":"), ensure_ascii=False))]
        else:
            rows = [r for r in rows if any(v in ("guest", "/") or "lvctl." in str(v) for v in r.values())]
        if not rows:
            return "[\n]\n" if stdout.startswith("[\n]") else "[]\n"
        return "[\n" + "\n,".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in rows) + "\n]\n"
    lines = stdout.split("\n")
    out = []
    headers = not any(a in argv for a in ("-s", "--silent", "--no-table-headers", "csv"))
    for i, line in enumerate(lines):
        is_row = "\t" in line or line.startswith('"')
        header = line.startswith(("user\t", "vhost\t", "name", '"user"', '"name"'))
        if is_row and headers:      # the first row is the header
            header, headers = True, False
        if not is_row or header or mine(line):
            out.append(line)
    return "\n".join(out)


def cleanup() -> None:
    for g in ("lvctl.g1", "lvctl.g2", "lvctl.g3"):
        subprocess.run(["rabbitmqctl", "-q", "clear_global_parameter", g], capture_output=True)
    for u in USERS:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", u], capture_output=True)
    for v in VHOSTS:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", v], capture_output=True)
    if os.path.exists("/tmp/lvctl-definitions.json"):
        os.unlink("/tmp/lvctl-definitions.json")


def capture(name: str) -> None:
    cleanup()
    steps = []
    session = AmqpSession("127.0.0.1", 5672)
    try:
        for s in SCENARIOS[name]:
            if "amqp" in s:
                session.run(s)
                steps.append(s)
                time.sleep(2)       # (RabbitMQ's quorum queue counts reach its listings later)
                continue
            tool = s.get("tool", "rabbitmqctl")
            argv = session.resolve(s["argv"], lambda *a: run(list(a), None)["stdout"])
            got = run(argv, s["stdin"], tool)
            if s.get("shape") and got["rc"] == 0:
                got["stdout"] = reduce_shape(got["stdout"], s["argv"])
            if s["rows"] and got["rc"] == 0 and not scoped(s["argv"]):
                keep = s.get("keep")
                if keep == "ports":
                    keep = "\t(" + "|".join(str(session.local_port(c)) for c in session.conns) + ")\t"
                got["stdout"] = keep_rows(got["stdout"], s["argv"], keep)
            steps.append({**s, **got})
            print(f"{name}: {tool} {' '.join(argv)} -> {got['rc']}", file=sys.stderr)
    finally:
        session.close()
        cleanup()
    version = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True).stdout.strip()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump({"rabbitmqctl": version, "steps": steps}, f, indent=1)
        f.write("\n")


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            print(f"no scenario {n!r}; have {', '.join(SCENARIOS)}", file=sys.stderr)
            return 2
        capture(n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
