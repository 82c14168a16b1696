"""`cadre run WORKFLOW --inputs FILE.jsonl --concurrency N`: many runs at once in one process,
one result line per input, bad lines reported without stopping the others."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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
        [specialist("sentiment", model)],
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
