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

from orchestrator.hosting.pool import HostPool
from orchestrator.runs.runner import Runner
from orchestrator.tools.builtins import outbox
from orchestrator.workflow.catalog import load_catalog
from tests.catalogs import unique
from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]
CLAIM = {
    "policy_number": "HP-61207",
    "claim_type": "property",
    "incident_date": "18 October",
    "amount": 4800,
}


def scripted_copy(tmp_path: Path, fields: dict[str, Any] = CLAIM) -> Path:
    """The shipped catalog and workflows on the scripted engine: the extractor answers
    ``fields``; claim-decision pays, unless the workflow fixed its decision (then the scripted
    engine answers the schema's simplest instance, which is the fixed value)."""
    agents = tmp_path / "agents"
    shutil.copytree(ROOT / "agents", agents)
    shutil.copytree(ROOT / "graphs", tmp_path / "graphs")
    model_file = agents / "models" / "smollm2-135m.yaml"
    model = yaml.safe_load(model_file.read_text())
    rules = [
        {"tag": "claim-extractor", "reply": json.dumps(fields)},
        {"tag": "claim-decision", "contains": "Severity:", "reply": PAY},
    ]
    model.update(engine="scripted", weights={"kind": "none"}, engine_options={"rules": rules})
    # A name of its own: host actors are named after their model, and the real one may be up.
    name = unique("scripted-smollm2")
    model["name"] = name
    model_file.write_text(yaml.safe_dump(model))
    for spec_file in (agents / "specialists").glob("*.yaml"):
        spec_file.write_text(spec_file.read_text().replace("model: smollm2-135m", f"model: {name}"))
    return agents


PAY = '{"decision": "pay", "rationale": "Covered [1]."}'


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
            assert review.node == "adjuster"
            _, record = await runner.decide(review.id, "approve", approver)
            return record

    first = asyncio.run(run("ann"))
    second = asyncio.run(run("bob"))
    pool.shutdown()
    assert first.status == second.status == "succeeded"
    assert first.output["policy"] == [
        {
            "policy_number": "HP-61207",
            "holder": "M. Jansen",
            "product": "home",
            "status": "active",
            "deductible": 250,
            "matches_claim": 1,
        }
    ]
    assert first.output["decision"]["decision"] == "pay" and first.output["exclusions"] == []
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


CLAIMS = {
    "small": ("Policy AU-55120. A stone chipped my windscreen; the repair costs 380 euros.",
              {"policy_number": "AU-55120", "claim_type": "auto", "incident_date": "unknown",
               "amount": 380}),
    "lapsed": ("Policy HP-44120. A storm broke two roof windows; the glazier asks 900 euros.",
               {"policy_number": "HP-44120", "claim_type": "property", "incident_date": "unknown",
                "amount": 900}),
    "pets": ("Policy HP-20931. Our dog chewed through the sofa; a new one costs 700 euros.",
             {"policy_number": "HP-20931", "claim_type": "property", "incident_date": "unknown",
              "amount": 700}),
    "unknown": ("Policy HP-99999. Burglars took my bike from the hall; it cost 600 euros.",
                {"policy_number": "HP-99999", "claim_type": "property",
                 "incident_date": "unknown", "amount": 600}),
    "product": ("Policy AU-77812. A pipe burst in the kitchen; the plumber asks 5,950 euros.",
                {"policy_number": "AU-77812", "claim_type": "property",
                 "incident_date": "unknown", "amount": 5950}),
    "large": ("Policy HP-61207. A storm tore part of the roof off; the roofer quotes 4,800.",
              CLAIM),
}  # fmt: skip


def test_claim_triage_lets_the_policy_decide_where_a_rule_applies(tmp_path: Path) -> None:
    """The deductible comes from the policy row; a lapsed policy and an excluded cause are
    denied by rule (the specialist writes only the rationale); a number with no policy, or a
    policy for another kind of claim, stops for a person; what the small model decides alone
    goes to review; an adjuster's rejection denies."""
    agents = scripted_copy(tmp_path)
    model_file = next((agents / "models").glob("*.yaml"))
    model = yaml.safe_load(model_file.read_text())
    model["engine_options"]["rules"][:0] = [
        {"tag": "claim-extractor", "contains": text.split(".")[0], "reply": json.dumps(fields)}
        for text, fields in CLAIMS.values()
    ]
    model_file.write_text(yaml.safe_dump(model))
    catalog = load_catalog(agents)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    pool = HostPool(catalog)

    async def go() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with Runner(catalog, database_url=url, asker=pool) as runner:
            for name, (text, _) in CLAIMS.items():
                record = await runner.start("claim-triage", {"claim": text})
                reviews = runner.store.reviews("pending", record.id)
                seen[name] = (record, [r.node for r in reviews])
            # A person corrects the number that matched no policy: it is looked up again.
            record, _ = seen["unknown"]
            (review,) = runner.store.reviews("pending", record.id)
            fixed = {**CLAIMS["unknown"][1], "policy_number": "HP-10077"}
            _, record = await runner.decide(review.id, "edit", "ann", changes={"fields": fixed})
            seen["corrected"] = (
                record,
                [r.node for r in runner.store.reviews("pending", record.id)],
            )
            # What the model decided alone is approved; the adjuster refuses the large payout.
            record, _ = seen["small"]
            (review,) = runner.store.reviews("pending", record.id)
            _, record = await runner.decide(review.id, "approve", "ann")
            seen["small"] = (record, [])
            record, _ = seen["large"]
            (review,) = runner.store.reviews("pending", record.id)
            _, record = await runner.decide(
                review.id, "reject", "bob", reason="The roof was already damaged."
            )
            seen["large"] = (record, [])
        return seen

    seen = asyncio.run(go())
    pool.shutdown()
    status = {name: (record.status, nodes) for name, (record, nodes) in seen.items()}
    assert status == {
        "small": ("succeeded", []),
        "lapsed": ("succeeded", []),
        "pets": ("succeeded", []),
        "unknown": ("awaiting_review", ["no_policy"]),
        "product": ("awaiting_review", ["wrong_product"]),
        "large": ("succeeded", []),
        "corrected": ("awaiting_review", ["confirm"]),
    }
    out = {name: record.output for name, (record, _) in seen.items()}
    # 380 less AU-55120's own deductible of 150 (not a fixed 250).
    assert out["small"]["payout"] == 230 and out["small"]["decision"]["decision"] == "pay"
    for name in ("lapsed", "pets", "large"):
        assert out[name]["decision"]["decision"] == "deny", name
        assert out[name]["payout"] == 0, name
    assert [e["rule"] for e in out["pets"]["exclusions"]] == ["pets"]
    assert out["pets"]["decision"]["rationale"] == (
        "Not covered: Section 2: we do not cover damage caused by pets."
    )
    assert out["lapsed"]["decision"]["rationale"] == (
        "Not covered: policy HP-44120 is lapsed, not active."
    )
    # A rule's answer fixes every field: claim-decision is not asked on those paths.
    usage = {name: record.usage for name, (record, _) in seen.items()}
    assert "claim-decision" not in usage["pets"] and "claim-decision" not in usage["lapsed"]
    assert usage["small"]["claim-decision"]["calls"] == 1
    assert out["lapsed"]["exclusions"] == []
    messages = {m["message"].split(".")[0] for m in outbox(url)}
    assert {"Claim AU-55120: pay, payout 230", "Claim HP-44120: deny, payout 0"} <= messages
