"""Runs of tool nodes through the real CLI.

Commands that call no model never start or join Ray: not a new local instance, and not a cluster
found by accident in Ray's temp dir (a stale record there once hung a run 13 minutes at exit). A
tools-and-review workflow is run, reviewed and approved with a dead cluster's address recorded
where Ray looks for one. And a tool's error stays on the record after the next tool succeeds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import CADRE, ROOT
from tests.hostile.tool_flows import write_tool_catalog

FALLBACK = {
    "name": "fallback",
    "description": "A calculation that fails, handled by another.",
    "input_schema": {"type": "object", "properties": {}},
    "state": {"first": {"type": ["number", "null"]}, "second": {"type": ["number", "null"]}},
    "output": ["second"],
    "start": "broken",
    "nodes": [
        {
            "kind": "tool",
            "id": "broken",
            "tool": "calculator",
            "args": {"expression": "1 / 0"},
            "output": "first",
            "next": "end",
            "on_error": "instead",
        },
        {
            "kind": "tool",
            "id": "instead",
            "tool": "calculator",
            "args": {"expression": "2 * 21"},
            "output": "second",
            "next": "end",
        },
    ],
}
REVIEWED_SUM = {
    "name": "reviewed_sum",
    "description": "A calculation a person checks.",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
    "state": {"total": {"type": ["number", "null"]}},
    "output": ["total"],
    "start": "add",
    "nodes": [
        {
            "kind": "tool",
            "id": "add",
            "tool": "calculator",
            "args": {"expression": "{expression}"},
            "output": "total",
            "next": "check",
        },
        {
            "kind": "review",
            "id": "check",
            "title": "Check the total",
            "show": ["total"],
            "next": "end",
            "on_reject": "add",
        },
    ],
}


def test_a_tools_and_review_run_never_touches_ray_even_with_a_stale_address(
    tmp_path: Path,
) -> None:
    agents, graphs = write_tool_catalog(tmp_path)
    (graphs / "reviewed_sum.yaml").write_text(yaml.safe_dump(REVIEWED_SUM, sort_keys=False))
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray").mkdir(parents=True)
    # A cluster that is gone: nothing listens on port 9 (discard) of this machine.
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_ADDRESS")}
    env |= {"RAY_TMPDIR": str(ray_tmp), "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    where = ["--catalog", str(agents), "--graphs", str(graphs)]
    took: dict[str, float] = {}

    def cadre(name: str, *args: str, catalog: bool = True) -> str:
        started = time.monotonic()
        done = subprocess.run(
            [CADRE, *args, *where * catalog],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        took[name] = time.monotonic() - started
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
        return done.stdout

    started = cadre("run", "run", "reviewed_sum", "--input", '{"expression": "2 + 3"}')
    review = re.search(r"cadre review approve (\S+)", started)
    assert review, started
    run_id = re.search(r"run-[0-9a-f]+", started)
    assert run_id, started
    approved = cadre("approve", "review", "approve", review.group(1), "--as", "Rita")
    assert "succeeded" in approved, approved
    shown = cadre("show", "runs", "show", run_id.group(0), catalog=False)
    assert "succeeded" in shown and "5" in shown, shown
    sessions = [p.name for p in (ray_tmp / "ray").iterdir() if p.name.startswith("session")]
    assert sessions == [], f"Ray was started: {sessions}"
    assert (ray_tmp / "ray" / "ray_current_cluster").read_text() == "127.0.0.1:9"
    print("seconds per command:", {k: round(v, 2) for k, v in took.items()})


def test_a_tool_error_handled_by_on_error_stays_on_the_run_record(tmp_path: Path) -> None:
    agents, graphs = write_tool_catalog(tmp_path)
    (graphs / "fallback.yaml").write_text(yaml.safe_dump(FALLBACK, sort_keys=False))
    env = {**os.environ, "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}

    def cadre(*args: str) -> str:
        done = subprocess.run(
            [CADRE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
        return done.stdout

    ran = cadre(
        "run", "fallback", "--input", "{}", "--catalog", str(agents), "--graphs", str(graphs)
    )
    run_id = re.search(r"run-[0-9a-f]+", ran)
    assert run_id and "succeeded" in ran and "42" in ran, ran
    # The progress marks the failed tool's step and says why (it showed a ✓ and nothing else).
    assert re.search(r"✗ broken .*\n\s+tool error \(calculator\): \S", ran), ran
    shown = cadre("runs", "show", run_id.group(0))
    assert "tool error in broken (calculator):" in shown, shown
    assert "1 failed" in shown, shown
    (error,) = json.loads(cadre("runs", "show", run_id.group(0), "--json"))["tool_errors"]
    assert error["node"] == "broken" and error["tool"] == "calculator" and error["error"]
