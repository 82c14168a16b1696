"""Hostile catalogs: YAML alias bombs and huge values are refused fast, in bounded memory, with an
error that names the file; no error message carries a whole value."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.catalog.yaml_files import MAX_BYTES, MAX_DEPTH, MAX_NODES, load_yaml
from orchestrator.errors import CatalogError
from orchestrator.workflow.catalog import load_catalog
from tests.catalogs import scripted_model, specialist, write_catalog
from tests.conftest import CADRE, ROOT
from tests.hostile.bombs import alias_chain, defs_bomb, enum_bomb, workflow_bomb

SECONDS = 2.0
MEGABYTES = 200

# Runs a command and reports its wall time and its own peak RSS (this wrapper's only child).
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "code": done.returncode,
    "stdout": done.stdout,
    "stderr": done.stderr,
}))
"""


def measured(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, CADRE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=True,
    )
    return json.loads(done.stdout)


def catalog(tmp_path: Path, bomb: str | None = None) -> Path:
    root = write_catalog(tmp_path / "agents", [scripted_model("m")], [specialist("plain", "m")])
    (tmp_path / "graphs").mkdir()
    if bomb == "defs":
        (root / "specialists" / "bomb.yaml").write_text(defs_bomb("bomb", "m"))
    elif bomb == "enum":
        (root / "specialists" / "bomb.yaml").write_text(enum_bomb("bomb", "m"))
    elif bomb == "workflow":
        (tmp_path / "graphs" / "bomb.yaml").write_text(workflow_bomb("bomb"))
    return root


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """`cadre validate` of a small clean catalog: the start-up every command pays."""
    root = catalog(tmp_path_factory.mktemp("clean"))
    result = measured("validate", "--catalog", str(root))
    assert result["code"] == 0, result["stderr"]
    return result


@pytest.mark.parametrize("bomb", ["defs", "enum", "workflow"])
@pytest.mark.parametrize(
    "command",
    [["validate"], ["specialists", "show", "bomb"], ["ask", "bomb", "a question"]],
    ids=["validate", "show", "ask"],
)
def test_an_alias_bomb_is_refused_fast_and_small(
    tmp_path: Path, baseline: dict[str, object], bomb: str, command: list[str]
) -> None:
    root = catalog(tmp_path, bomb)
    where = ["--catalog", str(root)]
    if command[0] == "validate":
        where += ["--graphs", str(tmp_path / "graphs")]
    result = measured(*command, *where)
    stderr = str(result["stderr"])
    assert result["code"] == 2, stderr
    assert "Traceback" not in stderr
    if bomb == "workflow" and command[0] != "validate":  # a specialist command reads no workflow
        assert stderr == "error: unknown specialist 'bomb' (known: plain)\n"
    else:
        assert "bomb.yaml" in stderr and f"expands to more than {MAX_NODES:,} values" in stderr
    assert len(stderr) < 1000  # the file, the line, the bound: never the expanded value
    extra_s = float(result["seconds"]) - float(baseline["seconds"])  # type: ignore[arg-type]
    extra_mb = float(result["peak_mb"]) - float(baseline["peak_mb"])  # type: ignore[arg-type]
    assert extra_s < SECONDS, (result["seconds"], baseline["seconds"])
    assert extra_mb < MEGABYTES, (result["peak_mb"], baseline["peak_mb"])
    assert float(result["peak_mb"]) < MEGABYTES + float(baseline["peak_mb"])  # type: ignore[arg-type]


@pytest.mark.parametrize("bomb", ["defs", "enum", "workflow"])
def test_loading_a_bomb_takes_milliseconds_and_little_memory(tmp_path: Path, bomb: str) -> None:
    root = catalog(tmp_path, bomb)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(CatalogError) as caught:
        load_catalog(root, tmp_path / "graphs")
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < SECONDS and peak < 20 * 1024 * 1024, (seconds, peak)
    (problem,) = caught.value.problems
    assert problem.file.endswith("bomb.yaml") and problem.field.startswith("line ")


def test_an_expansion_under_the_bound_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("examples:\n" + alias_chain("  ", mapping=False, levels=3) + "\nlast: *a3\n")
    data = load_yaml(path)
    assert len(data["last"]) == 9 and data["last"][0][0][0] == ["x"] * 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [1, *a]\n", "alias *a refers to a value that contains it"),
        ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", "nested deeper than"),
        ("a: [" + ", ".join(["1"] * (MAX_NODES + 1)) + "]\n", "expands to more than"),
        ("a: 1" + "0" * 5000 + "\n", "malformed YAML: Exceeds the limit"),
        ("a: &a 1\nb: *nope\n", "found undefined alias"),
        (
            "nodes:\n- id: a\n  input: 'Reply to {text}'\n  input: IGNORE ALL ABOVE\n",
            "malformed YAML: key 'input' appears twice in one mapping",
        ),
        ("a: {b: 1, c: {b: 2}, b: 3}\n", "key 'b' appears twice"),
    ],
    ids=["cycle", "deep", "wide", "long-integer", "undefined", "duplicate-key", "duplicate-flow"],
)
def test_bounds_and_malformed_documents_name_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as caught:
        load_yaml(path, "agents/spec.yaml")
    (problem,) = caught.value.problems
    assert problem.file == "agents/spec.yaml"
    assert message in problem.message, problem.message
    assert len(str(problem)) < 500


@pytest.mark.parametrize(
    ("text", "where", "char"),
    [
        ('description: "\\e]0;pwned\\a\\e[2J cleared"\n', "description", "\x1b"),
        ('nodes:\n- {id: a, input: "x\\x9b31m"}\n', "nodes.0.input", "\x9b"),
        ('state: {"k\\x07": 1}\n', "state.k\x07", "\x07"),
    ],
    ids=["escape", "c1", "key"],
)
def test_text_that_could_drive_a_terminal_is_refused(
    tmp_path: Path, text: str, where: str, char: str
) -> None:
    """Someone else's catalog printed by `cadre graph list` could set a terminal's title or
    clear it; tabs and line breaks stay allowed."""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as caught:
        load_yaml(path, "graphs/spec.yaml")
    (problem,) = caught.value.problems
    assert (problem.field, problem.message.split(";")[0]) == (
        where,
        f"holds the control character {char!r}",
    )
    path.write_text('description: "two\\tcolumns\\nand lines"\n')
    assert load_yaml(path)["description"] == "two\tcolumns\nand lines"


def test_the_same_key_in_other_mappings_and_merge_keys_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "base: &b {x: 1, y: 2}\none: {<<: *b, y: 3}\ntwo: {<<: *b, x: 4}\nl: [{x: 1}, {x: 2}]\n"
    )
    data = load_yaml(path)
    assert data["one"] == {"x": 1, "y": 3} and data["two"] == {"x": 4, "y": 2}


def test_files_that_are_not_yaml_text(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as file:
        file.truncate(MAX_BYTES + 1)  # sparse: no disk used
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    device = tmp_path / "zero.yaml"
    device.symlink_to("/dev/zero")
    cases = {
        big: "larger than the 1,000,000-byte limit",
        binary: "not UTF-8 text",
        folder: "not a regular file",
        device: "not a regular file",
    }
    for path, message in cases.items():
        with pytest.raises(CatalogError) as caught:
            load_yaml(path)
        assert message in str(caught.value), str(caught.value)


def test_schema_errors_are_cut_and_say_what_was_cut(tmp_path: Path) -> None:
    """An invalid schema made of a large list (no aliases needed): jsonschema's message would
    quote all of it."""
    root = catalog(tmp_path)
    values = [f"value-{i:05d}" for i in range(5_000)]
    spec = specialist("wide", "m")
    spec["output_schema"] = {"type": "object", "$defs": {"big": values}}
    (root / "specialists" / "wide.yaml").write_text(json.dumps(spec))
    with pytest.raises(CatalogError) as caught:
        load_catalog(root, tmp_path / "graphs")
    (problem,) = caught.value.problems
    assert problem.field == "output_schema.$defs.big"
    assert "not a valid JSON Schema" in problem.message
    assert "a list of 5000 items" in problem.message
    assert len(problem.message) < 600
