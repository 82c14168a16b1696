"""Review edits with hostile or mistaken paths and values: each is refused with a clear error
naming the path (422 from the API), and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.errors import InputError
from orchestrator.runs.reviews import edit_update, state_schemas
from orchestrator.runs.store import ReviewId, ReviewRecord, RunId, RunStore
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import Catalog, load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog

FIELDS = {"policy_number": "P-1", "amount": 2500}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return load_catalog(scripted_workflow_catalog(tmp_path))


def review(payload: dict[str, Any]) -> ReviewRecord:
    return ReviewRecord(
        id=ReviewId("rv-1"),
        run_id=RunId("run-1"),
        interrupt_id="i-1",
        node="adjuster",
        payload=payload,
        status="pending",
        decision=None,
        reason=None,
        changes=None,
        decided_by=None,
        decided_at=None,
        created_at=0.0,
    )


GATE = {
    "kind": "review",
    "workflow": "claim",
    "node": "adjuster",
    "editable": ["fields", "payout"],
    "values": {"fields": FIELDS, "payout": 2400},
}

REFUSED = [
    ({"fields.amount.x": 1}, "fields.amount is a number; it has no field 'x'"),
    ({"payout.x": 1}, "payout is a number; it has no field 'x'"),
    ({"fields.policy_number.0": "Q"}, "fields.policy_number is a string"),
    ({"fields.0": 5}, "fields has no field '0'"),
    ({"fields..amount": 5}, "has an empty step"),
    ({"fields.nmae": "x"}, "fields has no field 'nmae' (its fields: amount, policy_number)"),
    ({"fields.amount": "lots"}, "fields/amount"),
    ({"fields": {"amount": 3}}, "'policy_number' is a required property"),
    ({"decision": {"decision": "pay"}}, "may not be edited here"),
    ({"fields.__class__": 1}, "fields has no field '__class__'"),
    ({"fields.amount ": 1}, "edit path"),
    ({"x" * 600: 1}, "edit path"),
]


@pytest.mark.parametrize(("changes", "message"), REFUSED)
def test_a_bad_edit_path_or_value_is_refused_with_its_reason(
    catalog: Catalog, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as refused:
        edit_update(review(GATE), changes, catalog)
    assert message in refused.value.message
    assert GATE["values"]["fields"] == FIELDS, "the shown values are not touched"


def test_good_edits_pass_and_change_only_what_they_name(catalog: Catalog) -> None:
    update = edit_update(review(GATE), {"fields.amount": 900, "payout": 800}, catalog)
    assert update == {"fields": {"policy_number": "P-1", "amount": 900}, "payout": 800}


def test_a_specialist_s_state_key_takes_its_output_schema(tmp_path: Path) -> None:
    """A key declared as a bare object still gets the shape of the specialist that writes it."""
    import yaml

    root = scripted_workflow_catalog(tmp_path)
    flow_file = tmp_path / "graphs" / "claim.yaml"
    flow = yaml.safe_load(flow_file.read_text())
    flow["state"]["fields"] = {"type": "object"}
    flow_file.write_text(yaml.safe_dump(flow, sort_keys=False))
    catalog = load_catalog(root)
    assert "allOf" in state_schemas(catalog, "claim")["fields"]
    with pytest.raises(InputError, match="fields has no field 'nmae'"):
        edit_update(review(GATE), {"fields.nmae": "x"}, catalog)
    with pytest.raises(InputError, match="fields/amount"):
        edit_update(review(GATE), {"fields.amount": "lots"}, catalog)


def test_a_map_item_edit_is_checked_against_the_specialist_s_schema(catalog: Catalog) -> None:
    item = {
        "kind": "map_item",
        "workflow": "tickets",
        "specialist": "labeller",
        "editable": ["label"],
        "values": {"answer": {"label": "billing"}},
    }
    assert edit_update(review(item), {"label": "technical"}, catalog) == {
        "answer": {"label": "technical"}
    }
    for changes in ({"label.x": 1}, {"label": "nonsense"}, {"other": 1}):
        with pytest.raises(InputError):
            edit_update(review(item), changes, catalog)


def test_the_api_answers_422_and_writes_nothing(tmp_path: Path) -> None:
    root = scripted_workflow_catalog(tmp_path)
    url = f"sqlite:///{tmp_path / 'cadre.db'}"
    store = RunStore(Database(url))
    token = KeyStore(store.db).create("default", "reviewer")[1]
    run, _ = store.create_run("claim", {"claim": "a flood"}, queued=True)
    store.set_status(run.id, "awaiting_review")
    store.add_review(run.id, "i-1", "adjuster", GATE)
    (pending,) = store.reviews("pending", run.id)
    api = TestClient(create_app(Settings(catalog=load_catalog(root), database_url=url)))
    for changes, message in REFUSED:
        answer = api.post(
            f"/v1/reviews/{pending.id}/decision",
            json={"decision": "edit", "changes": changes},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 422, (changes, answer.text)
        assert message in answer.json()["error"]["message"]
    after = store.review(pending.id)
    assert (after.status, after.decision, after.changes) == ("pending", None, None)


def test_cadre_review_edit_refuses_each_path_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same edits through `cadre review edit --set` (the entry point in this process; one
    subprocess of it is in tests/cli/test_runs.py): exit 2, the reason, no traceback."""
    from orchestrator.cli import main

    # main() shuts the process's telemetry down when it ends, as a command does; here the
    # process is the test session, whose other tests still record spans.
    monkeypatch.setattr("orchestrator.cli.root._flush_telemetry", lambda: None)
    root = scripted_workflow_catalog(tmp_path)
    url = f"sqlite:///{tmp_path / 'cadre.db'}"
    monkeypatch.setenv("CADRE_DATABASE_URL", url)
    store = RunStore(Database(url))
    run, _ = store.create_run("claim", {"claim": "a flood"}, queued=True)
    store.set_status(run.id, "awaiting_review")
    store.add_review(run.id, "i-1", "adjuster", GATE)
    (pending,) = store.reviews("pending", run.id)
    where = ["--catalog", str(root), "--graphs", str(tmp_path / "graphs")]
    for changes, message in REFUSED:
        ((path, value),) = changes.items()
        if path != path.strip():
            continue  # the CLI strips `--set` keys, so this one is a good edit there
        assignment = f"{path}={json.dumps(value)}"
        monkeypatch.setattr(
            "sys.argv", ["cadre", "review", "edit", pending.id, "--set", assignment, *where]
        )
        with pytest.raises(SystemExit) as exited:
            main()
        printed = capsys.readouterr()
        assert exited.value.code == 2, (changes, printed)
        assert message in " ".join(printed.err.split()), (changes, printed.err)
        assert "Traceback" not in printed.out + printed.err
    after = store.review(pending.id)
    assert (after.status, after.decision, after.changes) == ("pending", None, None)
    assert store.run(run.id).status == "awaiting_review"
