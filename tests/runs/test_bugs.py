"""A bug in a node (an exception that is not one of Cadre's errors) stays a bug: the run is
recorded as failed with the exception and the node it came from, and the exception itself goes
up, with its own type, to whoever drives the run. Cadre's own errors name the node and keep
their type. Runs here are driven in this process (LocalAsker, scripted engine, SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog
from orchestrator.workflow.nodes import specialist
from tests.workflow.fixtures import scripted_workflow_catalog


def start(tmp_path: Path) -> tuple[BaseException, Any]:
    """Start the claim flow; the exception it raised and the run's record."""
    catalog = load_catalog(scripted_workflow_catalog(tmp_path / "c"))

    async def go() -> tuple[BaseException, Any]:
        url = f"sqlite:///{tmp_path / 'runs.db'}"
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            with pytest.raises(Exception) as info:
                await runner.start("claim", {"claim": "a dent"})
            return info.value, runner.store.runs(workflow="claim", limit=1)[0]

    return asyncio.run(go())


def test_a_bug_in_a_node_fails_the_run_and_stays_its_own_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(template: str, state: dict[str, Any]) -> str:
        return {}["claim"]  # a KeyError, as a bug in rendering would raise

    monkeypatch.setattr(specialist, "render", broken)
    error, record = start(tmp_path)
    assert type(error) is KeyError
    assert error.cadre_node == "extract"  # type: ignore[attr-defined]
    assert record.status == "failed"
    assert record.error == "KeyError: 'claim' (in node 'extract')"


def test_a_cadre_error_in_a_node_names_the_node_and_keeps_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(template: str, state: dict[str, Any]) -> str:
        raise InputError("the claim is empty")

    monkeypatch.setattr(specialist, "render", refused)
    error, record = start(tmp_path)
    assert type(error) is InputError
    assert error.message == "node 'extract': the claim is empty"
    assert (record.status, record.error) == ("failed", "node 'extract': the claim is empty")
