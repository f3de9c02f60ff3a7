"""Who sees and may do what in the management API, per tag, as RabbitMQ 3.10.8's
``rabbit_mgmt_util`` (rules in ``leveret.management.auth``): a ``management``, a
``policymaker`` and a ``monitoring`` user, each with permissions in vhost A only (vhost B
exists too), each with an AMQP connection to A; guest has one to A and one to B. Runs against
Leveret and, with ``LEVERET_TEST_URL`` + ``LEVERET_TEST_MGMT_URL``, against RabbitMQ."""
from __future__ import annotations

import time
import urllib.parse
import uuid

import pika
import pytest

from .conftest import call

TAGS = ("management", "policymaker", "monitoring")
NOT_VHOST = {"error": "not_authorised", "reason": "User not authorised to access virtual host"}
NOT_OBJECT = {"error": "not_authorised", "reason": "User not authorised to access object"}
NOT_ADMIN = {"error": "not_authorised", "reason": "Not administrator user"}
NOT_MONITOR = {"error": "not_authorised", "reason": "Not monitor user"}


@pytest.fixture(scope="module")
def world(api, broker_url):
    t = uuid.uuid4().hex[:8]
    w = {"A": f"mgmt-acc-{t}-a", "B": f"mgmt-acc-{t}-b", "tag": f"mgmt-acc-{t}",
         "users": {tag: f"mgmt-acc-{t}-{tag}" for tag in TAGS}}
    url = urllib.parse.urlparse(broker_url)
    conns = []
    try:
        for v in (w["A"], w["B"]):
            assert call(api, "PUT", f"/api/vhosts/{v}", body={})[0] == 201
            assert call(api, "PUT", f"/api/queues/{v}/q", body={"durable": False})[0] == 201
            assert call(api, "PUT", f"/api/exchanges/{v}/x", body={"type": "fanout", "durable": False})[0] == 201
            assert call(api, "PUT", f"/api/policies/{v}/pol", body={"pattern": "^zz", "definition": {"max-length": 1}})[0] == 201
        for tag, u in w["users"].items():
            assert call(api, "PUT", f"/api/users/{u}", body={"password": "pw", "tags": tag})[0] == 201
            assert call(api, "PUT", f"/api/permissions/{w['A']}/{u}",
                        body={"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
        logins = [(u, "pw", w["A"], f"{w['tag']}-{tag}") for tag, u in w["users"].items()]
        logins += [("guest", "guest", w["A"], f"{w['tag']}-guestA"), ("guest", "guest", w["B"], f"{w['tag']}-guestB")]
        for user, pw, vhost, name in logins:
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                url.hostname, url.port or 5672, vhost, pika.PlainCredentials(user, pw),
                client_properties={"connection_name": name}))
            conns.append(conn)
            conn.channel()
        deadline = time.monotonic() + 30          # (RabbitMQ lists them after its stats interval)
        while True:
            names = {c.get("user_provided_name") for c in call(api, "GET", "/api/connections")[2]}
            chans = [c for c in call(api, "GET", "/api/channels")[2] if c["vhost"] in (w["A"], w["B"])]
            if {n for *_, n in logins} <= names and len(chans) == len(logins):
                break
            assert time.monotonic() < deadline, "the connections never showed"
            for c in conns:
                c.process_data_events(0.1)
            time.sleep(0.3)
        yield w
    finally:
        for c in conns:
            if c.is_open:
                c.close()
        for v in (w["A"], w["B"]):
            call(api, "DELETE", f"/api/vhosts/{v}")
        for u in w["users"].values():
            call(api, "DELETE", f"/api/users/{u}")


def _as(api, w, tag, method, path, body=None):
    path = path.replace("{A}", w["A"]).replace("{B}", w["B"])
    status, _, got = call(api, method, path, user=w["users"][tag], password="pw", body=body)
    return status, got


@pytest.mark.parametrize("tag", TAGS)
def test_listings(api, world, tag):
    """Vhosts: a monitor's every vhost, else the login vhosts. Queues and exchanges: the login
    vhosts' (a monitor's too). Connections and channels: a monitor's every user's, else its own."""
    w, mine = world, lambda vs: sorted(v for v in vs if v in (world["A"], world["B"]))
    status, got = _as(api, w, tag, "GET", "/api/vhosts")
    assert status == 200
    assert mine(x["name"] for x in got) == ([w["A"], w["B"]] if tag == "monitoring" else [w["A"]])
    for what, names in (("queues", ["q"]), ("exchanges", ["", "amq.direct", "amq.fanout", "amq.headers",
                                                            "amq.match", "amq.rabbitmq.trace", "amq.topic", "x"])):
        status, got = _as(api, w, tag, "GET", f"/api/{what}")
        assert status == 200
        assert sorted((x["vhost"], x["name"]) for x in got if x["vhost"] in (w["A"], w["B"])) == \
            [(w["A"], n) for n in names], what
    everyone = sorted(f"{w['tag']}-{x}" for x in (*TAGS, "guestA", "guestB"))
    status, got = _as(api, w, tag, "GET", "/api/connections")
    assert status == 200
    assert sorted(c["user_provided_name"] for c in got if (c.get("user_provided_name") or "").startswith(w["tag"])) \
        == (everyone if tag == "monitoring" else [f"{w['tag']}-{tag}"])
    status, got = _as(api, w, tag, "GET", "/api/channels")
    assert status == 200
    users = sorted((c["vhost"], c["user"]) for c in got if c["vhost"] in (w["A"], w["B"]))
    if tag == "monitoring":
        assert users == sorted([(w["A"], u) for u in w["users"].values()] + [(w["A"], "guest"), (w["B"], "guest")])
    else:
        assert users == [(w["A"], w["users"][tag])]


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("path", ["/api/queues/{B}", "/api/queues/{B}/q", "/api/exchanges/{B}", "/api/exchanges/{B}/x",
                                  "/api/bindings/{B}", "/api/queues/{B}/q/bindings", "/api/policies/{B}",
                                  "/api/vhosts/{B}/connections", "/api/vhosts/{B}/channels", "/api/aliveness-test/{B}"])
def test_vhost_b_objects_are_refused(api, world, tag, path):
    """Another vhost's objects: refused to every non-administrator, monitoring included."""
    assert _as(api, world, tag, "GET", path) == (401, NOT_VHOST)


@pytest.mark.parametrize("tag", TAGS)
def test_administrator_only(api, world, tag):
    """``/api/vhosts/{vhost}`` is the administrator's even for a login vhost, as are users,
    permissions and definitions."""
    for path in ("/api/vhosts/{A}", "/api/vhosts/{B}", "/api/users", "/api/permissions", "/api/definitions",
                 "/api/definitions/{A}"):
        assert _as(api, world, tag, "GET", path) == (401, NOT_ADMIN), path


@pytest.mark.parametrize("tag", TAGS)
def test_nodes_and_overview(api, world, tag):
    status, got = _as(api, world, tag, "GET", "/api/nodes")
    if tag == "monitoring":
        assert status == 200 and len(got) >= 1 and "name" in got[0]
    else:
        assert (status, got) == (401, NOT_MONITOR)
    status, got = _as(api, world, tag, "GET", "/api/overview")
    assert status == 200
    node_wide = {"node", "listeners", "contexts"}
    if tag == "monitoring":
        assert node_wide <= set(got) and "consumers" in got["object_totals"]
        assert got["object_totals"]["connections"] >= 5
    else:
        assert not node_wide & set(got)
        assert {k: got["object_totals"][k] for k in got["object_totals"]} == {
            "queues": 1, "exchanges": 8, "connections": 1, "channels": 1}
        # (their contents: RabbitMQ's fill in once its collector has sampled the new vhost)
        assert isinstance(got["queue_totals"], dict) and isinstance(got["message_stats"], dict)


@pytest.mark.parametrize("tag", TAGS)
def test_policies(api, world, tag):
    """One policy is the policymaker's in its login vhosts; the refusal comes before the vhost."""
    w = world
    body = {"pattern": "^zz", "definition": {"max-length": 2}}
    for v in ("{A}", "{B}"):
        put = _as(api, w, tag, "PUT", f"/api/policies/{v}/p-{tag}", body)
        delete = _as(api, w, tag, "DELETE", f"/api/policies/{v}/p-{tag}")
        if tag == "policymaker" and v == "{A}":
            assert (put, delete) == ((201, None), (204, None))
        else:
            assert (put, delete) == ((401, NOT_OBJECT), (401, NOT_OBJECT)), v
        show = _as(api, w, tag, "GET", f"/api/policies/{v}/pol")
        if tag == "policymaker" and v == "{A}":
            assert show[0] == 200 and show[1]["name"] == "pol"
        else:
            assert show == (401, NOT_OBJECT)
    status, got = _as(api, w, tag, "GET", "/api/policies")
    assert status == 200 and sorted(p["vhost"] for p in got if p["vhost"] in (w["A"], w["B"])) == [w["A"]]
    status, got = _as(api, w, tag, "GET", "/api/global-parameters")
    assert status == 200 if tag == "policymaker" else (status, got) == (401, NOT_OBJECT)
    status, got = _as(api, w, tag, "GET", "/api/parameters")
    assert status == 200 if tag == "policymaker" else (status, got) == (401, NOT_OBJECT)


@pytest.mark.parametrize("tag", TAGS)
def test_delete_queue_in_b(api, world, tag):
    assert _as(api, world, tag, "DELETE", "/api/queues/{B}/q") == (401, NOT_VHOST)
    assert call(api, "GET", f"/api/queues/{world['B']}/q")[0] == 200


@pytest.mark.parametrize("tag", TAGS)
def test_one_connection(api, world, tag):
    """Another user's connection: a monitor may read it; no one but an administrator may close it."""
    w = world
    _, _, conns = call(api, "GET", "/api/connections")
    name = urllib.parse.quote([c["name"] for c in conns if c.get("user_provided_name") == f"{w['tag']}-guestB"][0],
                              safe="")
    status, got = _as(api, w, tag, "GET", f"/api/connections/{name}")
    assert status == 200 if tag == "monitoring" else (status, got) == (401, NOT_OBJECT)
    assert _as(api, w, tag, "DELETE", f"/api/connections/{name}") == (401, NOT_OBJECT)
