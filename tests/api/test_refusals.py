"""Refusals before a handler runs: a body over the limit is 413, whether it states its length or
streams; a compressed body 415; a body that never arrives in full 408; a body that is not JSON
says so; a bug answers 500 in the one error format; no redirect is built from a Host header."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestrator.api import refusals
from orchestrator.api.refusals import install_refusals
from tests.api.helpers import (
    Api,
    make_api,
    submit,
)


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_body_bytes=2048)
    huge = {"workflow": "claim", "input": {"claim": "x" * 5000}}
    response = submit(api, huge)
    assert response.status_code == 413 and "limit is 2048" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield json.dumps(huge).encode()

    streamed = api.client.post(
        "/v1/runs",
        content=chunks(),
        headers={**api.as_("acme-submitter"), "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert api.client.get("/v1/runs", headers=api.as_("acme-admin")).json()["runs"] == []

    small = {"workflow": "claim", "input": {"claim": "hail dented my car"}}

    def small_chunks() -> Iterator[bytes]:  # under the limit: read ahead, then handed on whole
        body = json.dumps(small).encode()
        yield body[:10]
        yield body[10:]

    accepted = api.client.post(
        "/v1/runs",
        content=small_chunks(),
        headers={**api.as_("acme-submitter"), "content-type": "application/json"},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["input"] == small["input"]


def test_a_body_that_never_arrives_in_full_is_408(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that declares 100 bytes and sends 5 held a server worker for good."""
    monkeypatch.setattr(refusals, "BODY_DEADLINE_S", 0.5)
    app = FastAPI()
    install_refusals(app, 1000)

    @app.post("/x")
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    sent: list[dict[str, Any]] = []

    async def go() -> None:
        parts = [{"type": "http.request", "body": b'{"a":', "more_body": True}]

        async def receive() -> dict[str, Any]:
            if parts:
                return parts.pop()
            await asyncio.sleep(3600)  # the rest never comes
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/x",
            "raw_path": b"/x",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(go())
    assert sent[0]["status"] == 408
    assert b"did not arrive in full within 0.5 s" in sent[1]["body"]


def test_bodies_that_are_not_json_say_what_to_send(api: Api) -> None:
    headers = api.as_("acme-submitter")
    body = b'{"workflow": "claim", "input": {"claim": "a dent"}}'
    gzipped = api.client.post(
        "/v1/runs", content=body, headers={**headers, "content-encoding": "gzip"}
    )
    assert gzipped.status_code == 415 and "not decompressed" in gzipped.json()["error"]["message"]
    for content_type in ("text/plain", None):
        sent = {**headers, **({"content-type": content_type} if content_type else {})}
        plain = api.client.post("/v1/runs", content=body, headers=sent)
        assert plain.status_code == 422
        assert "send JSON as application/json" in plain.json()["error"]["message"]
    broken = api.client.post(
        "/v1/runs", content=b"\xff\xfe{", headers={**headers, "content-type": "application/json"}
    )
    assert broken.status_code in (400, 422), broken.text
    assert broken.json()["error"]["type"] in ("invalid_body", "invalid_request")
    assert api.client.get("/v1/runs", headers=api.as_("acme-admin")).json()["runs"] == []


def test_a_bug_answers_500_in_the_one_error_format() -> None:
    app = FastAPI()
    install_refusals(app, 1000)

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("secret detail")

    answer = TestClient(app, raise_server_exceptions=False).get("/bug")
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "internal"
    assert "secret detail" not in answer.text


def test_no_redirect_is_built_from_the_host_header(api: Api) -> None:
    answer = api.client.get(
        "/v1/runs/",
        headers={**api.as_("acme-admin"), "host": "evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 404 and "location" not in answer.headers


def test_an_event_id_past_64_bits_is_422(api: Api) -> None:
    run = submit(api, {"workflow": "claim", "input": {"claim": "a dent"}}).json()
    for params, headers in (
        ({"last_event_id": str(2**63)}, {}),
        ({}, {"Last-Event-ID": "99999999999999999999"}),
    ):
        answer = api.client.get(
            f"/v1/runs/{run['id']}/stream",
            params=params,
            headers={**api.as_("acme-submitter"), **headers},
        )
        assert answer.status_code == 422, answer.text
