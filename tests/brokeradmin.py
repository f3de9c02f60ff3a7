"""Administering the broker under test: users, vhosts, permissions, limits, policies, definitions.

The same calls against Leveret and RabbitMQ, so access-control tests run on both:

* :class:`HttpAdmin` -- RabbitMQ's management HTTP API (``LEVERET_TEST_MGMT_URL``, e.g.
  ``http://guest:guest@127.0.0.1:15672``);
* :class:`CtlAdmin` -- ``rabbitmqctl`` (a local RabbitMQ, no management plugin);
* :class:`InprocAdmin` -- an in-process Leveret's admin methods, called on its loop.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from leveret.broker.definitions import import_definitions


def rabbit_password_hash(digest: str, password: str) -> str:
    """A ``password_hash`` as RabbitMQ computes and exports it (``rabbit_password``):
    base64(salt (4 random bytes) + H(salt + password)), ``digest`` naming H (sha256 for
    ``rabbit_password_hashing_sha256``, sha512, md5)."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.new(digest, salt + password.encode()).digest()).decode()


class BrokerAdmin:
    def add_vhost(self, name: str) -> None: ...
    def delete_vhost(self, name: str) -> None: ...
    def add_user(self, name: str, password: str, tags=()) -> None: ...
    def delete_user(self, name: str) -> None: ...
    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> None: ...
    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str, read: str) -> None: ...
    def set_vhost_limits(self, vhost: str, limits: dict) -> None: ...
    def set_user_limits(self, user: str, limits: dict) -> None: ...
    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict, apply_to: str = "all") -> None: ...
    def clear_policy(self, vhost: str, name: str) -> None: ...
    def import_definitions(self, definitions: dict) -> None: ...


class InprocAdmin(BrokerAdmin):
    def __init__(self, threaded):
        self.t = threaded
        self.b = threaded.broker

    def add_vhost(self, name):
        self.t.call(self.b.add_vhost, name)

    def delete_vhost(self, name):
        self.t.call(self.b.delete_vhost, name)

    def add_user(self, name, password, tags=()):
        self.t.call(lambda: self.b.add_user(name, password, list(tags)))

    def delete_user(self, name):
        self.t.call(self.b.delete_user, name)

    def set_permissions(self, user, vhost, configure, write, read):
        self.t.call(self.b.set_permissions, user, vhost, configure, write, read)

    def set_topic_permissions(self, user, vhost, exchange, write, read):
        self.t.call(self.b.set_topic_permissions, user, vhost, exchange, write, read)

    def set_vhost_limits(self, vhost, limits):
        self.t.call(self.b.set_vhost_limits, vhost, limits)

    def set_user_limits(self, user, limits):
        self.t.call(self.b.set_user_limits, user, limits)

    def set_policy(self, vhost, name, pattern, definition, apply_to="all"):
        self.t.call(lambda: self.b.set_policy(name, pattern, definition, vhost=vhost, apply_to=apply_to))

    def clear_policy(self, vhost, name):
        self.t.call(self.b.clear_policy, name, vhost)

    def import_definitions(self, definitions):
        self.t.call(import_definitions, self.b, definitions)


class HttpAdmin(BrokerAdmin):
    def __init__(self, url: str):
        u = urllib.parse.urlparse(url)
        self.base = f"{u.scheme}://{u.hostname}:{u.port or 15672}"
        cred = f"{urllib.parse.unquote(u.username or 'guest')}:{urllib.parse.unquote(u.password or 'guest')}"
        self.auth = "Basic " + base64.b64encode(cred.encode()).decode()

    def _req(self, method: str, path: str, body=None) -> None:
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.base + path, data=data, method=method,
                                   headers={"Authorization": self.auth, "content-type": "application/json"})
        try:
            urllib.request.urlopen(r, timeout=30).read()
        except urllib.error.HTTPError as e:
            if not (method == "DELETE" and e.code == 404):
                raise RuntimeError(f"{method} {path}: {e.code} {e.read()!r}") from None

    @staticmethod
    def q(s: str) -> str:
        return urllib.parse.quote(s, safe="")

    def add_vhost(self, name):
        self._req("PUT", f"/api/vhosts/{self.q(name)}", {})

    def delete_vhost(self, name):
        self._req("DELETE", f"/api/vhosts/{self.q(name)}")

    def add_user(self, name, password, tags=()):
        self._req("PUT", f"/api/users/{self.q(name)}", {"password": password, "tags": ",".join(tags)})

    def delete_user(self, name):
        self._req("DELETE", f"/api/users/{self.q(name)}")

    def set_permissions(self, user, vhost, configure, write, read):
        self._req("PUT", f"/api/permissions/{self.q(vhost)}/{self.q(user)}",
                  {"configure": configure, "write": write, "read": read})

    def set_topic_permissions(self, user, vhost, exchange, write, read):
        self._req("PUT", f"/api/topic-permissions/{self.q(vhost)}/{self.q(user)}",
                  {"exchange": exchange, "write": write, "read": read})

    def set_vhost_limits(self, vhost, limits):
        for k, v in limits.items():
            self._req("PUT", f"/api/vhost-limits/{self.q(vhost)}/{k}", {"value": v})

    def set_user_limits(self, user, limits):
        for k, v in limits.items():
            self._req("PUT", f"/api/user-limits/{self.q(user)}/{k}", {"value": v})

    def set_policy(self, vhost, name, pattern, definition, apply_to="all"):
        self._req("PUT", f"/api/policies/{self.q(vhost)}/{self.q(name)}",
                  {"pattern": pattern, "definition": definition, "apply-to": apply_to, "priority": 0})

    def clear_policy(self, vhost, name):
        self._req("DELETE", f"/api/policies/{self.q(vhost)}/{self.q(name)}")

    def import_definitions(self, definitions):
        self._req("POST", "/api/definitions", definitions)


class CtlAdmin(BrokerAdmin):
    def __init__(self, ctl: str = "rabbitmqctl"):
        self.ctl = ctl

    def _run(self, *args: str) -> None:
        r = subprocess.run([self.ctl, *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{self.ctl} {' '.join(args)}: {r.returncode} {r.stdout} {r.stderr}")

    def add_vhost(self, name):
        self._run("add_vhost", name)

    def delete_vhost(self, name):
        self._run("delete_vhost", name)

    def add_user(self, name, password, tags=()):
        self._run("add_user", name, password)
        if tags:
            self._run("set_user_tags", name, *tags)

    def delete_user(self, name):
        self._run("delete_user", name)

    def set_permissions(self, user, vhost, configure, write, read):
        self._run("set_permissions", "-p", vhost, user, configure, write, read)

    def set_topic_permissions(self, user, vhost, exchange, write, read):
        self._run("set_topic_permissions", "-p", vhost, user, exchange, write, read)

    def set_vhost_limits(self, vhost, limits):
        self._run("set_vhost_limits", "-p", vhost, json.dumps(limits))

    def set_user_limits(self, user, limits):
        self._run("set_user_limits", user, json.dumps(limits))

    def set_policy(self, vhost, name, pattern, definition, apply_to="all"):
        self._run("set_policy", "-p", vhost, "--apply-to", apply_to, name, pattern, json.dumps(definition))

    def clear_policy(self, vhost, name):
        self._run("clear_policy", "-p", vhost, name)

    def import_definitions(self, definitions):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(definitions, f)
            f.flush()
            self._run("import_definitions", f.name)
