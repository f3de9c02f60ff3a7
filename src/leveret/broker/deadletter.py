"""Dead-lettering: the x-death builder and the re-publish to a queue's dead-letter exchange.

Follows RabbitMQ's ``rabbit_dead_letter`` (3.10; plus 3.13's ``x-last-death-*`` when
``settings.last_death_headers``, which ``--rabbitmq4`` sets):

* the dead-lettered copy is published to the DLX with the queue's
  ``x-dead-letter-routing-key`` if it has one (then the ``CC`` header is
  removed), else with the message's own routing keys (routing key + ``CC``),
  all matched at every exchange on the way;
* its ``expiration`` property is removed; a per-message expiration is kept as
  ``original-expiration`` in the x-death entry;
* ``x-death`` is an array of tables, the newest first, one per
  ``{queue, reason}``: a message dying again in the same queue for the same
  reason gets that entry's ``count`` incremented and moved to the front. The
  first entry is built in RabbitMQ's field order (count, reason, queue, time,
  exchange, routing-keys[, original-expiration]); entries written when an
  x-death header already exists are sorted by key, and so is the header
  table (RabbitMQ's ``set_table_value`` sorts). As in RabbitMQ 3.10 the older
  entries are reversed at each death (:func:`_group_by_queue_and_reason`), and
  an x-death header that is not an array is replaced by a fresh one;
* ``x-first-death-{reason,queue,exchange}`` are set on the first death,
  ``x-last-death-{reason,queue,exchange}`` on every one (3.13+ only);
* cycles: a copy that would go back to a queue it already died in, with no
  ``rejected`` death since, is not delivered there (RabbitMQ's
  ``detect_cycles``), unless this death itself is a rejection;
* a copy that reaches several queues reaches all of them before one of them
  dead-letters in turn (its overflow), as for a publish.
"""
from __future__ import annotations

import logging
import time

from ..amqp.codec import BasicProperties, Typed, enc_shortstr, table_plain
from .message import Message

log = logging.getLogger("leveret")


def _s(v) -> Typed:
    return Typed("S", v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v)


def _plain_str(v) -> str | None:
    v = table_plain(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return v if isinstance(v, str) else None


def _sorted(table: dict) -> dict:
    return {k: table[k] for k in sorted(table, key=lambda k: k.encode("utf-8", "surrogateescape"))}


def header_routes(headers: dict) -> list[str]:
    """The extra routing keys of a message: its ``CC`` and ``BCC`` headers' strings."""
    keys = []
    for name in ("CC", "BCC"):
        v = headers.get(name)
        if isinstance(v, Typed) and v.tag == "A":
            for i in v.value:
                s = _plain_str(i) if isinstance(i, Typed) and i.tag == "S" else None
                if s is not None:
                    keys.append(s)
    return keys


def make_dead_letter(msg: Message, queue: str, reason: str, dlx: str, dlrk: str | None,
                     now_s: int, last_death: bool = False) -> tuple[Message, list[str], list]:
    """The dead-lettered copy of ``msg`` (id 0, to be stamped at enqueue), the routing keys to
    publish it with, and its x-death entries (for cycle detection)."""
    props = BasicProperties.decode(msg.header[12:])
    headers = props.headers or {}
    rks = [msg.routing_key] + header_routes(headers)
    info = {"reason": _s(reason), "queue": _s(queue), "time": Typed("T", now_s),
            "exchange": _s(msg.exchange), "routing-keys": Typed("A", [_s(k) for k in rks])}
    if props.expiration is not None:
        info["original-expiration"] = _s(props.expiration)
    xd = headers.get("x-death")
    if isinstance(xd, Typed) and xd.tag == "A":
        grouped = _group_by_queue_and_reason([d for d in xd.value if isinstance(d, Typed) and d.tag == "F"])
        match = None
        others = []
        for d in grouped:
            if match is None and _plain_str(d.value.get("queue")) == queue and \
                    _plain_str(d.value.get("reason")) == reason:
                match = d
            else:
                others.append(d)
        if match is None:
            entry = _sorted({"count": Typed("l", 1), **info})
        else:
            entry = dict(match.value)
            c = table_plain(entry.get("count"))
            entry["count"] = Typed("l", (c if isinstance(c, int) else 0) + 1)
            entry = _sorted(entry)
        deaths = [Typed("F", entry)] + others
    else:
        deaths = [Typed("F", {"count": Typed("l", 1), **info})]
        if xd is None:
            headers["x-first-death-reason"] = _s(reason)
            headers["x-first-death-queue"] = _s(queue)
            headers["x-first-death-exchange"] = _s(msg.exchange)
    headers["x-death"] = Typed("A", deaths)
    if last_death:
        headers["x-last-death-reason"] = _s(reason)
        headers["x-last-death-queue"] = _s(queue)
        headers["x-last-death-exchange"] = _s(msg.exchange)
    if dlrk is not None:
        keys = [dlrk]
        headers.pop("CC", None)
    else:
        keys = rks + msg.bcc if msg.bcc else rks     # BCC keys route, but are not recorded
    props.headers = _sorted(headers)
    props.expiration = None
    ex_rk = enc_shortstr(dlx) + enc_shortstr(keys[0])
    raw = props.encode()
    new = Message(0, dlx, keys[0], ex_rk, msg.header[:12] + raw, msg.body)
    new._props = props
    if dlrk is None:
        new.bcc = msg.bcc
    return new, keys, deaths


def _group_by_queue_and_reason(deaths: list) -> list:
    """RabbitMQ 3.10's ``group_by_queue_and_reason``: one entry per (queue, reason), counts
    added to entries that lack one; being a left fold that prepends, it *reverses* the order of
    the existing entries (observable: with three or more deaths the older entries swap)."""
    seen = set()
    out: list = []
    for d in deaths:
        key = (_plain_str(d.value.get("queue")), _plain_str(d.value.get("reason")))
        if key in seen:
            continue
        seen.add(key)
        if "count" not in d.value:
            n = sum(1 for e in deaths if (_plain_str(e.value.get("queue")), _plain_str(e.value.get("reason"))) == key)
            d = Typed("F", {"count": Typed("l", n), **d.value})
        out.insert(0, d)
    return out


def is_cycle(queue: str, deaths: list) -> bool:
    """RabbitMQ's ``is_cycle``: the deaths since (and including) the last one in ``queue``
    contain no rejection."""
    for i, d in enumerate(deaths):
        if _plain_str(d.value.get("queue")) == queue:
            return all(_plain_str(e.value.get("reason")) != "rejected" for e in deaths[:i + 1])
    return False


def dead_letter(q, msgs: list, reason: str) -> None:
    """Publish dead-lettered copies of ``msgs`` (which have left ``q``) to its DLX."""
    v = q.vhost
    x = v.exchanges.get(q.dlx)
    if x is None:
        return          # RabbitMQ drops the message when the DLX does not exist
    now_s = int(time.time())
    broker = v.broker
    deferred = None
    last_death = broker.settings.last_death_headers
    for m in msgs:
        new, keys, deaths = make_dead_letter(m, q.name, reason, q.dlx, q.dlrk, now_s, last_death)
        out: list = []
        v.route_keys(x, list(dict.fromkeys(keys)), new, out)
        if reason != "rejected":
            kept = [d for d in out if not is_cycle(d.name, deaths)]
            if len(kept) != len(out):
                log.debug("dead-letter cycle: message from %s not delivered back to %s", q.name,
                          [d.name for d in out if d not in kept])
            out = kept
        new.id = broker.new_message_id()
        if len(out) > 1 and broker.dl_deferred is None:
            # a target that dead-letters in turn (overflow) does it after the copies have
            # reached all their targets, as the queue processes of RabbitMQ do for a publish
            broker.dl_deferred = deferred = deferred if deferred is not None else []
        for d in out:
            if not d.deleted:
                d.enqueue(new)
    if deferred is not None:
        broker.dl_deferred = None
        for dq, dmsgs, dreason in deferred:
            dead_letter(dq, dmsgs, dreason)
