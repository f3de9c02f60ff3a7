"""``broker/recovery.py``: the broker recreates what its store kept; the store deletes the logs
of entities that are gone. In process, on a real data directory."""
from __future__ import annotations

import asyncio
import os

from broker_harness import make_broker, message, queue, typed


def stop(b):
    asyncio.run(b.stop())


def test_entities_and_persistent_messages_come_back(tmp_path):
    d = str(tmp_path)
    b = make_broker(data_dir=d)
    v = b.add_vhost("v1")
    b.add_user("alice", "secret", ("management",))
    b.set_permissions("alice", "v1", "^a", ".*", "")
    b.set_policy("ttl", "^q", {"message-ttl": 60000}, vhost="v1")
    x = v.declare_exchange("x", "topic", True, False, False, {})
    q = queue(b, "q1", vhost="v1", durable=True, arguments=typed(x_max_length=10))
    qq = queue(b, "qq", vhost="v1", durable=True, arguments=typed(x_queue_type="quorum"))
    gone = queue(b, "gone", vhost="v1", durable=True)
    v.bind(x, q, "a.#", {})
    for i in range(3):
        q.enqueue(message(b, b"p%d" % i, delivery_mode=2))
    q.enqueue(message(b, b"transient"))
    qq.enqueue(message(b, b"quorum keeps transient"))
    gone.enqueue(message(b, b"g", delivery_mode=2))
    gone_log = gone.log.path
    stop(b)
    # the queue is deleted behind the store's back (as if its delete had been lost): recovery
    # must not bring its log back, and removes it
    b = make_broker(data_dir=d)
    b.vhosts["v1"].delete_queue(b.vhosts["v1"].queues["gone"])
    os.makedirs(gone_log, exist_ok=True)
    stop(b)

    b = make_broker(data_dir=d)
    assert b.recovery["queues"] == 2 and not b.recovery["unclean_shutdown"]
    v = b.vhosts["v1"]
    assert b.users["alice"].check("secret") and b.users["alice"].tags == ["management"]
    p = b.access.permissions[("alice", "v1")]
    assert (p.configure, p.write, p.read) == ("^a", ".*", "")
    q, qq = v.queues["q1"], v.queues["qq"]
    assert type(qq).__name__ == "QuorumQueue" and q.policy.name == "ttl" and q.msg_ttl == 60000
    assert [m.body for m in q.ready] == [b"p0", b"p1", b"p2"]        # transient ones dropped
    assert [m.body for m in qq.ready] == [b"quorum keeps transient"]
    assert [bd.destination for bd in v.exchanges["x"].bindings.values()] == [q]
    assert "gone" not in v.queues and not os.path.exists(gone_log)
    stop(b)


def test_first_boot_creates_the_defaults(tmp_path):
    b = make_broker(data_dir=str(tmp_path))
    assert b.recovery.get("first_boot") and set(b.vhosts) == {"/"} and "guest" in b.users
    p = b.access.permissions[("guest", "/")]
    assert (p.configure, p.write, p.read) == (".*", ".*", ".*")
    stop(b)
    b = make_broker(data_dir=str(tmp_path))
    assert not b.recovery.get("first_boot") and set(b.vhosts) == {"/"} and b.recovery["queues"] == 0
    stop(b)
