"""Adapter versions are never overwritten; one goes live only if it beats the live one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, InputError, NotFoundError
from orchestrator.specialize.registry import Registry
from tests.conftest import ROOT

METRIC = "exact_match"


def trained(
    registry: Registry,
    score_: float,
    data: str = "h1",
    base: float = 0.3,
    specialist: str = "triage",
    **more: dict[str, object],
) -> str:
    version = registry.claim(specialist, {"base_model": "smollm2-135m", "data_hash": "abc"})
    (version.path / "adapter_config.json").write_text("{}")
    evals = {
        METRIC: {"score": score_, "data": data},
        "base": {METRIC: {"score": base, "data": data}},
        **more,
    }
    registry.update_meta(version, trained_at=1.0, eval=evals)
    return version.name


def test_versions_are_numbered_and_never_reused(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    names: list[str] = []
    threads = [
        threading.Thread(target=lambda: names.append(registry.claim("triage", {}).name))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names, key=lambda n: int(n[1:])) == [f"v{i}" for i in range(1, 9)]
    assert registry.version("triage", "v3").meta["version"] == "v3"
    with pytest.raises(NotFoundError, match="no adapter version 'v9'"):
        registry.version("triage", "v9")


def test_promote_only_when_it_beats_the_live_one_then_roll_back(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    v1, v2, v3 = trained(registry, 0.6), trained(registry, 0.5), trained(registry, 0.8)
    registry.promote("triage", v1, METRIC, by="ann")  # beats the base model (0.3)
    assert registry.live("triage").name == "v1"
    with pytest.raises(ConflictError, match="v2 scores 0.500 on exact_match; live v1 scores 0.600"):
        registry.promote("triage", v2, METRIC, by="ann")
    assert registry.live("triage").name == "v1"
    registry.promote("triage", v2, METRIC, by="bob", force=True)
    registry.promote("triage", v3, METRIC, by="ann")
    history = registry.history("triage")
    assert [(h["version"], h["by"], h["forced"]) for h in history] == [
        ("v1", "ann", False),
        ("v2", "bob", True),
        ("v3", "ann", False),
    ]
    assert history[2]["why"] == "exact_match 0.800 > 0.500 (live v2)"
    assert registry.rollback("triage", by="ann").name == "v2"
    assert registry.rollback("triage", by="ann").name == "v1"
    assert registry.rollback("triage", by="ann") is None  # back to the bare base
    with pytest.raises(InputError, match="no live adapter version"):
        registry.rollback("triage", by="ann")


def test_promote_refuses_without_a_comparable_eval(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    unscored = registry.claim("triage", {})
    (unscored.path / "adapter_config.json").write_text("{}")
    registry.update_meta(unscored, trained_at=1.0)
    with pytest.raises(InputError, match="no exact_match score yet; run `cadre eval triage"):
        registry.promote("triage", unscored.name, METRIC, by="ann")
    unfinished = registry.claim("triage", {})
    with pytest.raises(InputError, match="did not finish training"):
        registry.promote("triage", unfinished.name, METRIC, by="ann", force=True)
    v3, v4 = trained(registry, 0.9, data="h1"), trained(registry, 0.95, data="h2")
    registry.promote("triage", v3, METRIC, by="ann")
    with pytest.raises(ConflictError, match="different held-out data"):
        registry.promote("triage", v4, METRIC, by="ann")
    assert registry.live("triage").name == v3


def test_promoting_a_version_no_better_than_the_majority_label_says_so(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    for floor in (0.6, 0.4):  # both score 0.5: v1 below always-"billing", v2 above it
        majority = {"label": "billing", "score": floor, "data": "h1"}
        trained(registry, 0.5, specialist="ticket-triage", majority=majority)
    done = [
        subprocess.run(
            [
                str(Path(sys.executable).parent / "cadre"),
                "specialists",
                "promote",
                "ticket-triage",
                name,
                "--force",
                "--catalog",
                str(ROOT / "agents"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CADRE_ADAPTERS_DIR": str(tmp_path), "COLUMNS": "200"},
        )  # fmt: skip
        for name in ("v1", "v2")
    ]
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
    assert "v1 scores 0.500, no better than always answering 'billing' (0.600)" in done[0].stdout
    assert "v2 is live" in done[1].stdout and "no better than" not in done[1].stdout
