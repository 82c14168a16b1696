"""Traces in a real viewer: Arize Phoenix (PyPI `arize-phoenix`, offline), started from its own
environment (`make test-phoenix` builds .venv-phoenix). The README's Phoenix command runs as
written (on a free port), prints no export error, and Phoenix holds one trace for the run:
one root, every span's parent in the trace, the specialists' calls inside it, and the run's
final status on it after the review that resumed it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, _free_port

PHOENIX = Path(os.environ.get("CADRE_PHOENIX", ROOT / ".venv-phoenix" / "bin" / "phoenix"))
README = (ROOT / "README.md").read_text()

pytestmark = [
    pytest.mark.phoenix,
    pytest.mark.skipif(not PHOENIX.exists(), reason="needs Phoenix: run `make test-phoenix`"),
]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[str]:
    """A Phoenix server on 127.0.0.1 with its own working folder; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
    }
    log = (tmp_path / "phoenix.log").open("w")
    server = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "phoenix.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Phoenix did not start within 180 s"
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def readme_command(endpoint: str) -> str:
    """The README's Phoenix command, pointed at this test's Phoenix."""
    line = next(
        line for line in README.splitlines() if line.startswith("OTEL_EXPORTER_OTLP_TRACES_")
    )
    assert "http://127.0.0.1:6006/v1/traces" in line, line
    return line.replace("http://127.0.0.1:6006", endpoint)


@pytest.mark.timeout(600)
def test_a_run_is_one_trace_in_phoenix_with_its_final_status(phoenix: str, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
        "CADRE_TRACE_FILE": str(tmp_path / "traces.jsonl"),
    }

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "error" not in done.stderr.lower(), done.stderr  # no export error, no traceback
        return done

    printed = sh(readme_command(phoenix)).stdout
    run_id = re.search(r"\brun (run-[0-9a-f]+)", printed)
    assert run_id is not None, printed
    reviews = 0
    while review := re.search(r"cadre review approve (\S+)", printed):
        reviews += 1
        assert reviews <= 3, printed
        # As the README says: the decision's process exports to Phoenix too, so the resumed
        # run's spans join the trace.
        endpoint = f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={phoenix}/v1/traces"
        printed = sh(f"{endpoint} .venv/bin/cadre review approve {review.group(1)}").stdout
    shown = json.loads(sh(f".venv/bin/cadre runs show {run_id.group(1)} --json").stdout)
    status = shown["status"]
    assert status in ("succeeded", "failed"), shown

    def spans() -> list[dict[str, Any]]:
        page = get(f"{phoenix}/v1/projects/default/spans?limit=1000")["data"]
        return [s for s in page if s["context"]["trace_id"] in traces_of(page)]

    def traces_of(page: list[dict[str, Any]]) -> set[str]:
        return {
            s["context"]["trace_id"]
            for s in page
            if s["attributes"].get("gen_ai.conversation.id") == run_id.group(1)
        }

    def complete(found: list[dict[str, Any]]) -> bool:
        """Export is in the background: wait for the root too, written when the run ended."""
        return any(s["name"] == "cadre.run" for s in found)

    deadline = time.monotonic() + 60
    found = spans()
    while not complete(found):
        assert time.monotonic() < deadline, [s["name"] for s in found]
        time.sleep(1)
        found = spans()
    assert len({s["context"]["trace_id"] for s in found}) == 1, "one trace per run"
    ids = {s["context"]["span_id"] for s in found}
    roots = [s for s in found if not s.get("parent_id")]
    assert [r["name"] for r in roots] == ["cadre.run"], roots
    assert all(s["parent_id"] in ids for s in found if s.get("parent_id")), "a connected tree"
    assert "invoke_workflow claim-triage" in {s["name"] for s in found if s["parent_id"]}
    names = {s["name"] for s in found}
    assert "invoke_agent claim-extractor" in names and any(n.startswith("chat ") for n in names)
    # The run's real end is on its root, written when it ended: it spans every stretch.
    assert roots[0]["attributes"]["cadre.run.status"] == status
