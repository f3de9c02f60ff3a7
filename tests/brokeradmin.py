"""Administering the broker under test: users, vhosts, permissions, limits.

The same calls against Leveret and RabbitMQ, so access-control tests run on both:

* :class:`HttpAdmin` -- RabbitMQ's management HTTP API (``LEVERET_TEST_MGMT_URL``, e.g.
  ``http://guest:guest@127.0.0.1:15672``);
* :class:`CtlAdmin` -- ``rabbitmqctl`` (a local RabbitMQ, no management plugin);
* :class:`InprocAdmin` -- an in-process Leveret's admin methods, called on its loop.
"""
from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request


class BrokerAdmin:
    def add_vhost(self, name: str) -> None: ...
    def delete_vhost(self, name: str) -> None: ...
    def add_user(self, name: str, password: str, tags=()) -> None: ...
    def delete_user(self, name: str) -> None: ...
    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> None: ...
    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str, read: str) -> None: ...
    def set_vhost_limits(self, vhost: str, limits: dict) -> None: ...
    def set_user_limits(self, user: str, limits: dict) -> None: ...


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
