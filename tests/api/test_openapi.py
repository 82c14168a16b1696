"""The OpenAPI document says what the API really does: every error status in one body format,
a security scheme (the Authorize button in /docs), and the server answers unknown paths, wrong
methods and bad query values the way the document says."""

from __future__ import annotations

from pathlib import Path

from tests.api.helpers import make_api


def test_every_operation_documents_its_errors_and_its_security(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    doc = api.client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["HTTPBearer"].items()
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        if path.startswith("/v1/")
        for method, op in item.items()
    ]
    assert len(operations) >= 8
    for path, method, op in operations:
        for status in ("401", "403", "404", "409", "413", "422", "429"):
            body = op["responses"][status]["content"]["application/json"]["schema"]
            assert body == error_ref, (path, method, status, body)
        assert {"HTTPBearer": []} in op.get("security", []), (path, method)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_unknown_paths_wrong_methods_and_bad_query_values_answer_in_the_one_format(
    tmp_path: Path,
) -> None:
    api = make_api(tmp_path)
    missing = api.client.get("/v1/nothing-here", headers=api.as_("acme-admin"))
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    wrong = api.client.delete("/v1/runs", headers=api.as_("acme-admin"))
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "method_not_allowed"
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    deliveries = api.client.options("/v1/webhooks/deliveries", headers=api.as_("acme-admin"))
    assert deliveries.status_code == 405 and deliveries.headers["allow"] == "GET"
    bad = api.client.get("/v1/runs", params={"status": "nonsense"}, headers=api.as_("acme-admin"))
    assert bad.status_code == 422 and "status" in bad.json()["error"]["message"]
    good = api.client.get("/v1/runs", params={"status": "queued"}, headers=api.as_("acme-admin"))
    assert good.status_code == 200


def test_a_key_is_taken_as_a_bearer_token_or_in_x_api_key(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    token = api.as_("acme-reviewer")["Authorization"].split(" ", 1)[1]
    for headers in ({"Authorization": f"bearer {token}"}, {"X-API-Key": token}):
        assert api.client.get("/v1/workflows", headers=headers).status_code == 200, headers
    for headers in ({}, {"Authorization": f"Basic {token}"}, {"X-API-Key": "wrong"}):
        refused = api.client.get("/v1/workflows", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"]["type"] == "unauthenticated"


def test_any_cursor_of_the_documented_shape_is_a_position(tmp_path: Path) -> None:
    """A cursor is the last run's time and id: a made-up one of that shape pages from there,
    and only a malformed one is refused."""
    api = make_api(tmp_path)
    pattern = api.client.get("/openapi.json").json()["paths"]["/v1/runs"]["get"]["parameters"]
    (cursor,) = [p for p in pattern if p["name"] == "cursor"]
    assert "pattern" in str(cursor["schema"])
    admin = api.as_("acme-admin")
    made_up = api.client.get("/v1/runs", params={"cursor": "1.5_run-x"}, headers=admin)
    assert made_up.status_code == 200 and made_up.json()["runs"] == []
    assert api.client.get("/v1/runs", params={"cursor": "nope"}, headers=admin).status_code == 422


def test_answers_are_typed_and_the_webhook_events_documented(tmp_path: Path) -> None:
    doc = make_api(tmp_path).client.get("/openapi.json").json()

    def answer(path: str, method: str, status: str) -> object:
        return doc["paths"][path][method]["responses"][status]["content"]["application/json"][
            "schema"
        ]

    for path, method, status, model in (
        ("/v1/runs", "post", "202", "RunView"),
        ("/v1/runs", "post", "200", "RunView"),
        ("/v1/runs", "get", "200", "RunPage"),
        ("/v1/runs/{run_id}", "get", "200", "RunView"),
        ("/v1/runs/{run_id}/cancel", "post", "200", "RunView"),
        ("/v1/runs/{run_id}/events", "get", "200", "NodeEvents"),
        ("/v1/reviews", "get", "200", "ReviewList"),
        ("/v1/reviews/{review_id}", "get", "200", "ReviewDetail"),
        ("/v1/reviews/{review_id}/decision", "post", "200", "ReviewView"),
        ("/v1/reviews/{review_id}/claim", "post", "200", "ReviewView"),
        ("/v1/webhooks", "post", "201", "WebhookCreated"),
        ("/v1/webhooks", "get", "200", "WebhookList"),
        ("/v1/webhooks/deliveries", "get", "200", "DeliveryList"),
        ("/v1/workflows", "get", "200", "WorkflowList"),
        ("/v1/keys/me", "get", "200", "KeyView"),
    ):
        assert answer(path, method, status) == {"$ref": f"#/components/schemas/{model}"}, path
    schemas = doc["components"]["schemas"]
    assert schemas["RunView"]["properties"]["status"]["enum"] == [
        "queued",
        "running",
        "awaiting_review",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert set(doc["webhooks"]) == {"run.awaiting_review", "run.finished", "review.overdue"}
    for item in doc["webhooks"].values():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/WebhookEvent"}
