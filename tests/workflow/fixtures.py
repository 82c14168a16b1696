"""A scripted catalog with workflows that use every node kind, for workflow tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.catalogs import scripted_model, unique, write_catalog

CLAIM_SCHEMA = {
    "type": "object",
    "properties": {
        "policy_number": {"type": "string"},
        "amount": {"type": "number", "minimum": 0},
    },
    "required": ["policy_number", "amount"],
}
DECISION_SCHEMA = {
    "type": "object",
    "properties": {"decision": {"type": "string", "enum": ["pay", "deny"]}},
    "required": ["decision"],
}
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["billing", "technical"]}},
    "required": ["label"],
}
PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "tasks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"specialist": {"type": "string"}, "input": {"type": "string"}},
                "required": ["specialist", "input"],
            },
        }
    },
    "required": ["tasks"],
}


def _spec(name: str, model: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} (scripted)",
        "model": model,
        "instructions": f"Do the {name} job.",
        "output_schema": schema,
    }


GRAPHS = Path(__file__).parent / "graphs"
"""The test workflows, written as a user writes them: claim (every kind of step but map and plan,
a review that can reject), tickets (a map with per-item review), brief (a plan), chain (four
specialist steps) and memo (memory read and write around a review)."""


def load_flow(name: str) -> dict[str, Any]:
    """A fresh copy of one test workflow, to change in a test."""
    loaded: dict[str, Any] = yaml.safe_load((GRAPHS / f"{name}.yaml").read_text())
    return loaded


def scripted_workflow_catalog(
    root: Path,
    *,
    amount: float = 2500,
    delay_s: float = 0.0,
    call_log: Path | None = None,
    plan: list[dict[str, str]] | None = None,
) -> Path:
    """Write a scripted catalog (models, specialists) and graphs/ with the test workflows."""
    model = unique("wf")
    plan = plan or [
        {"specialist": "labeller", "input": "label the topic"},
        {"specialist": "extractor", "input": "extract from the topic"},
    ]
    rules = [
        {
            "tag": "extractor",
            "contains": "rework",
            "reply": json.dumps({"policy_number": "P-2", "amount": 500}),
        },
        {"tag": "extractor", "reply": json.dumps({"policy_number": "P-1", "amount": amount})},
        {"tag": "decider", "reply": json.dumps({"decision": "pay"})},
        {"tag": "labeller", "contains": "printer", "reply": json.dumps({"label": "technical"})},
        {"tag": "labeller", "reply": json.dumps({"label": "billing"})},
        {"tag": "planner", "reply": json.dumps({"tasks": plan})},
    ]
    options: dict[str, Any] = {"rules": rules, "delay_s": delay_s}
    if call_log is not None:
        options["call_log"] = str(call_log)
    write_catalog(
        root / "agents",
        [scripted_model(model, context_length=4096, **options)],
        [
            _spec("extractor", model, CLAIM_SCHEMA),
            _spec("decider", model, DECISION_SCHEMA),
            _spec("labeller", model, LABEL_SCHEMA),
            _spec("planner", model, PLAN_SCHEMA),
        ],
    )
    (root / "graphs").mkdir(exist_ok=True)
    for graph in GRAPHS.glob("*.yaml"):
        shutil.copyfile(graph, root / "graphs" / graph.name)
    return root / "agents"
