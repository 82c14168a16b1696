"""Every CADRE_* setting is read in config.py, when asked for, with its documented default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator import config

ROOT = Path(__file__).resolve().parents[1]


def test_the_defaults_are_under_cadre_and_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in dir(config):
        if name.endswith("_ENV"):
            monkeypatch.delenv(getattr(config, name), raising=False)
    assert config.catalog_root() == Path("agents")
    assert config.graphs_root(Path("somewhere/agents")) == Path("somewhere").resolve() / "graphs"
    assert config.models_dir() == Path(".cadre/models")
    assert config.adapters_dir() == Path(".cadre/adapters")
    assert config.database_url() == "sqlite:///.cadre/cadre.db"
    assert config.trace_file() == Path(".cadre/traces.jsonl")
    assert config.capture_content() is False
    assert config.flush_timeout_s() == 2.0
    assert config.trace_checkpoints() == "events"
    assert config.webhook_allow() == [] and config.http_allowlist() == []


def test_each_variable_is_read_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADRE_CATALOG", "/srv/cat")
    monkeypatch.setenv("CADRE_GRAPHS", "/srv/wf")
    monkeypatch.setenv("CADRE_MODELS_DIR", "/vol/models")
    monkeypatch.setenv("CADRE_ADAPTERS_DIR", "/vol/adapters")
    monkeypatch.setenv("CADRE_DATABASE_URL", "postgresql://db/cadre")
    monkeypatch.setenv("CADRE_TRACE_FILE", "/tmp/t.jsonl")
    monkeypatch.setenv("CADRE_CAPTURE_CONTENT", "True")
    monkeypatch.setenv("CADRE_OTEL_FLUSH_TIMEOUT_S", "0.5")
    monkeypatch.setenv("CADRE_TRACE_CHECKPOINTS", "SPANS")
    monkeypatch.setenv("CADRE_WEBHOOK_ALLOW", " hooks.internal, ,10.2.0.0/16 ")
    monkeypatch.setenv("CADRE_HTTP_ALLOWLIST", "API.Example.com,")
    assert config.catalog_root() == Path("/srv/cat")
    assert config.graphs_root(Path("/srv/cat")) == Path("/srv/wf")
    assert config.models_dir() == Path("/vol/models")
    assert config.adapters_dir() == Path("/vol/adapters")
    assert config.database_url() == "postgresql://db/cadre"
    assert config.trace_file() == Path("/tmp/t.jsonl")
    assert config.capture_content() is True
    assert config.flush_timeout_s() == 0.5
    assert config.trace_checkpoints() == "spans"
    assert config.webhook_allow() == ["hooks.internal", "10.2.0.0/16"]
    assert config.http_allowlist() == ["api.example.com"]


def test_no_module_but_config_reads_a_cadre_variable() -> None:
    """A CADRE_* name in code outside config.py is a setting read somewhere else."""
    strays = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "orchestrator").rglob("*.py"))
        if path.name != "config.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"']CADRE_[A-Z_]+[\"']", line)
    ]
    assert strays == []


def test_the_table_in_the_docstring_names_every_variable() -> None:
    documented = set(re.findall(r"``(CADRE_[A-Z_]+)``", config.__doc__ or ""))
    declared = {getattr(config, n) for n in dir(config) if n.endswith("_ENV")}
    assert documented == declared


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CADRE_OTEL_FLUSH_TIMEOUT_S", "abc", "give seconds from 0 to 300"),
        ("CADRE_OTEL_FLUSH_TIMEOUT_S", "nan", "give seconds from 0 to 300"),
        ("CADRE_OTEL_FLUSH_TIMEOUT_S", "1e400", "give seconds from 0 to 300"),
        ("CADRE_OTEL_FLUSH_TIMEOUT_S", "-5", "give seconds from 0 to 300"),
        ("CADRE_CAPTURE_CONTENT", "maybe", "give 1 or 0"),
        ("CADRE_TRACE_CHECKPOINTS", "span", "give events (the default) or spans"),
        ("CADRE_ADAPTERS_DIR", "README.md", "that is a file; give a folder"),
        ("CADRE_CATALOG", "README.md", "that is a file; give a folder"),
        ("CADRE_TRACE_FILE", "tests", "that is a folder; give a file path"),
        ("CADRE_WEBHOOK_ALLOW", "hooks.internal, 10.2.0.0/33", "'10.2.0.0/33' is not a network"),
        ("CADRE_HTTP_ALLOWLIST", "http://127.0.0.1:8080", "give bare host names"),
        ("CADRE_HTTP_ALLOWLIST", "example.com:443", "give bare host names"),
    ],
)
def test_a_variable_set_wrong_is_one_problem_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """Before, a wrong value was quietly read as the default (`span` for `spans`, a CIDR typo
    as a host name), or failed a succeeded run at its last flush with a traceback."""
    monkeypatch.chdir(ROOT)
    for name in dir(config):
        if name.endswith("_ENV"):
            monkeypatch.delenv(getattr(config, name), raising=False)
    assert config.problems() == []
    monkeypatch.setenv(variable, value)
    (problem,) = config.problems()
    assert problem.startswith(variable) and message in problem
    if variable == "CADRE_OTEL_FLUSH_TIMEOUT_S":
        assert config.flush_timeout_s() == 2.0  # read as the default where it is read at all


def test_values_that_are_right_are_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for variable, value in [
        ("CADRE_OTEL_FLUSH_TIMEOUT_S", "0.5"),
        ("CADRE_CAPTURE_CONTENT", "ON"),
        ("CADRE_TRACE_CHECKPOINTS", "spans"),
        ("CADRE_ADAPTERS_DIR", "no/such/folder/yet"),
        ("CADRE_WEBHOOK_ALLOW", "hooks.internal, 10.2.0.0/16, fd00::/8"),
        ("CADRE_HTTP_ALLOWLIST", "api.example.com, 127.0.0.1, ::1"),
    ]:
        monkeypatch.setenv(variable, value)
    assert config.problems() == []
    assert config.flush_timeout_s() == 0.5 and config.capture_content()


def test_the_cli_refuses_a_wrong_variable_before_it_does_anything(tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.conftest import CADRE

    env = {**os.environ, "CADRE_OTEL_FLUSH_TIMEOUT_S": "abc"}
    done = subprocess.run(
        [CADRE, "runs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "CADRE_OTEL_FLUSH_TIMEOUT_S='abc': give seconds" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".cadre").exists()
