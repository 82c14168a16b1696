"""`cadre run`, `runs`, `review` and `graph` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.runs.runner import Runner
from orchestrator.runs.views import RunReport, RunView
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def test_bad_input_creates_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = cli("run", "claim", "--input", '{"claim": ""}')
    assert empty.returncode == 2 and "claim: '' should be non-empty" in empty.stderr
    (tmp_path / "bad.json").write_text('{"claim": "x",}')
    malformed = cli("run", "claim", "--input", str(tmp_path / "bad.json"))
    assert malformed.returncode == 2 and "bad.json is not JSON (line 1" in malformed.stderr
    unknown = cli("run", "claims", "--input", "{}")
    assert unknown.returncode == 2 and "did you mean 'claim'" in unknown.stderr
    for result in (empty, malformed, unknown):
        no_traceback(result)
    listed = cli("runs", "list", "-q", catalog=False)
    assert listed.returncode == 0 and listed.stdout.strip() == ""


def test_review_show_warns_of_empty_lookups_misfits_and_failed_tools(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    catalog = load_catalog(scripted_workflow_catalog(tmp_path), tmp_path / "graphs")

    async def waiting() -> str:  # a claim run driven in this process to its adjuster review
        url = f"sqlite:///{tmp_path / 'runs.db'}"
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            record = await runner.start("claim", {"claim": "Storm damage to the roof"})
            review = runner.store.reviews("pending", record.id)[0]
            shown = {"fields": {"policy_number": "P-1", "amount": "lots"}, "payout": None}
            payload = json.dumps({**review.payload, "show": shown})
            runner.store.db.execute(
                "UPDATE cadre_reviews SET payload = ? WHERE id = ?", (payload, review.id)
            )
            failed = {"node": "payout", "tool": "calculator", "error": "division by zero"}
            runner.store.add_events(
                [(record.id, time.time(), "node", "payout", {"tool_error": failed})]
            )
            return review.id

    review = asyncio.run(waiting())
    shown = cli("review", "show", review)
    assert shown.returncode == 0, shown.stderr
    lines = [line.strip() for line in shown.stdout.splitlines()]
    assert "warning: fields/amount does not fit its schema: 'lots' is not of type 'number'" in lines
    assert "warning: payout is empty: the step that fills it found nothing" in lines
    assert "warning: tool calculator failed in step payout: division by zero" in lines
    broken = cli("review", "show", review, "--catalog", str(tmp_path / "nowhere"), catalog=False)
    assert broken.returncode == 2 and "nowhere" in broken.stderr
    no_traceback(broken)


@pytest.mark.ray
def test_run_review_and_decide_from_the_cli(cli) -> None:  # type: ignore[no-untyped-def]
    started = cli("run", "claim", "--input", '{"claim": "a flood in the cellar"}')
    assert started.returncode == 0, started.stderr
    assert "✓ extract" in started.stdout and "✓ payout" in started.stdout
    assert "is waiting for review" in started.stdout
    review = re.search(r"cadre review approve (rv-\w+)", started.stdout).group(1)  # type: ignore[union-attr]
    run_id = re.search(r"run (run-\w+) is waiting", started.stdout).group(1)  # type: ignore[union-attr]

    shown = cli("review", "show", review, catalog=False)
    assert '"amount": 2500' in shown.stdout and "editable: fields" in shown.stdout

    bad_edit = cli("review", "edit", review, "--set", "fields.amount=lots")
    assert bad_edit.returncode == 2 and "'lots' is not of type 'number'" in bad_edit.stderr
    no_traceback(bad_edit)

    approved = cli("review", "approve", review, "--as", "alice")
    assert approved.returncode == 0, approved.stderr
    assert f"run {run_id} succeeded" in approved.stdout and '"decision": "pay"' in approved.stdout

    twice = cli("review", "reject", review, "--reason", "late", "--as", "bob")
    assert twice.returncode == 2 and "already decided: approve by alice" in twice.stderr
    no_traceback(twice)

    shown = cli("runs", "show", run_id, "--json", catalog=False).stdout
    record = json.loads(shown)
    # The same fields, names and types as the API's run (GET /v1/runs/{id}), and its history.
    assert RunReport.model_validate_json(shown).model_dump(mode="json") == record
    assert set(RunView.model_fields) < set(record)
    assert record["status"] == "succeeded"
    assert record["reviews"][0]["approved_by"] == ["alice"]
    assert record["nodes"] == ["extract", "payout", "size", "adjuster", "decide"]
    assert record["reviews"][0]["decided_by"] == "alice"
    assert set(record["usage"]) == {"extractor", "decider"}
    listed = cli("runs", "list", catalog=False).stdout
    row = next(line for line in listed.splitlines() if run_id in line)
    # status, start and tokens whole at 80 columns (a tenant column only for several tenants)
    assert row.split()[2] == "succeeded" and re.fullmatch(r"\d+/\d+", row.split()[5])
    assert "tenant" not in listed.splitlines()[0]
    assert max(len(line) for line in listed.splitlines()) <= 80
    assert run_id in cli("runs", "list", "--tenant", "default", catalog=False).stdout
    other = cli("runs", "list", "--tenant", "acme", catalog=False)
    assert other.returncode == 0 and "no runs that match" in other.stderr

    cancel = cli("runs", "cancel", run_id, catalog=False)
    assert cancel.returncode == 2 and "already succeeded" in cancel.stderr


def test_graph_show_prints_mermaid(cli) -> None:  # type: ignore[no-untyped-def]
    shown = cli("graph", "show", "tickets")
    assert shown.returncode == 0, shown.stderr
    assert (
        "graph TD" in shown.stdout and "label__review" in shown.stdout and "route" in shown.stdout
    )


def test_validate_covers_workflows(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "3 workflows" not in cli("validate").stdout  # the fixture has four
    (tmp_path / "graphs" / "oops.yaml").write_text("name: oops\nstart: nowhere\n")
    result = cli("validate")
    assert result.returncode == 2
    assert "oops.yaml: description: required field is missing" in result.stderr
    no_traceback(result)


def test_keys_list_prints_each_key_id_whole_at_80_columns(cli) -> None:  # type: ignore[no-untyped-def]
    made = cli(
        "keys", "create", "--tenant", "a-tenant-with-a-long-name", "--role", "reviewer",
        "--name", "x" * 60, catalog=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key_id = re.search(r"key ([0-9a-f]+):", made.stderr).group(1)  # type: ignore[union-attr]
    listed = cli("keys", "list", catalog=False).stdout
    assert re.search(rf"\b{key_id}\b", listed), listed
    assert max(len(line) for line in listed.splitlines()) <= 80
