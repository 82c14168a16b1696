"""`/v1/workflows` and the OpenAPI document."""

from __future__ import annotations

from tests.api.helpers import (
    Api,
)


def test_workflows_and_the_openapi_schema_are_served(api: Api) -> None:
    names = [
        w["name"]
        for w in api.client.get("/v1/workflows", headers=api.as_("acme-reviewer")).json()[
            "workflows"
        ]
    ]
    assert "claim" in names
    schema = api.client.get("/openapi.json").json()
    for path in ("/v1/runs", "/v1/runs/{run_id}", "/v1/reviews/{review_id}/decision"):
        assert path in schema["paths"]
