"""The brokers behind the pytest fixtures: Leveret in process, or an external broker by URL.

Both give the fixtures the same small interface -- ``url`` (the default vhost), ``host``,
``port``, ``external``, ``new_vhost(hint)`` / ``delete_vhost(name)`` and ``url_for(vhost)`` --
so a suite runs unchanged against either.

* :class:`InProcessBroker`: a :class:`leveret.BackgroundBroker` (its own thread and loop; see
  ``leveret/embed.py`` for why a thread and not the test's loop). A test's vhost is made
  directly on the broker object (``add_vhost`` + ``set_permissions`` for the default user, as
  ``rabbitmqctl add_vhost`` + ``set_permissions`` would), and deleted after the test, which
  closes that vhost's connections with 320 CONNECTION_FORCED as RabbitMQ's ``delete_vhost`` does.
* :class:`ExternalBroker`: any broker at an AMQP URL (a real RabbitMQ in CI). A test's vhost is
  made through the RabbitMQ management HTTP API (``PUT /api/vhosts/NAME``, ``PUT
  /api/permissions/NAME/USER``, ``DELETE /api/vhosts/NAME``), at the URL given or, by default,
  ``http://HOST:15672`` with the AMQP URL's credentials. When that API cannot be reached or
  refuses the user, every test shares the URL's own vhost (``isolated`` is False) and the plugin
  says so once with a warning: isolation is then the tests' own business (unique names).
"""
from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from ..embed import BackgroundBroker
from ..settings import Settings

ALL = (".*", ".*", ".*")      # configure, write, read: what the default user gets on a test vhost


def vhost_name(hint: str) -> str:
    """``test.<hint>.<8 hex>``: unique, and recognisable in a management UI (``hint`` is the
    test's name, reduced to characters every tool prints unquoted)."""
    hint = re.sub(r"[^A-Za-z0-9_.-]+", "-", hint).strip("-")[:40]
    return f"test.{hint}.{uuid.uuid4().hex[:8]}" if hint else f"test.{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class AmqpURL:
    """An ``amqp://user:pass@host:port/vhost`` URL taken apart (RabbitMQ's URI spec: the vhost
    is the percent-decoded path without its leading slash; an absent path is ``/``)."""
    scheme: str
    user: str
    password: str
    host: str
    port: int
    vhost: str
    query: str = ""

    @classmethod
    def parse(cls, url: str) -> AmqpURL:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("amqp", "amqps"):
            raise ValueError(f"not an AMQP URL (amqp://user:pass@host:port/vhost): {url!r}")
        if not u.hostname:
            raise ValueError(f"no host in AMQP URL {url!r}")
        vhost = urllib.parse.unquote(u.path[1:]) if u.path not in ("", "/") else "/"
        try:
            port = u.port or (5671 if u.scheme == "amqps" else 5672)
        except ValueError as e:
            raise ValueError(f"bad port in AMQP URL {url!r}: {e}") from None
        return cls(u.scheme, urllib.parse.unquote(u.username or "guest"),
                   urllib.parse.unquote(u.password or "guest"), u.hostname, port, vhost, u.query)

    def with_vhost(self, vhost: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        q = f"?{self.query}" if self.query else ""
        return (f"{self.scheme}://{urllib.parse.quote(self.user, safe='')}:"
                f"{urllib.parse.quote(self.password, safe='')}@{host}:{self.port}/"
                f"{urllib.parse.quote(vhost, safe='')}{q}")


class _AtURL:
    """Where clients connect: host, port, and the URL of any vhost."""

    _url: AmqpURL

    @property
    def host(self) -> str:
        return self._url.host

    @property
    def port(self) -> int:
        return self._url.port

    def url_for(self, vhost: str) -> str:
        return self._url.with_vhost(vhost)


class InProcessBroker(_AtURL):
    """A Leveret in this process (a background thread), with per-test vhosts."""

    external = False
    isolated = True

    def __init__(self, settings: Settings | None = None) -> None:
        self.background = BackgroundBroker(settings if settings is not None else Settings(port=0))

    def start(self) -> InProcessBroker:
        self.background.start()
        self._url = AmqpURL.parse(self.background.url)
        return self

    def close(self) -> None:
        self.background.stop()

    @property
    def broker(self):
        """The :class:`leveret.Broker` object (touch it only through :meth:`call`)."""
        return self.background.broker

    def call(self, fn, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the broker's loop (``leveret.BackgroundBroker.call``)."""
        return self.background.call(fn, *args, **kwargs)

    @property
    def url(self) -> str:
        return self.background.url



    def new_vhost(self, hint: str = "") -> str:
        name = vhost_name(hint)
        self.call(self._add, name)
        return name

    def _add(self, name: str) -> None:     # on the broker's loop
        b = self.background.broker
        b.add_vhost(name, exist_ok=False)
        b.set_permissions(b.settings.default_user, name, *ALL)

    def delete_vhost(self, name: str) -> None:
        if self.background.running:
            self.call(self.background.broker.delete_vhost, name)


class ManagementError(RuntimeError):
    pass


class ExternalBroker(_AtURL):
    """A broker at an AMQP URL; per-test vhosts through its management HTTP API when it has one."""

    external = True

    def __init__(self, url: str, management_url: str | None = None) -> None:
        self._url = AmqpURL.parse(url)
        self.url = url
        self.management_url = (management_url or f"http://{self._url.host}:15672").rstrip("/")
        m = urllib.parse.urlsplit(self.management_url)
        if m.scheme not in ("http", "https") or not m.hostname:
            raise ValueError(f"not a management API URL (http://[user:pass@]host:port): {management_url!r}")
        user = urllib.parse.unquote(m.username) if m.username else self._url.user
        password = urllib.parse.unquote(m.password) if m.password else self._url.password
        netloc = m.hostname if m.port is None else f"{m.hostname}:{m.port}"
        self._api = f"{m.scheme}://{netloc}{m.path}/api"
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.isolated = False
        self.why_shared = ""

    def start(self) -> ExternalBroker:
        """Find out whether per-test vhosts can be made (``GET /api/whoami``: an administrator)."""
        try:
            me = self._request("GET", "/whoami")
        except ManagementError as e:
            self.why_shared = str(e)
            return self
        tags = me.get("tags", [])
        tags = tags.split(",") if isinstance(tags, str) else tags
        if "administrator" in tags:
            self.isolated = True
        else:
            self.why_shared = f"user {me.get('name')!r} is not an administrator (tags {tags})"
        return self

    def close(self) -> None:
        pass


    @property
    def default_vhost(self) -> str:
        return self._url.vhost


    def new_vhost(self, hint: str = "") -> str:
        if not self.isolated:
            return self._url.vhost
        name = vhost_name(hint)
        q = urllib.parse.quote(name, safe="")
        self._request("PUT", f"/vhosts/{q}", {})
        try:
            self._request("PUT", f"/permissions/{q}/{urllib.parse.quote(self._url.user, safe='')}",
                          dict(zip(("configure", "write", "read"), ALL)))
        except BaseException:
            self.delete_vhost(name)
            raise
        return name

    def delete_vhost(self, name: str) -> None:
        if self.isolated and name != self._url.vhost:
            self._request("DELETE", f"/vhosts/{urllib.parse.quote(name, safe='')}")

    def _request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self._api + path, data=data, method=method, headers={
            "Authorization": self._auth, "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise ManagementError(f"{method} {self._api}{path}: HTTP {e.code} {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ManagementError(f"{method} {self._api}{path}: {getattr(e, 'reason', e)}") from None
        return json.loads(text) if text.strip() else None
