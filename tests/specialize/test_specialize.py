"""`cadre specialize`: LoRA fine-tuning of a specialist as a real Ray Train job on this CPU, into
the adapter registry; bad data is refused before anything starts; a stopped run continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.specialize.registry import Registry
from tests.conftest import ROOT

pytestmark = pytest.mark.vllm  # PEFT and Ray Train live in .venv-vllm
CADRE = str(Path(sys.executable).parent / "cadre")
TRAIN = ROOT / "examples" / "specialize" / "ticket-triage.train.jsonl"


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CADRE_ADAPTERS_DIR": str(tmp_path / "adapters"), "COLUMNS": "120"}


def test_bad_data_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    rows = [json.loads(line) for line in TRAIN.read_text().splitlines()[:30]]
    rows[4]["output"]["team"] = "sales"
    lines = [json.dumps(r) for r in rows]
    lines[9] = "{broken"
    data.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [CADRE, "specialize", "ticket-triage", "--data", str(data)],
        cwd=ROOT, env=env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "bad.jsonl:5: output.team does not fit ticket-triage's schema" in done.stderr
    assert "bad.jsonl:10: not JSON" in done.stderr and "nothing was trained" in done.stderr
    assert not (tmp_path / "adapters").exists()


@pytest.mark.timeout(900)  # two Ray Train runs; past 300 s on a loaded 2-core machine
def test_a_stopped_training_continues_from_its_checkpoint(tmp_path: Path, smollm2_hf: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(TRAIN.read_text().splitlines(keepends=True)[:24]))
    command = [CADRE, "specialize", "ticket-triage", "--data", str(data), "--steps", "6",
               "--checkpoint-every", "2"]  # fmt: skip
    first = subprocess.Popen(
        command, cwd=ROOT, env=env(tmp_path), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run = tmp_path / "adapters" / "ticket-triage" / "v1" / "train" / "run"
    deadline = time.monotonic() + 300
    # A checkpoint counts once Ray Train has recorded it in the run's snapshot.
    while not (run / "checkpoint_manager_snapshot.json").is_file() and time.monotonic() < deadline:
        assert first.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGINT)  # stopped, as an operator's Ctrl-C would
    first.wait(120)
    registry = Registry(tmp_path / "adapters")
    (stopped,) = registry.versions("ticket-triage")
    assert not stopped.complete

    resumed = subprocess.run(
        [*command, "--resume"], cwd=ROOT, env=env(tmp_path), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "v1: resuming from its last checkpoint" in resumed.stdout
    (version,) = registry.versions("ticket-triage")  # the same version, not a new one
    assert version.complete
    assert version.meta["train"]["steps"] == 6
    assert version.meta["train"]["resumed_from"] >= 2
    assert (version.path / "adapter_model.safetensors").stat().st_size > 100_000
    assert version.meta["data_hash"] and version.meta["base_model"] == "smollm2-135m"


@pytest.mark.timeout(900)  # two Ray Train runs; past 300 s on a loaded 2-core machine
def test_two_ray_train_workers_train_one_adapter(tmp_path: Path, smollm2_hf: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(TRAIN.read_text().splitlines(keepends=True)[:24]))
    done = subprocess.run(
        [CADRE, "specialize", "ticket-triage", "--data", str(data), "--steps", "2",
         "--workers", "2", "--checkpoint-every", "2"],
        cwd=ROOT, env=env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (version,) = Registry(tmp_path / "adapters").versions("ticket-triage")
    assert version.complete and version.meta["workers"] == 2
    assert version.meta["train"]["workers"] == 2  # the world size Ray Train really ran
    assert (version.path / "adapter_model.safetensors").stat().st_size > 100_000
