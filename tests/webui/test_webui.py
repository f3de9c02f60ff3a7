"""The web UI in a real browser against ``leveret serve``: log in, watch the overview's queued
messages grow while a publisher runs, find a queue by the list's filter, purge it, publish and
get a message on its page, delete it; and a broker with 10,000 queues whose queue list loads
one page and filters on the server (load and filter times are printed, not asserted)."""
from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid

import pika
import pytest

pytestmark = pytest.mark.leveret_only


def api_status(mgmt: str, path: str) -> int:
    r = urllib.request.Request(mgmt + path, headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def login(page, mgmt: str, refresh_ms: int = 2000) -> None:
    # the refresh interval is a remembered choice of the page (its menu offers 2 s at the least)
    page.add_init_script(f"localStorage.setItem('leveret.interval', '{refresh_ms}')")
    page.goto(mgmt + "/")
    page.fill("input[name=username]", "guest")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Login failed")
    page.fill("input[name=password]", "guest")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-stat=messages]")


def shown_number(page, selector: str) -> int:
    return int(page.inner_text(selector).replace(",", "") or 0)


class Publisher(threading.Thread):
    """Publishes to ``queue`` every 20 ms until stopped."""

    def __init__(self, url: str, queue: str):
        super().__init__(daemon=True)
        self.url, self.queue = url, queue
        self.stopping = threading.Event()
        self.sent = 0

    def run(self):
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = conn.channel()
        while not self.stopping.is_set():
            for _ in range(5):
                ch.basic_publish("", self.queue, b"filler")
                self.sent += 1
            conn.sleep(0.02)
        conn.close()

    def stop(self):
        self.stopping.set()
        if self.is_alive():
            self.join(10)


def test_tour(page, leveret_session_server, screenshots):
    server = leveret_session_server
    mgmt = server.management_url
    q = f"webui-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(server.url))
    conn.channel().queue_declare(q)
    conn.close()
    pub = Publisher(server.url, q)
    try:
        login(page, mgmt)
        # the overview's queued-messages chart grows while the publisher runs
        total = '[data-chart="Queued messages"] [data-series="Total"] .value'
        pub.start()
        page.wait_for_function(f"() => Number(document.querySelector('{total}')?.textContent.replace(/,/g, '')) > 0")
        first = shown_number(page, total)
        page.wait_for_function(f"() => Number(document.querySelector('{total}').textContent.replace(/,/g, '')) > {first}")
        assert shown_number(page, total) > first
        assert page.locator('[data-chart="Queued messages"] canvas').count() == 1
        page.wait_for_timeout(4000)          # a few more samples on the chart for the screenshot
        page.screenshot(path=os.path.join(screenshots, "overview.png"))
        pub.stop()

        # the queue list, filtered as you type, leads to the queue's page
        page.click("nav a[data-nav=queues]")
        page.fill("input.filter", q)
        page.click(f"table a:text-is('{q}')")
        page.wait_for_selector("h1:text-is('%s')" % q)
        page.wait_for_function("() => Number(document.querySelector('[data-stat=messages] .v').textContent.replace(/,/g, '')) > 0")
        # purge (a second click confirms), then publish one message and get it back
        purge = page.locator("button", has_text="Purge messages")
        purge.click()
        page.locator("button", has_text="Confirm: Purge messages").click()
        page.wait_for_selector("text=Purged.")
        page.wait_for_function("() => document.querySelector('[data-stat=messages] .v').textContent === '0'")
        payload = f"hello from the browser {q}"
        page.fill("form.publish textarea[name=payload]", payload)
        page.fill("form.publish textarea[name=headers]", "source=webui")
        page.click("form.publish button[type=submit]")
        page.wait_for_selector(".publish-status >> text=Message published.")
        page.wait_for_function("() => document.querySelector('[data-stat=messages] .v').textContent === '1'")
        page.select_option("form.get select[name=ackmode]", "ack_requeue_false")
        page.click("form.get button[type=submit]")
        assert page.inner_text(".messages pre.payload") == payload
        assert '"source":"webui"' in page.inner_text(".messages [data-message='0']")
        page.screenshot(path=os.path.join(screenshots, "queue.png"), full_page=True)
        page.wait_for_function("() => document.querySelector('[data-stat=messages] .v').textContent === '0'")
        # delete it: back to the list, and the API no longer knows it
        page.locator("button", has_text="Delete queue").click()
        page.locator("button", has_text="Confirm: Delete queue").click()
        page.wait_for_url("**/#/queues")
        assert api_status(mgmt, f"/api/queues/%2F/{q}") == 404
        # admin: add a user through the form, see it listed, delete it from the list
        user = f"webui-user-{q[6:]}"
        page.click("nav a[data-nav=admin]")
        page.fill("form.add-user input[name=name]", user)
        page.fill("form.add-user input[name=password]", "secret")
        page.fill("form.add-user input[name=tags]", "monitoring, policymaker")
        page.click("form.add-user button[type=submit]")
        row = page.locator(".paged-table tbody tr", has=page.locator(f"td:text-is('{user}')"))
        assert row.inner_text().split("\t")[1].split() == ["monitoring", "policymaker"]
        page.screenshot(path=os.path.join(screenshots, "admin.png"))
        row.locator("button", has_text="Delete").click()
        row.locator("button", has_text="Confirm: Delete").click()
        page.wait_for_selector(f"td:text-is('{user}')", state="detached")
        assert api_status(mgmt, f"/api/users/{user}") == 404
        # a refusal shows the API's reason, unescaped
        page.click(".tabs a:text-is('Policies')")
        page.fill("form.fields input[name=name]", f"webui-{q}")
        page.fill("form.fields input[name=pattern]", "^nothing$")
        page.fill("form.fields textarea[name=definition]", '{"max-length": "x"}')
        page.click("form.fields button[type=submit]")
        assert 'Validation failed <<"x">> is not a valid maximum length' in page.inner_text(".note.bad")
    finally:
        pub.stop()
        c = pika.BlockingConnection(pika.URLParameters(server.url))
        c.channel().queue_delete(q)
        c.close()


def test_ten_thousand_queues(page, leveret_server, tmp_path, screenshots):
    n = 10_000
    defs = {"queues": [{"name": f"q-{i:05d}", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}
                       for i in range(n)]}
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    (tmp_path / "data").mkdir()
    server = leveret_server("--definitions", str(path), data_dir=str(tmp_path / "data"))
    mgmt = server.management_url
    login(page, mgmt, refresh_ms=30000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/queues" in r.url else None)

    t0 = time.perf_counter()
    page.click("nav a[data-nav=queues]")
    page.wait_for_selector("text=1–100 of 10,000")
    load = time.perf_counter() - t0
    assert page.locator("table[data-x], .paged-table tbody tr").count() == 100
    assert "page_size=100" in requests[-1] and "columns=" in requests[-1]
    page.screenshot(path=os.path.join(screenshots, "queues-10000.png"))

    before = len(requests)
    t0 = time.perf_counter()
    page.type("input.filter", "q-09999", delay=20)
    page.wait_for_selector("text=1–1 of 1 (filtered from 10,000)")
    filtered = time.perf_counter() - t0
    assert page.locator(".paged-table tbody tr").all_inner_texts()[0].startswith("q-09999")
    typed = len(requests) - before

    page.fill("input.filter", "^q-0000[0-4]$")
    page.check("input.regex")
    page.wait_for_selector("text=1–5 of 5 (filtered from 10,000)")
    names = [t.split("\t")[0] for t in page.locator(".paged-table tbody tr").all_inner_texts()]
    assert names == [f"q-0000{i}" for i in range(5)]
    page.fill("input.filter", "q-(")
    page.wait_for_selector("input.filter.invalid")
    assert "invalid regular expression" in page.inner_text(".paged-table .err")

    # sorting is the server's too: the biggest name first, remembered for the next visit
    page.fill("input.filter", "")
    page.uncheck("input.regex")
    page.wait_for_selector("text=1–100 of 10,000")
    page.click(".paged-table th[data-key=name]")
    page.click(".paged-table th[data-key=name]")
    page.wait_for_function("() => document.querySelector('.paged-table tbody td.name')?.textContent === 'q-09999'")
    page.reload()
    page.wait_for_function("() => document.querySelector('.paged-table tbody td.name')?.textContent === 'q-09999'")
    print(f"\n10,000 queues: queues page shown in {load:.2f} s; filter typed to its one match in {filtered:.2f} s "
          f"({typed} API requests for 7 keystrokes); API time of the last listing {page.get_attribute('.paged-table', 'data-ms')} ms")


def test_alarm_banner_on_every_page(page, leveret_server, tmp_path):
    # a memory watermark below what the process uses: the memory alarm is on from the start
    server = leveret_server("--vm-memory-high-watermark", "1MB")
    login(page, server.management_url)
    for nav in ("overview", "queues", "admin", "definitions"):
        page.click(f"nav a[data-nav={nav}]")
        banner = page.wait_for_selector("[data-alarm]")
        assert "memory alarm on" in banner.inner_text()
