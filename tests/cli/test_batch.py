"""`cadre run WORKFLOW --inputs FILE.jsonl --concurrency N`: many runs at once in one process,
one result line per input, bad lines reported without stopping the others."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.catalogs import scripted_model, specialist, unique, write_catalog
from tests.conftest import CADRE, ROOT

DELAY_S = 0.3

SENTIMENT_FLOW = {
    "name": "mood",
    "description": "The sentiment of a text.",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "state": {"answer": {"type": "object"}},
    "output": ["answer"],
    "start": "classify",
    "nodes": [
        {
            "kind": "specialist",
            "id": "classify",
            "specialist": "sentiment",
            "input": "{text}",
            "output": "answer",
            "next": "end",
        }
    ],
}


@pytest.fixture
def mood(tmp_path: Path) -> list[str]:
    """A one-node workflow on a scripted model whose every call takes DELAY_S; a text with
    "broken" gets an answer that is not JSON (its run fails)."""
    model = unique("batch")
    rules = [
        {"contains": "broken", "reply": "not json"},
        {"contains": "glad", "reply": json.dumps({"sentiment": "positive"})},
        {"reply": json.dumps({"sentiment": "neutral"})},
    ]
    agents = write_catalog(
        tmp_path / "agents",
        [scripted_model(model, context_length=256, rules=rules, delay_s=DELAY_S)],
        [specialist("sentiment", model, generation={"max_tokens": 16})],
    )
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "mood.yaml").write_text(yaml.safe_dump(SENTIMENT_FLOW))
    return ["--catalog", str(agents), "--graphs", str(tmp_path / "graphs")]


def cadre(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}"}
    return subprocess.run(
        [CADRE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.ray
def test_twenty_inputs_eight_at_once(tmp_path: Path, mood: list[str]) -> None:
    lines = [json.dumps({"text": f"I am glad, number {i}"}) for i in range(21)]
    lines[3] = "{not json"  # line 4
    lines[5] = ""  # line 6: blank, skipped
    lines[9] = json.dumps({"text": ""})  # line 10: does not fit the input schema
    lines[14] = json.dumps({"text": "a broken one"})  # line 15: its run fails
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("\n".join(lines) + "\n")
    results_file = tmp_path / "results.jsonl"

    done = cadre(
        tmp_path,
        "run",
        "mood",
        "--inputs",
        str(inputs),
        "--concurrency",
        "8",
        "--output",
        str(results_file),
        *mood,
    )
    assert done.returncode == 1, done.stderr  # one invalid line, one failed run
    assert "Traceback" not in done.stderr
    assert "17 succeeded" in done.stderr and "1 failed" in done.stderr
    assert "2 invalid" in done.stderr and "20/20 inputs" in done.stderr

    results = [json.loads(line) for line in results_file.read_text().splitlines()]
    by_line = {r["line"]: r for r in results}
    assert len(results) == len(by_line) == 20
    assert sorted(by_line) == [n for n in range(1, 22) if n != 6]
    assert by_line[4]["status"] == "invalid" and by_line[4]["run_id"] is None
    assert by_line[4]["error"].startswith("line 4 is not JSON (column 2)")
    assert by_line[10]["status"] == "invalid"
    assert "text: '' should be non-empty" in by_line[10]["error"]
    assert by_line[15]["status"] == "failed" and "not JSON" in by_line[15]["error"]
    succeeded = [r for r in results if r["status"] == "succeeded"]
    assert len(succeeded) == 17
    assert all(r["output"] == {"answer": {"sentiment": "positive"}} for r in succeeded)
    assert len({r["run_id"] for r in succeeded}) == 17

    # The runs overlapped, never more than eight at once.
    intervals = []
    for r in succeeded:
        shown = cadre(tmp_path, "runs", "show", r["run_id"], "--json")
        record = json.loads(shown.stdout)
        assert record["status"] == "succeeded"
        intervals.append((record["created_at"], record["finished_at"]))
    assert 2 <= max_overlap(intervals) <= 8


@pytest.mark.ray
def test_results_go_to_standard_output_by_default(tmp_path: Path, mood: list[str]) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "glad"}\n{"text": "fine"}\n')
    done = cadre(tmp_path, "run", "mood", "--inputs", str(inputs), *mood)
    assert done.returncode == 0, done.stderr
    results = sorted(
        (json.loads(line) for line in done.stdout.splitlines()), key=lambda r: r["line"]
    )
    assert [(r["line"], r["status"]) for r in results] == [(1, "succeeded"), (2, "succeeded")]
    assert results[1]["output"] == {"answer": {"sentiment": "neutral"}}


def local_batch(
    tmp_path: Path, budget: int | None, inputs: list[dict[str, str]]
) -> tuple[Any, Path]:
    """The chain workflow (four calls) with a run budget, driven in this process (no Ray)."""
    from orchestrator.specialists.local import LocalAsker
    from orchestrator.workflow.catalog import load_catalog
    from tests.workflow.fixtures import load_flow, scripted_workflow_catalog

    agents = scripted_workflow_catalog(tmp_path)
    flow = load_flow("chain") | ({"budget": {"tokens": budget}} if budget else {})
    (tmp_path / "graphs" / "chain.yaml").write_text(yaml.safe_dump(flow))
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in inputs))
    catalog = load_catalog(agents)
    return (catalog, LocalAsker(catalog)), path


def test_a_failed_run_s_line_names_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli.batch import run_many
    from orchestrator.runs.store import RunStore
    from orchestrator.storage.database import Database

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("CADRE_DATABASE_URL", url)
    (catalog, asker), path = local_batch(tmp_path, 60, [{"text": "a dent"}])
    counts = run_many(catalog, "chain", path, 2, None, asker=asker)
    assert counts["failed"] == 1
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["status"] == "failed" and "token budget" in line["error"]
    assert line["run_id"] is not None, "the run was recorded: its line names it"
    assert RunStore(Database(url)).run(line["run_id"]).status == "failed"


def test_results_that_cannot_be_written_stop_the_batch_with_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.cli.batch import run_many
    from orchestrator.errors import RunError

    monkeypatch.setenv("CADRE_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    (catalog, asker), path = local_batch(tmp_path, None, [{"text": f"t{i}"} for i in range(5)])
    with pytest.raises(RunError, match=r"results could not be written to /dev/full \(No space"):
        run_many(catalog, "chain", path, 2, Path("/dev/full"), asker=asker)


def test_an_interrupted_batch_names_the_runs_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while three runs are driven: each stays recorded, and the message names them
    (their tasks were cancelled before the message was written, and it said nothing)."""
    import os
    import signal

    from orchestrator.cli.batch import run_many
    from orchestrator.runs.store import RunStore
    from orchestrator.storage.database import Database

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("CADRE_DATABASE_URL", url)
    (catalog, asker), path = local_batch(tmp_path, None, [{"text": f"t{i}"} for i in range(6)])
    asked = []
    plain = asker.ask_spec

    async def ask_spec(*args: Any, **kwargs: Any) -> Any:
        asked.append(1)
        if len(asked) == 3:  # three runs are in their first node: the user presses Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(30)
        return await plain(*args, **kwargs)

    monkeypatch.setattr(asker, "ask_spec", ask_spec)
    with pytest.raises(KeyboardInterrupt):
        run_many(catalog, "chain", path, 3, None, asker=asker)
    said = " ".join(capsys.readouterr().err.split())
    left = [r.id for r in RunStore(Database(url)).runs() if r.status == "running"]
    assert len(left) == 3
    assert "interrupted: 3 runs were left where they were" in said, said
    assert all(run_id in said for run_id in left)
