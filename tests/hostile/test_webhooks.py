"""Hostile webhook targets: internal addresses refused at registration and at delivery unless
an operator allows them; deliveries durable across a restart; no network detail in what a
tenant reads back."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import webhooks as webhooks_module
from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.api.webhook_targets import ALLOW_ENV
from orchestrator.api.webhooks import ATTEMPTS, BACKOFF_S, NO_ANSWER, Webhooks
from orchestrator.errors import InputError
from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT
from tests.workflow.fixtures import scripted_workflow_catalog

INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:6379/",
    "http://127.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://localhost:8000/v1/runs",
    "http://LOCALHOST./",
    "http://0.0.0.0:22/",
    "http://10.0.0.5/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[::1]:8000/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64 of 169.254.169.254
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://224.0.0.1/",
    "https://no-such-host.invalid/",
]
NOT_HTTP = [
    "file:///etc/passwd",
    "gopher://example.com:70/",
    "ftp://example.com/",
    "//example.com/hook",
    "example.com/hook",
    "http:///nohost",
]


@pytest.fixture(autouse=True)
def no_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)


@pytest.fixture
def hooks(tmp_path: Path) -> Webhooks:
    return Webhooks(Database(f"sqlite:///{tmp_path / 'hooks.db'}"), background=False)


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_targets_are_refused_at_registration(hooks: Webhooks, url: str) -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match="must be a public internet address") as refused:
        hooks.register("acme", url)
    assert "CADRE_WEBHOOK_ALLOW" in refused.value.message
    assert hooks.all("acme") == [] and time.monotonic() - started < 1


@pytest.mark.parametrize("url", NOT_HTTP)
def test_non_http_targets_are_refused(hooks: Webhooks, url: str) -> None:
    with pytest.raises(InputError, match="give an absolute http:// or https:// URL"):
        hooks.register("acme", url)
    assert hooks.all("acme") == []


@pytest.mark.parametrize("url", ["HtTps://o]", "http://[::1", "https://[not-an-address]/"])
def test_a_url_that_does_not_parse_is_refused_not_a_crash(hooks: Webhooks, url: str) -> None:
    with pytest.raises(InputError, match="webhook url"):
        hooks.register("acme", url)
    assert hooks.all("acme") == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://8.8.8.8/ok\r\nX-Injected: 1", "character 18 is '\\r'"),
        ("http://8.8.8.8/a\tb", "character 17 is '\\t'"),
        ("http://8.8.8.8/a b", "character 17 is ' '"),
        ("http://8.8.8.8/\x7f", "character 16 is '\\x7f'"),
        ("http://8.8.8.8:0/", "the port is not a number from 1 to 65535"),
        ("http://8.8.8.8:65536/", "the port is not a number from 1 to 65535"),
    ],
)
def test_a_url_with_control_characters_or_no_port_is_refused(
    hooks: Webhooks, url: str, why: str
) -> None:
    """Such a URL was stored and then failed every delivery before a request was made."""
    with pytest.raises(InputError, match=re.escape(why)):
        hooks.register("acme", url)
    assert hooks.all("acme") == []


def test_a_private_name_and_an_unresolvable_one_are_refused_alike(hooks: Webhooks) -> None:
    """The refusal does not tell a tenant which internal names exist."""
    messages = []
    for url in ("http://localhost/", "http://no-such-host.invalid/"):
        with pytest.raises(InputError) as refused:
            hooks.register("acme", url)
        messages.append(refused.value.message.replace(url, "URL"))
    assert messages[0] == messages[1]


def test_the_operator_allowlist_admits_hosts_and_networks(
    hooks: Webhooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "hooks.internal, 10.2.0.0/16,127.0.0.1,localhost")
    for url in (
        "http://10.2.3.4/hook",
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "https://hooks.internal/x",
    ):
        hooks.register("acme", url)
    for url in ("http://10.3.0.1/", "http://127.0.0.2/", "http://169.254.169.254/"):
        with pytest.raises(InputError, match="public internet address"):
            hooks.register("acme", url)
    assert len(hooks.all("acme")) == 4


def test_the_api_answers_422_and_stores_nothing(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cadre.db'}"
    key = KeyStore(Database(db_url)).create("acme", "admin", "admin")[1]
    app = create_app(
        Settings(catalog=load_catalog(scripted_workflow_catalog(tmp_path)), database_url=db_url)
    )
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {key}"}
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/"):
        refused = client.post("/v1/webhooks", json={"url": url}, headers=headers)
        assert refused.status_code == 422, refused.text
        assert "public internet address" in refused.json()["error"]["message"]
    assert client.get("/v1/webhooks", headers=headers).json() == {"webhooks": []}


# -- delivering -------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1; answers each POST with the next status in ``statuses``
    (the last one repeats)."""

    def __init__(self, statuses: tuple[int, ...] = (204,), port: int = 0) -> None:
        self.got: list[dict[str, Any]] = []
        got, answers = self.got, list(statuses)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                got.append({"host": self.headers["host"], **json.loads(body)})
                self.send_response(answers.pop(0) if len(answers) > 1 else answers[0])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def finished_run(db: Database, tenant: str = "acme") -> Any:
    store = RunStore(db)
    run, _ = store.create_run("claim", {"claim": "a dent"}, tenant=tenant)
    store.set_status(run.id, "succeeded")
    return store.run(run.id), store


def test_a_target_refused_at_delivery_is_not_contacted(
    hooks: Webhooks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Allowed when registered, no longer allowed when delivered: nothing is sent."""
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    hooks.register("acme", f"http://127.0.0.1:{receiver.port}/hook")
    monkeypatch.delenv(ALLOW_ENV)
    run, store = finished_run(hooks.db)
    hooks.notify(run, store)
    assert hooks.deliver_due() == 1
    (delivery,) = hooks.deliveries("acme")
    assert delivery["state"] == "failed" and receiver.got == []
    assert delivery["last_error"].startswith("refused: the target is not a public address")


def test_a_name_is_delivered_to_the_address_that_was_checked(
    hooks: Webhooks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name allowed by its network, not by itself, is resolved once and dialled at that
    address; the receiver still sees its own name in Host."""
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.0/8")
    hooks.register("acme", f"http://localhost:{receiver.port}/hook")
    run, store = finished_run(hooks.db)
    hooks.notify(run, store)
    hooks.deliver_due()
    assert [d["state"] for d in hooks.deliveries("acme")] == ["delivered"]
    assert receiver.got[0]["host"] == f"localhost:{receiver.port}"


def test_what_a_tenant_reads_is_the_status_or_no_answer(
    hooks: Webhooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed port and a port that answers 503 read differently only by the HTTP status:
    no 'connection refused', no timing, no addresses."""
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    unavailable = Receiver((503,))
    try:
        hooks.register("acme", f"http://127.0.0.1:{free_port()}/closed")
        hooks.register("acme", f"http://127.0.0.1:{unavailable.port}/busy")
        run, store = finished_run(hooks.db)
        hooks.notify(run, store)
        hooks.deliver_due()
    finally:
        unavailable.close()
    closed, busy = sorted(hooks.deliveries("acme"), key=lambda d: d["response_code"] or 0)
    assert (closed["last_error"], closed["response_code"]) == (NO_ANSWER, None)
    assert (busy["last_error"], busy["response_code"]) == ("HTTP 503", 503)
    for delivery in (closed, busy):
        assert delivery["state"] == "pending" and delivery["attempts"] == 1
        assert set(delivery) >= {"next_attempt_at", "attempts"}
        assert "claimed_until" not in delivery and "body" not in delivery
        assert "refused" not in json.dumps(delivery).lower()


def test_a_delivery_is_tried_once_and_retried_len_backoff_times(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    hooks = Webhooks(Database(database_url), background=False)
    failing = Receiver((500,))
    try:
        hooks.register("acme", f"http://127.0.0.1:{failing.port}/hook")
        run, store = finished_run(hooks.db)
        hooks.notify(run, store)
        now = time.time()
        assert hooks.deliver_due(now) == 1
        for pause in BACKOFF_S:
            assert hooks.deliver_due(now + pause - 0.5) == 0  # not yet: it backs off
            now += pause
            assert hooks.deliver_due(now) == 1
        assert hooks.deliver_due(now + 3600) == 0
    finally:
        failing.close()
    (delivery,) = hooks.deliveries("acme")
    assert ATTEMPTS == 4 and len(failing.got) == ATTEMPTS
    assert (delivery["state"], delivery["attempts"]) == ("failed", ATTEMPTS)


class Stubborn:
    """A receiver on 127.0.0.1 that will not let go: ``huge`` answers 200 with a body of 10 GB
    written as fast as it is read; ``drip`` writes its status line one byte at a time."""

    def __init__(self, mode: str) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.mode = mode
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                if self.mode == "drip":
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        conn.sendall(bytes([byte]))
                        time.sleep(0.2)
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
                while self.sent < 10**10:
                    conn.sendall(b"x" * 65536)
                    self.sent += 65536
            except OSError:  # the sender hung up
                return

    def close(self) -> None:
        self.listener.close()


def test_a_receiver_that_drips_or_floods_holds_up_nothing_and_fills_no_memory(
    hooks: Webhooks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tenant's receiver cannot stall another tenant's deliveries (each attempt has a
    deadline, and the attempts of a round go out together) nor fill the sender's memory with
    its answer (the answer's body is never read)."""
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    monkeypatch.setattr(webhooks_module, "DEADLINE_S", 2.0)
    drip, flood = Stubborn("drip"), Stubborn("huge")
    try:
        hooks.register("acme", f"http://127.0.0.1:{drip.port}/drip")
        hooks.register("acme", f"http://127.0.0.1:{flood.port}/flood")
        hooks.register("globex", f"http://127.0.0.1:{receiver.port}/ok")
        for tenant in ("acme", "globex"):
            run, store = finished_run(hooks.db, tenant)
            hooks.notify(run, store)
        started = time.monotonic()
        assert hooks.deliver_due() == 3
        took = time.monotonic() - started
    finally:
        drip.close()
        flood.close()
    assert took < 6, f"a round took {took:.1f} s"  # one deadline, not one per receiver
    acme = {d["webhook_id"]: d for d in hooks.deliveries("acme")}
    states = sorted((d["state"], d["response_code"], d["last_error"]) for d in acme.values())
    assert states == [("delivered", 200, None), ("pending", None, NO_ANSWER)]
    assert flood.sent < 10**9, "the answer's body was read"
    assert [d["state"] for d in hooks.deliveries("globex")] == ["delivered"]


def test_two_deliverers_never_send_one_attempt_twice(
    database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    url = database_url
    first = Webhooks(Database(url), background=False)
    first.register("acme", f"http://127.0.0.1:{receiver.port}/hook")
    for _ in range(10):
        run, store = finished_run(first.db)
        first.notify(run, store)
    deliverers = [Webhooks(Database(url), background=False) for _ in range(3)]
    threads = [threading.Thread(target=d.deliver_due) for d in deliverers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receiver.got) == 10
    assert len({event["run"]["id"] for event in receiver.got}) == 10


RECORD_AND_DIE = """
import os, sys, time
from orchestrator.api.webhooks import Webhooks
from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
db = Database(sys.argv[1])
hooks = Webhooks(db)
hooks.register("acme", sys.argv[2])
store = RunStore(db)
run, _ = store.create_run("claim", {"claim": "a dent"}, tenant="acme")
store.set_status(run.id, "succeeded")
hooks.notify(store.run(run.id), store)  # the deliverer thread tries; the receiver is down
while not any(d["attempts"] for d in hooks.deliveries("acme")):
    time.sleep(0.01)
os._exit(0)  # gone before the retry, as if killed
"""


def test_a_pending_delivery_is_sent_after_a_restart(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    url, port = database_url, free_port()
    subprocess.run(
        [sys.executable, "-c", RECORD_AND_DIE, url, f"http://127.0.0.1:{port}/hook"],
        cwd=ROOT,
        env=os.environ,
        check=True,
        timeout=60,
    )
    left = Webhooks(Database(url), background=False).deliveries("acme")
    assert [(d["state"], d["attempts"], d["last_error"]) for d in left] == [
        ("pending", 1, NO_ANSWER)
    ]
    receiver = Receiver(port=port)
    try:
        started = time.monotonic()
        Webhooks(Database(url))  # a process starting up: its deliverer takes the pending one
        while not receiver.got and time.monotonic() - started < BACKOFF_S[0] + 5:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        receiver.close()
    assert len(receiver.got) == 1 and receiver.got[0]["event"] == "run.finished"
    (delivery,) = Webhooks(Database(url), background=False).deliveries("acme")
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 2)


def test_the_background_deliverer_ends_when_nothing_is_pending(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    url = f"sqlite:///{tmp_path / 'hooks.db'}"
    hooks = Webhooks(Database(url))
    hooks.register("acme", f"http://127.0.0.1:{receiver.port}/hook")
    run, store = finished_run(hooks.db)
    hooks.notify(run, store)
    deadline = time.monotonic() + 10
    while url in webhooks_module._deliverers:
        assert time.monotonic() < deadline, "the deliverer is still running"
        time.sleep(0.05)
    assert [d["state"] for d in hooks.deliveries("acme")] == ["delivered"]
