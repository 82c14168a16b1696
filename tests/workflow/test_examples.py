"""The shipped workflows, wired as shipped, with the model swapped for the scripted engine: what
each node passes to the next, independent of what SmolLM2 happens to answer."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.catalog import load_catalog
from orchestrator.hosting.pool import HostPool
from orchestrator.runs.runner import Runner
from orchestrator.tools.builtins import outbox
from tests.catalogs import unique
from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]
CLAIM = {
    "policy_number": "HP-61207",
    "claim_type": "property",
    "incident_date": "18 October",
    "amount": 4800,
}


def scripted_copy(tmp_path: Path) -> Path:
    agents = tmp_path / "agents"
    shutil.copytree(ROOT / "agents", agents)
    shutil.copytree(ROOT / "graphs", tmp_path / "graphs")
    model_file = agents / "models" / "smollm2-135m.yaml"
    model = yaml.safe_load(model_file.read_text())
    rules = [
        {"tag": "claim-extractor", "reply": json.dumps(CLAIM)},
        {"tag": "claim-decision", "reply": '{"decision": "pay", "rationale": "Covered [1]."}'},
    ]
    model.update(engine="scripted", weights={"kind": "none"}, engine_options={"rules": rules})
    # A name of its own: host actors are named after their model, and the real one may be up.
    name = unique("scripted-smollm2")
    model["name"] = name
    model_file.write_text(yaml.safe_dump(model))
    for spec_file in (agents / "specialists").glob("*.yaml"):
        spec_file.write_text(spec_file.read_text().replace("model: smollm2-135m", f"model: {name}"))
    return agents


def test_claim_triage_remembers_an_approved_decision_for_the_next_claim(tmp_path: Path) -> None:
    catalog = load_catalog(scripted_copy(tmp_path))
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    pool = HostPool(catalog)
    claim = {
        "claim": "Policy HP-61207. A storm tore part of the roof off; the roofer quotes 4,800."
    }

    async def run(approver: str) -> Any:
        async with Runner(catalog, database_url=url, asker=pool) as runner:
            record = await runner.start("claim-triage", claim)
            assert record.status == "awaiting_review"
            (review,) = runner.store.reviews("pending", record.id)
            _, record = await runner.decide(review.id, "approve", approver)
            return record

    first = asyncio.run(run("ann"))
    second = asyncio.run(run("bob"))
    pool.shutdown()
    assert first.status == second.status == "succeeded"
    assert first.output["policy"] == [
        {"holder": "M. Jansen", "product": "home", "status": "active", "deductible": 250}
    ]
    assert first.output["payout"] == 4550 and first.output["precedents"] == []
    (precedent,) = second.output["precedents"]
    assert precedent["text"].startswith(
        "Claim HP-61207 (property, 4800 claimed): pay, payout 4550."
    )
    assert precedent["provenance"]["run"] == first.id
    assert precedent["provenance"]["approved_by"] == ["ann"]
    messages = outbox(url)
    assert [m["channel"] for m in messages] == ["claims-desk", "claims-desk"]
    assert messages[0]["message"].startswith("Claim HP-61207: pay, payout 4550.")
