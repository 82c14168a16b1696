"""Training data is checked whole before any training: every bad line, with its number and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import DataError, InputError
from orchestrator.specialize import data as data_module
from orchestrator.specialize.data import data_hash, load_examples
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT

CATALOG = load_catalog(ROOT / "agents")
TRIAGE = CATALOG.specialist("ticket-triage")


def good(n: int) -> list[str]:
    return [
        json.dumps(
            {"input": f"ticket number {i}", "output": {"team": "billing", "priority": "low"}}
        )
        for i in range(n)
    ]


def test_every_bad_line_is_reported_at_once(tmp_path: Path) -> None:
    lines = [
        *good(3),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"input": "", "output": {"team": "billing", "priority": "low"}}),
        json.dumps({"input": "refund me", "output": {"team": "sales", "priority": "low"}}),
        json.dumps({"input": "where is it", "output": {"team": "shipping"}}),
        json.dumps({"input": "ticket number 0", "output": {"team": "billing", "priority": "low"}}),
        json.dumps({"input": "hi", "output": {"team": "billing", "priority": "low"}, "x": 1}),
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_examples(data, TRIAGE, minimum=1)
    problems = info.value.problems
    assert problems[0].startswith("train.jsonl:4: not JSON")
    assert problems[1] == "train.jsonl:5: a line must be an object with input and output"
    assert problems[2] == "train.jsonl:6: input must be a non-empty string"
    assert problems[3].startswith("train.jsonl:7: output.team does not fit ticket-triage's schema")
    assert "'sales' is not one of" in problems[3]
    assert "train.jsonl:8: output does not fit" in problems[4] and "'priority'" in problems[4]
    assert problems[5] == "train.jsonl:9: the same input as line 1"
    assert problems[6] == "train.jsonl:10: unknown field x (only input and output)"
    assert len(problems) == 7
    assert "7 problems in" in str(info.value) and "nothing was trained" in str(info.value)


def test_bytes_that_are_not_text_a_bom_and_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line of bytes that are not UTF-8 was a UnicodeDecodeError traceback; a byte-order mark
    made line 1 "not JSON"; a folder was "no data file"; a 1 GB file was read whole."""
    data = tmp_path / "train.jsonl"
    lines = [line.encode() for line in good(3)]
    lines.insert(1, b'{"input": "\xff\xfe", "output": {}}')
    data.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    with pytest.raises(DataError) as info:
        load_examples(data, TRIAGE, minimum=1)
    assert info.value.problems == ["train.jsonl:2: not UTF-8 text (byte 12 of the line)"]
    with pytest.raises(InputError, match="is not a data file"):
        load_examples(tmp_path, TRIAGE)
    monkeypatch.setattr(data_module, "MAX_DATA_BYTES", 100)
    with pytest.raises(InputError, match="larger than 100 bytes"):
        load_examples(data, TRIAGE)


def test_too_few_examples(tmp_path: Path) -> None:
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(good(5)) + "\n")
    with pytest.raises(DataError, match="5 examples; ticket-triage needs at least 20"):
        load_examples(data, TRIAGE)
    assert len(load_examples(data, TRIAGE, minimum=5)) == 5


@pytest.mark.parametrize("name", ["ticket-triage", "claim-extractor"])
def test_the_shipped_sets_load_and_do_not_overlap(name: str) -> None:
    spec = CATALOG.specialist(name)
    train = load_examples(ROOT / "examples" / "specialize" / f"{name}.train.jsonl", spec)
    held = load_examples(ROOT / "examples" / "specialize" / f"{name}.heldout.jsonl", spec, 10)
    assert len(train) >= 100 and len(held) >= 40
    assert not {e.input for e in train} & {e.input for e in held}


def test_the_data_hash_names_the_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(good(3)))
    b.write_text("\n".join(good(3)))
    assert data_hash(a) == data_hash(b) and len(data_hash(a)) == 64
    b.write_text("\n".join(good(4)))
    assert data_hash(a) != data_hash(b)


def test_specialize_without_the_training_stack_says_so_and_writes_nothing(tmp_path: Path) -> None:
    """`make setup` installs PEFT; a `peft` that fails to import stands for an environment
    built some other way."""
    train = ROOT / "examples" / "specialize" / "ticket-triage.train.jsonl"
    blocked = tmp_path / "blocked" / "peft"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('not installed', name='peft')\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cadre"), "specialize", "ticket-triage",
         "--data", str(train)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "CADRE_ADAPTERS_DIR": str(tmp_path / "adapters"),
             "PYTHONPATH": str(blocked.parent)},
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "training adapters needs torch, transformers, peft, ray.train" in done.stderr
    assert "run `make setup`" in done.stderr
    assert not (tmp_path / "adapters").exists()


def test_lines_json_cannot_hold_are_named_not_a_crash(tmp_path: Path) -> None:
    deep = '{"input": "x", "output": {"team": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    data = tmp_path / "deep.jsonl"
    data.write_text(
        "\n".join([*good(3), deep, '{"input": "y", "output": {"team": NaN, "priority": "low"}}'])
    )
    with pytest.raises(DataError) as info:
        load_examples(data, TRIAGE, minimum=1)
    assert info.value.problems == [
        "deep.jsonl:4: nested deeper than JSON can be read here",
        "deep.jsonl:5: output/team is nan, which is not a JSON number",
    ]


def test_a_resume_with_nothing_to_resume_and_a_broken_workflow_stop_nothing_else(
    tmp_path: Path,
) -> None:
    """`--resume` with nothing unfinished is refused before the base model is written out (it
    wrote 517 MB first); a broken workflow file does not stop commands about one specialist."""
    cadre = str(Path(sys.executable).parent / "cadre")
    held = ROOT / "examples" / "specialize" / "ticket-triage.heldout.jsonl"
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "x.yaml").write_text("name: [broken\n")
    env = {
        **os.environ,
        "CADRE_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "CADRE_MODELS_DIR": str(tmp_path / "models"),
        "CADRE_GRAPHS": str(graphs),
    }
    resume = subprocess.run(
        [cadre, "specialize", "ticket-triage", "--data", str(held), "--resume",
         "--catalog", str(ROOT / "agents")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert resume.returncode == 2, resume.stderr
    assert "no unfinished training of" in resume.stderr
    assert not (tmp_path / "models").exists()
    versions = subprocess.run(
        [cadre, "specialists", "versions", "ticket-triage", "--catalog", str(ROOT / "agents")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert versions.returncode == 0, versions.stderr
    assert "malformed YAML" not in versions.stderr
