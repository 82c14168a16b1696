"""Hostile input files for `cadre run --input`, `cadre submit` and `cadre run --inputs`: each gets a
clear error and exit code 2, never a traceback or an unbounded read, and creates nothing."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.cli.inputs import MAX_INPUT_BYTES, count_lines, input_lines


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert len(result.stderr) < 1000, result.stderr


def hostile_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Each --input value, and what the error must say."""
    folder = tmp_path / "folder"
    folder.mkdir()
    binary = tmp_path / "image.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xd8\xff")
    zeros = tmp_path / "zeros.json"
    zeros.write_bytes(b"\x00" * 64)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:
        file.truncate(MAX_INPUT_BYTES * 3)  # sparse: no disk used
    deep = tmp_path / "deep.json"
    deep.write_text('{"claim": ' + "[" * 5000 + "]" * 5000 + "}")
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({"claim": ["a long claim " * 10] * 2000}))
    twice = tmp_path / "twice.json"
    twice.write_text('{"claim": "the roof", "claim": "the cellar"}')
    return {
        "empty": ("", "--input is empty"),
        "blank": ("   ", "--input is empty"),
        "folder": (str(folder), "is a directory"),
        "binary": (str(binary), "is not UTF-8 JSON"),
        "zeros": (str(zeros), "is a binary file, not UTF-8 JSON"),
        "missing": (str(tmp_path / "nope.json"), "nope.json: no such file"),
        "dev-zero": ("/dev/zero", "larger than the 10 MB limit"),
        "huge": (str(huge), "larger than the 10 MB limit"),
        "deep": (str(deep), "nested deeper than 100 levels"),
        "wide": (str(wide), "more characters cut"),
        "twice": (str(twice), "the key 'claim' appears twice in one object"),
    }


CASES = [
    "empty",
    "blank",
    "folder",
    "binary",
    "zeros",
    "missing",
    "dev-zero",
    "huge",
    "deep",
    "twice",
]


@pytest.mark.parametrize("case", [*CASES, "wide"])
def test_run_refuses_a_hostile_input_file(cli, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    value, message = hostile_files(tmp_path)[case]
    started = time.perf_counter()
    refused(cli("run", "claim", "--input", value), message)
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "runs.db").exists()  # nothing was created


@pytest.mark.parametrize("case", ["empty", "folder", "binary", "missing", "dev-zero"])
def test_submit_refuses_before_reaching_the_cluster(cli, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    value, message = hostile_files(tmp_path)[case]
    # No job server listens on this address: only a refusal before contacting it exits 2.
    refused(cli("submit", "claim", "--input", value, "--address", "http://127.0.0.1:9"), message)


def test_inputs_file_that_cannot_be_read_is_refused_before_anything_starts(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    refused(cli("run", "claim", "--inputs", str(tmp_path / "nope.jsonl")), "no such file")
    refused(cli("run", "claim", "--inputs", str(tmp_path)), "is a directory")
    refused(cli("run", "claim"), "give the run input with --input")
    refused(cli("run", "claim", "--input", "{}", "--inputs", "x.jsonl"), "--inputs, not both")
    refused(cli("run", "claim", "--input", "{}", "-n", "4"), "--concurrency goes with --inputs")
    refused(cli("run", "claim", "--input", "{}", "-o", "x.jsonl"), "--output goes with --inputs")
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"claim": "x"}\n')
    refused(
        cli("run", "claim", "--inputs", str(lines), "--output", str(lines)), "is the inputs file"
    )


def test_inputs_lines_are_read_within_bounds() -> None:
    long_line = b'{"claim": "' + b"x" * (MAX_INPUT_BYTES + 10) + b'"}\n'
    data = (
        b'{"claim": "one"}\n'
        b"\n"
        b"   \n"
        + long_line
        + b"not json\n"
        + b"\xff\xfe\n"
        + b"[" * 500
        + b"]" * 500
        + b"\n"
        + b'{"claim": "last"}'  # no end of line
    )
    lines = list(input_lines(io.BytesIO(data), "in.jsonl"))
    assert [line.number for line in lines] == [1, 4, 5, 6, 7, 8]
    assert lines[0].data == {"claim": "one"} and lines[-1].data == {"claim": "last"}
    assert lines[1].error == "longer than the 10 MB limit for an input"
    assert lines[2].error == "line 5 is not JSON (column 1): Expecting value"
    assert "line 6 is not UTF-8 JSON" in str(lines[3].error)
    assert "nested deeper than 100 levels" in str(lines[4].error)


def test_an_endless_line_stops_the_reading(tmp_path: Path) -> None:
    with Path("/dev/zero").open("rb") as zeros:
        (line,) = list(input_lines(zeros, "/dev/zero"))
    assert line.number == 1 and "stopped reading /dev/zero" in str(line.error)
    assert count_lines(Path("/dev/zero")) is None
    counted = tmp_path / "in.jsonl"
    counted.write_text('{"a": 1}\n\n  \n{"a": 2}\n{"a": 3}')
    assert count_lines(counted) == 3
