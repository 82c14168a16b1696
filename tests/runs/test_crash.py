"""A run whose process is killed (SIGKILL) mid-workflow resumes from another process: it
finishes, its output matches an uninterrupted run, and no completed node runs again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
from tests.conftest import ROOT
from tests.workflow.fixtures import scripted_workflow_catalog

pytestmark = pytest.mark.ray
CADRE = str(Path(sys.executable).parent / "cadre")


def cadre(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CADRE, *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_killed_run_resumes_in_another_process(tmp_path: Path, database_url: str) -> None:
    log = tmp_path / "calls.log"
    agents = scripted_workflow_catalog(tmp_path, delay_s=1.0, call_log=log)
    env = {**os.environ, "CADRE_DATABASE_URL": database_url}
    where = ["--catalog", str(agents), "--graphs", str(tmp_path / "graphs")]
    store = RunStore(Database(database_url))

    victim = cadre(
        ["run", "chain", "--input", '{"text": "go"}', *where], env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = store.runs()
        if runs and len(store.events(runs[0].id)) >= 2:
            break
        assert victim.poll() is None, victim.communicate()
        time.sleep(0.05)
    else:
        pytest.fail("the run never got two nodes in")
    os.killpg(victim.pid, signal.SIGKILL)  # the driver and the local Ray it started
    victim.wait()
    (killed,) = store.runs()
    done_before = [e["node"] for e in store.events(killed.id)]
    assert killed.status == "running" and done_before[:2] == ["a", "b"]

    resumed = cadre(["runs", "resume", killed.id, *where], env)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out + err
    assert "succeeded" in out

    clean = cadre(["run", "chain", "--input", '{"text": "go"}', *where], env)
    out, err = clean.communicate(timeout=180)
    assert clean.returncode == 0, out + err

    finished, uninterrupted = sorted(store.runs(), key=lambda r: r.created_at)
    assert finished.id == killed.id and finished.status == "succeeded"
    assert finished.output == uninterrupted.output
    nodes = [e["node"] for e in store.events(finished.id)]
    assert nodes == ["a", "b", "c", "d"], "each node completes exactly once"
    calls = log.read_text().split()
    # Two runs: the uninterrupted one calls each node once; the killed one must not repeat a or b
    # (it may repeat c, which was in flight when the process died).
    assert calls.count("extractor") == 2, calls
    assert calls.count("labeller") == 4, calls
    assert calls.count("decider") in (2, 3), calls
    assert json.dumps(finished.output)
