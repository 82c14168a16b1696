"""GET /v1/runs/{id}/stream: a real uvicorn server on 127.0.0.1 over a real SQLite run database,
its runs driven by a real run driver (the queue, leases, checkpoints; the scripted engine in
this process, no Ray), followed with real HTTP clients: through a review decided while
streaming, resumed with Last-Event-ID, by two clients at once, and refused to another tenant."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.runs.worker import RunDriver, serve_in_thread
from orchestrator.specialists.local import LocalAsker
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog

BIG_CLAIM = {"claim": "Storm damage to the roof, policy P-1"}  # 2500: needs the adjuster
Event = dict[str, Any]


class Served:
    """The API and one run driver, served by uvicorn on a loopback port."""

    def __init__(self, tmp_path: Path) -> None:
        root = scripted_workflow_catalog(tmp_path)
        url = self.url = f"sqlite:///{tmp_path / 'cadre.db'}"
        catalog = load_catalog(root)
        self.driver = RunDriver(catalog, url, asker=LocalAsker(catalog), poll_s=0.2)
        self.driver_thread = serve_in_thread(self.driver)
        keys = KeyStore(Database(url))
        self.keys = {
            who: keys.create(tenant, role, who)[1]
            for who, tenant, role in (
                ("submitter", "acme", "submitter"),
                ("reviewer", "acme", "reviewer"),
                ("stranger", "globex", "admin"),
            )
        }
        app = create_app(Settings(catalog=catalog, database_url=url, wake=self.driver.wake))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.base = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.server_thread = threading.Thread(target=self.server.run, daemon=True)
        self.server_thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def client(self, who: str = "submitter") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def close(self) -> None:
        self.server.should_exit = True
        self.server_thread.join(10)
        self.driver.stop()
        self.driver_thread.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    served = Served(tmp_path)
    yield served
    served.close()


def events(response: httpx.Response) -> Iterator[Event]:
    """The events of an SSE response as they come, each as ``{id, event, data}``;
    keep-alive comments are skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields:
            yield {"id": int(fields["id"]), "event": fields["event"], **json.loads(fields["data"])}
            fields = {}


def follow(
    client: httpx.Client, run_id: str, until: str = "end", **headers: str
) -> tuple[list[Event], str]:
    """Read a run's stream until the event ``until`` (included), then hang up."""
    got: list[Event] = []
    with client.stream("GET", f"/v1/runs/{run_id}/stream", headers=headers) as response:
        assert response.status_code == 200, response.read()
        kind = response.headers["content-type"]
        for event in events(response):
            got.append(event)
            if event["event"] == until:
                break
    return got, kind


def submit(client: httpx.Client) -> str:
    response = client.post("/v1/runs", json={"workflow": "claim", "input": BIG_CLAIM})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_a_run_is_followed_through_its_review_to_the_end_and_resumed_losing_nothing(
    served: Served,
) -> None:
    submitter, reviewer = served.client(), served.client("reviewer")
    run_id = submit(submitter)
    watcher: list[Event] = []  # a second client, following the whole run at the same time
    other = threading.Thread(target=lambda: watcher.extend(follow(submitter, run_id)[0]))
    other.start()

    before, kind = follow(submitter, run_id, until="awaiting_review")
    assert kind.startswith("text/event-stream")
    review = before[-1]
    assert review["event"] == "awaiting_review" and review["review_id"].startswith("rv-")
    assert review["node"] == "adjuster"
    decided = reviewer.post(
        f"/v1/reviews/{review['review_id']}/decision", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.text
    # Reconnect after the last event received, as a browser's EventSource does.
    after, _ = follow(submitter, run_id, **{"Last-Event-ID": str(review["id"])})
    other.join(60)

    seen = before + after
    assert seen == watcher, "a resumed stream and an unbroken one saw the same events"
    ids = [e["id"] for e in seen]
    assert ids[:-1] == sorted(set(ids[:-1])), "ids increase; nothing twice"
    assert ids[-1] == ids[-2], "end carries the id of the event before it"
    shape = [(e["event"], e.get("decision") or e.get("node") or e.get("status")) for e in seen]
    assert shape == [
        ("status", "queued"),
        ("status", "running"),
        ("node", "extract"),
        ("node", "payout"),
        ("node", "size"),
        ("awaiting_review", "adjuster"),
        ("status", "awaiting_review"),
        ("decision", "approve"),
        ("status", "running"),
        ("node", "adjuster"),
        ("node", "decide"),
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]
    extract = seen[2]
    assert extract["keys"] == ["fields"] and extract["run_id"] == run_id
    assert extract["usage"]["extractor"]["input_tokens"] > 0
    assert seen[7]["by"].startswith("reviewer (acme/reviewer")
    end = seen[-1]
    assert end["output"]["payout"] == 2400 and end["error"] is None

    # A finished run streams its history, then end; the query parameter resumes it too.
    again, _ = follow(submitter, run_id)
    assert again == seen
    tail, _ = follow(submitter, run_id, until="end")
    resumed = submitter.get(f"/v1/runs/{run_id}/stream", params={"last_event_id": ids[4]})
    assert [e["id"] for e in events(resumed)] == ids[5:]
    assert tail == seen


def test_another_tenant_gets_404_and_a_bad_id_422(served: Served) -> None:
    run_id = submit(served.client())
    stranger = served.client("stranger").get(f"/v1/runs/{run_id}/stream")
    assert stranger.status_code == 404
    assert stranger.json()["error"]["message"] == f"no run {run_id!r}"
    missing = served.client().get("/v1/runs/run-000000000000/stream")
    assert missing.status_code == 404
    bad = served.client().get(f"/v1/runs/{run_id}/stream", params={"last_event_id": "x"})
    assert bad.status_code == 422
    assert "/v1/runs/{run_id}/stream" in served.client().get("/openapi.json").json()["paths"]


def test_a_stream_whose_key_is_revoked_stops_with_an_error_event(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.api.routes import runs as routes

    monkeypatch.setattr(routes, "KEY_RECHECK_S", 0.3)
    run_id = submit(served.client())
    lines: list[str] = []
    started = time.monotonic()
    with served.client("reviewer").stream("GET", f"/v1/runs/{run_id}/stream") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(line)
            if line == "event: awaiting_review":  # the run waits: revoke the reader's key
                keys = KeyStore(Database(served.url))
                keys.revoke(next(k.id for k in keys.all("acme") if k.name == "reviewer"))
            assert time.monotonic() - started < 30, lines
    assert "event: error" in lines
    assert any("the API key of this stream was revoked" in line for line in lines)
    assert "event: end" not in lines  # the run is still waiting; the stream just stopped
