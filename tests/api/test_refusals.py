"""Refusals before a handler runs: a body over the limit is 413, whether it states its length or
streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tests.api.helpers import (
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
