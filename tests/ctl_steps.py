"""AMQP set-up steps and ``{conn:NAME}`` references for the recorded ``rabbitmqctl`` scenarios.

``tools/capture_rabbitmqctl.py`` (against RabbitMQ) and ``tests/test_ctl.py`` (against Leveret)
run the same scenario steps. A step is either a command line (``argv``) or AMQP work
(``amqp``): a named pika connection to a vhost, opened on first use and kept open (so that
listings see its channels and consumers) until the scenario ends, and a list of
``[method, kwargs]`` actions run on its channels (``channel`` picks one, default 1):
``queue_declare``, ``exchange_declare``, ``queue_bind``, ``publish``, ``basic_qos``,
``basic_consume``, ``confirm_delivery``, ``tx_select``.

A command line may name a kept connection as ``{conn:NAME}``: the broker's identifier for it
(the ``pid`` column ``list_connections`` prints), found through the connection's local port
in the ``name`` column.
"""
from __future__ import annotations

import re

import pika

_REF = re.compile(r"\{conn:([\w.-]+)\}")


class AmqpSession:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.conns: dict[str, pika.BlockingConnection] = {}
        self.channels: dict[tuple[str, int], object] = {}

    def run(self, step: dict) -> None:
        name = step["amqp"]
        c = self.conns.get(name)
        if c is None:
            c = self.conns[name] = pika.BlockingConnection(pika.ConnectionParameters(
                self.host, self.port, step.get("vhost", "/"), pika.PlainCredentials("guest", "guest"),
                heartbeat=0, client_properties={"connection_name": name}))
        for method, kwargs in step["actions"]:
            kwargs = dict(kwargs)
            number = kwargs.pop("channel", 1)
            ch = self.channels.get((name, number))
            if ch is None:
                ch = self.channels[(name, number)] = c.channel(number)
            if method == "publish":
                ch.basic_publish(kwargs.get("exchange", ""), kwargs["routing_key"], kwargs.get("body", "m").encode())
            elif method == "basic_consume":
                ch.basic_consume(kwargs["queue"], lambda *a: None, auto_ack=kwargs.get("auto_ack", False),
                                 consumer_tag=kwargs.get("consumer_tag"))
            else:
                getattr(ch, method)(**kwargs)
        c.process_data_events(0)

    def local_port(self, name: str) -> int:
        return self.conns[name]._impl._transport._sock.getsockname()[1]

    def resolve(self, argv: list[str], list_connections) -> list[str]:
        """``argv`` with each ``{conn:NAME}`` replaced by that connection's pid;
        ``list_connections(*argv)`` runs the CLI and returns its stdout."""
        if not any(_REF.search(a) for a in argv):
            return argv
        rows = [line.split("\t") for line in
                list_connections("list_connections", "-q", "--no-table-headers", "pid", "name").splitlines()]

        def pid(m):
            port = self.local_port(m.group(1))
            for row in rows:
                if len(row) == 2 and row[1].startswith(f"127.0.0.1:{port} -> "):
                    return row[0]
            raise LookupError(f"connection {m.group(1)} (port {port}) not listed")
        return [_REF.sub(pid, a) for a in argv]

    def close(self) -> None:
        for c in self.conns.values():
            try:
                if c.is_open:
                    c.close()
            except Exception:   # closed by the broker in the scenario (close_connection)
                pass
        self.conns.clear()
        self.channels.clear()
