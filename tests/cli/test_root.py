"""The `cadre` command as a user runs it: a real process, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.catalogs import scripted_model, specialist, unique, write_catalog
from tests.conftest import CADRE, ROOT


def cadre(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CADRE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def scripted(tmp_path: Path) -> Path:
    model = unique("echo")
    return write_catalog(
        tmp_path,
        [scripted_model(model, context_length=64)],
        [
            specialist("sentiment", model, generation={"max_tokens": 16}),
            specialist("triage", model, tools=["calculator"], generation={"max_tokens": 16}),
        ],
    )


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = "import sys, orchestrator.cli; print(sorted({'ray', 'llama_cpp'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args",
    [[], ["validate"], ["ask"], ["specialists"], ["specialists", "list"], ["specialists", "show"]],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = cadre(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_validate_the_shipped_catalog() -> None:
    result = cadre("validate")
    assert result.returncode == 0, result.stderr
    assert "ok: 1 models, 9 specialists, 3 workflows" in result.stdout


def test_validate_reports_every_problem_and_exits_2(scripted: Path) -> None:
    (scripted / "specialists" / "bad.yaml").write_text("name: bad\nmodel: [\n")
    (scripted / "specialists" / "lost.yaml").write_text(
        json.dumps(specialist("lost", "gpt-9", adapter="lost.gguf"))
    )
    result = cadre("validate", "--catalog", str(scripted))
    assert_user_error(
        result,
        "3 problems in the catalog",
        "bad.yaml: line 3",
        "lost.yaml: model: unknown model 'gpt-9'",
        "lost.yaml: adapter: adapter file",
    )


def test_specialists_list_and_show(scripted: Path) -> None:
    listing = cadre("specialists", "list", "--catalog", str(scripted))
    assert listing.returncode == 0
    assert (
        "sentiment" in listing.stdout
        and "triage" in listing.stdout
        and "calculator" in listing.stdout
    )
    shown = cadre("specialists", "show", "triage", "--catalog", str(scripted))
    assert shown.returncode == 0
    assert "output_schema - JSON Schema every answer must fit" in shown.stdout
    assert '"positive"' in shown.stdout


def test_specialists_list_maps_each_specialist_to_its_adapter_and_host(tmp_path: Path) -> None:
    model = scripted_model("shared", replicas=2)
    model["hosting"].update({"num_gpus": 0.5, "resources": {"cadre_model_host": 1}})
    (tmp_path / "specialists").mkdir()
    (tmp_path / "specialists" / "router-lora").mkdir()  # an adapter directory
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (tmp_path / "specialists" / "router-lora" / name).write_text("{}")
    write_catalog(
        tmp_path,
        [model],
        [specialist("router", "shared", adapter="router-lora"), specialist("plain", "shared")],
    )
    listing = subprocess.run(
        [CADRE, "specialists", "list", "--catalog", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if "shared-0" in line}
    host = "shared-0..1 (gpu 0.5, cadre_model_host 1)"
    assert "router-lora" in rows["router"] and host in rows["router"]
    assert "router-lora" not in rows["plain"] and host in rows["plain"]


def test_show_unknown_specialist(scripted: Path) -> None:
    assert_user_error(
        cadre("specialists", "show", "sentimnt", "--catalog", str(scripted)),
        "unknown specialist 'sentimnt'; did you mean 'sentiment'?",
    )


@pytest.mark.ray
def test_ask_prints_answer_tokens_and_latency(scripted: Path) -> None:
    result = cadre("ask", "sentiment", "the parcel was late", "--catalog", str(scripted))
    assert result.returncode == 0, result.stderr
    assert '"sentiment": "positive"' in result.stdout
    assert "tokens in, 2 out" in result.stdout and " ms" in result.stdout


@pytest.mark.ray
def test_a_host_ray_cannot_make_is_one_error_not_a_traceback(scripted: Path) -> None:
    """A runtime environment Ray cannot set up (here a job's working_dir package that is not in
    its store, as when Ray drops one under load) fails the call with what Ray said last."""
    package = "gcs://_ray_pkg_0123456789abcdef.zip"
    job = json.dumps({"runtime_env": {"working_dir": package}})
    result = cadre(
        "ask", "sentiment", "hi", "--catalog", str(scripted),
        env={"RAY_JOB_CONFIG_JSON_ENV_VAR": job},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: host ") and "could not set up its runtime environment" in line
    assert f"Failed to download runtime_env file package {package}" in line


@pytest.mark.ray
def test_ask_json_reads_stdin(scripted: Path) -> None:
    result = cadre("ask", "sentiment", "-", "--json", "--catalog", str(scripted), stdin="so slow")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["output"] == {"sentiment": "positive"}
    assert record["usage"]["output_tokens"] == 2 and record["usage"]["input_tokens"] > 0


def test_ask_with_empty_text(scripted: Path) -> None:
    assert_user_error(
        cadre("ask", "sentiment", "   ", "--catalog", str(scripted)), "the input text is empty"
    )


def test_ask_unknown_specialist(scripted: Path) -> None:
    assert_user_error(
        cadre("ask", "nobody", "hi", "--catalog", str(scripted)), "unknown specialist 'nobody'"
    )


@pytest.mark.ray
def test_ask_with_text_too_long_for_the_context(scripted: Path) -> None:
    result = cadre("ask", "sentiment", "word " * 200, "--catalog", str(scripted))
    assert_user_error(result, "specialist 'sentiment'", "context holds 64", "Shorten the input")


def test_usage_error_exits_2() -> None:
    result = cadre("ask")
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


def test_ask_refuses_stdin_that_is_not_text_or_too_big_before_anything_starts(
    scripted: Path,
) -> None:
    """Bytes that are not UTF-8 used to reach llama.cpp and fail there (exit 1); a stdin of any
    size was read whole. Both are refused at once, before Ray starts."""
    for data, message in (
        (b"pick \xff\xfe x", "standard input is not UTF-8 text (byte 6 is not)"),
        (b"a" * (10 * 1024 * 1024 + 1), "standard input holds more than 10 MB"),
    ):
        done = subprocess.run(
            [CADRE, "ask", "sentiment", "-", "--catalog", str(scripted)],
            input=data,
            capture_output=True,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr.decode()
        assert b"Traceback" not in done.stderr


def test_ask_says_which_tools_a_specialist_called(
    scripted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A specialist with tools may act on the way (notify sends a message): `ask` says what it
    called, and `--json` lists the calls (both said nothing of them)."""
    from typer.testing import CliRunner

    from orchestrator.cli import root
    from orchestrator.specialists.calls import SpecialistAnswer

    answer = SpecialistAnswer(
        "triage", "m", {"sentiment": "positive"}, "{}", 5, 3, "stop", 0.1, 0.05, 0.0, "m-0",
        tool_calls=({"tool": "calculator", "args": {"expression": "2 + 2"}, "result": 4},),
    )  # fmt: skip

    async def answered(catalog: Any, name: str, text: str) -> Any:
        return answer, 0.5

    monkeypatch.setattr(root, "_ask", answered)
    runner = CliRunner()
    plain = runner.invoke(root.app, ["ask", "triage", "add up", "--catalog", str(scripted)])
    assert plain.exit_code == 0, plain.output
    assert 'called calculator {"expression": "2 + 2"} → 4' in plain.output
    shown = runner.invoke(root.app, ["ask", "triage", "x", "--json", "--catalog", str(scripted)])
    assert json.loads(shown.output)["tool_calls"] == [dict(answer.tool_calls[0])]


def test_serve_on_a_port_in_use_says_so_before_it_starts_anything(tmp_path: Path) -> None:
    """uvicorn found the port taken only after the banner had said the API was up and the
    run workers had started, and printed its own error."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cadre(
            "serve", "--port", str(port), env={"CADRE_DATABASE_URL": f"sqlite:///{tmp_path}/r.db"}
        )
    assert_user_error(result, f"--port {port}: 127.0.0.1:{port} is in use")
    assert "cadre API on" not in result.stdout
    assert not (tmp_path / "r.db").exists()  # refused before the database was opened


def test_validate_says_when_it_checked_no_workflows(tmp_path: Path) -> None:
    """`ok: 1 models, 4 specialists, 0 workflows` said nothing of the graphs/ folder it had
    not found beside the catalog."""
    write_catalog(tmp_path / "agents", [scripted_model("m")], [specialist("s", "m")])
    result = cadre("validate", "--catalog", str(tmp_path / "agents"))
    assert result.returncode == 0, result.stderr
    assert "ok: 1 models, 1 specialists, 0 workflows" in result.stdout
    warning = " ".join(result.stderr.split())
    assert f"warning: no workflows checked: {tmp_path / 'graphs'} does not exist" in warning
