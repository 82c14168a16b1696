"""The whole specialization loop on CPU, as a user runs it: train an adapter (Ray Train), score it
against the generalist on held-out examples, promote it (or be refused), serve it in a workflow
run, see the run record which version answered, roll back. On each engine that loads weights:
llama.cpp in the main environment, vLLM in its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.specialize.registry import Registry
from tests.conftest import ROOT

CADRE = str(Path(sys.executable).parent / "cadre")
DATA = ROOT / "examples" / "specialize"
EXAMPLE = ROOT / "examples" / "vllm"


def triage_catalog(tmp_path: Path, engine: str) -> list[str]:
    """The ticket-triage specialist on the engine's model, and the vLLM example's triage
    workflow, alone (the example's other specialists need adapters the README trains)."""
    root = tmp_path / "catalog"
    for folder in ("agents/models", "agents/specialists", "graphs"):
        (root / folder).mkdir(parents=True)
    agents = EXAMPLE / "agents" if engine == "vllm" else ROOT / "agents"
    for model in (agents / "models").glob("smollm2-135m*.yaml"):
        shutil.copy(model, root / "agents" / "models")
    # Without its shipped adapter: a first version is compared with the prompt alone.
    spec = yaml.safe_load((agents / "specialists" / "ticket-triage.yaml").read_text())
    spec.pop("adapter", None)
    (root / "agents" / "specialists" / "ticket-triage.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(EXAMPLE / "graphs" / "triage.yaml", root / "graphs")
    return ["--catalog", str(root / "agents"), "--graphs", str(root / "graphs")]


def cadre(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CADRE_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
        "COLUMNS": "160",
    }
    done = subprocess.run(
        [CADRE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert "Traceback" not in done.stderr, done.stderr
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.timeout(900)  # trains, evaluates and serves: past 300 s on a slow machine
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("llamacpp", marks=pytest.mark.model),
        pytest.param("vllm", marks=pytest.mark.vllm),
    ],
)
def test_specialize_eval_promote_serve_rollback(
    tmp_path: Path, smollm2_hf: Path, engine: str
) -> None:
    catalog = triage_catalog(tmp_path, engine)
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join((DATA / "ticket-triage.train.jsonl").read_text().splitlines(True)[:24])
    )
    cadre(
        tmp_path, "specialize", "ticket-triage", "--data", str(train), "--steps", "3", *catalog[:2]
    )
    registry = Registry(tmp_path / "adapters")
    (v1,) = registry.versions("ticket-triage")
    assert v1.complete

    held = str(DATA / "ticket-triage.heldout.jsonl")
    scored = cadre(tmp_path, "eval", "ticket-triage", "--data", held, "--limit", "6", *catalog[:2])
    for row in ("base ", "base + few-shot", "v1 "):
        assert row in scored.stdout, scored.stdout
    plot = Path(ROOT / scored.stdout.split("plot: ")[1].split()[0])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    teams = [json.loads(line)["output"]["team"] for line in Path(held).read_text().splitlines()[:6]]
    top = max(set(teams), key=teams.count)
    written = json.loads(plot.with_suffix(".json").read_text())
    assert written["majority_label"]["score"] == teams.count(top) / 6
    assert "Always answering the most common label (team = " in scored.stdout
    v1 = registry.version("ticket-triage", "v1")
    ours = v1.meta["eval"]["exact_match"]["score"]
    served = v1.meta["eval"]["base"]["exact_match"]["score"]

    promoted = cadre(tmp_path, "specialists", "promote", "ticket-triage", "v1", ok=False)
    if ours > served:
        assert promoted.returncode == 0 and "v1 is live" in promoted.stdout
    else:
        assert promoted.returncode == 2 and "does not go live" in promoted.stderr
        forced = cadre(tmp_path, "specialists", "promote", "ticket-triage", "v1", "--force")
        assert "v1 is live (forced)" in forced.stdout
    assert registry.live("ticket-triage").name == "v1"
    listing = cadre(tmp_path, "specialists", "versions", "ticket-triage")
    assert "live" in listing.stdout and f"{ours:.3f}" in listing.stdout

    run = cadre(
        tmp_path, "run", "triage", *catalog,
        "--input", json.dumps({"ticket": "I was charged twice for my invoice."}),
    )  # fmt: skip
    run_id = next(w for w in run.stdout.split() if w.startswith("run-"))
    shown = json.loads(cadre(tmp_path, "runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "succeeded"
    assert shown["usage"]["ticket-triage"]["adapter ticket-triage/v1"] == 1

    back = cadre(tmp_path, "specialists", "rollback", "ticket-triage", *catalog[:2])
    assert "the bare base model is live" in back.stdout
    assert registry.live("ticket-triage") is None
