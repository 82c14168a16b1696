"""A scripted catalog with workflows that use every node kind, for workflow tests."""

from __future__ import annotations

import json
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


CLAIM_FLOW = {
    "name": "claim",
    "description": "Extract, compute a payout, review large ones, decide.",
    "input_schema": {
        "type": "object",
        "properties": {"claim": {"type": "string", "minLength": 1}},
        "required": ["claim"],
    },
    "state": {
        "fields": CLAIM_SCHEMA,
        "payout": {"type": "number"},
        "decision": DECISION_SCHEMA,
    },
    "output": ["fields", "payout", "decision"],
    "start": "extract",
    "nodes": [
        {
            "kind": "specialist",
            "id": "extract",
            "specialist": "extractor",
            "input": "{claim}\n{review_feedback}",
            "output": "fields",
            "next": "payout",
        },
        {
            "kind": "tool",
            "id": "payout",
            "tool": "calculator",
            "args": {"expression": "max(0, {fields.amount} - 100)"},
            "output": "payout",
            "next": "size",
        },
        {
            "kind": "branch",
            "id": "size",
            "cases": [
                {"when": {"key": "fields.amount", "op": "gt", "value": 1000}, "next": "adjuster"}
            ],
            "default": "decide",
        },
        {
            "kind": "review",
            "id": "adjuster",
            "title": "Large claim: check the extracted fields",
            "show": ["fields", "payout"],
            "editable": ["fields"],
            "next": "decide",
            "on_reject": "extract",
        },
        {
            "kind": "specialist",
            "id": "decide",
            "specialist": "decider",
            "input": "Claim {fields} payout {payout}",
            "output": "decision",
            "next": "end",
        },
    ],
}

TICKETS_FLOW = {
    "name": "tickets",
    "description": "Label every issue of a ticket, each reviewed in parallel, then route.",
    "input_schema": {
        "type": "object",
        "properties": {"issues": {"type": "array", "items": {"type": "string"}}},
        "required": ["issues"],
    },
    "state": {"labels": {"type": "array"}, "route": LABEL_SCHEMA},
    "start": "label",
    "nodes": [
        {
            "kind": "map",
            "id": "label",
            "over": "issues",
            "specialist": "labeller",
            "input": "Issue {index}: {item}",
            "review": True,
            "output": "labels",
            "join": "route",
        },
        {
            "kind": "branch",
            "id": "route",
            "router": "labeller",
            "input": "{issues}",
            "route_on": "label",
            "output": "route",
            "cases": [{"equals": "billing", "next": "end"}],
            "default": "end",
        },
    ],
}

BRIEF_FLOW = {
    "name": "brief",
    "description": "Plan sub-tasks, run them, summarize.",
    "input_schema": {
        "type": "object",
        "properties": {"topic": {"type": "string"}},
        "required": ["topic"],
    },
    "state": {"findings": {"type": "array"}},
    "start": "plan",
    "nodes": [
        {
            "kind": "plan",
            "id": "plan",
            "planner": "planner",
            "input": "Plan research on {topic}",
            "specialists": ["labeller", "extractor"],
            "output": "findings",
            "join": "end",
        }
    ],
}

CHAIN_FLOW = {
    "name": "chain",
    "description": "Four specialist calls in a row (for crash and resume).",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
    "state": {
        "first": LABEL_SCHEMA,
        "fields": CLAIM_SCHEMA,
        "decision": DECISION_SCHEMA,
        "last": LABEL_SCHEMA,
    },
    "start": "a",
    "nodes": [
        {
            "kind": "specialist",
            "id": "a",
            "specialist": "labeller",
            "input": "{text}",
            "output": "first",
            "next": "b",
        },
        {
            "kind": "specialist",
            "id": "b",
            "specialist": "extractor",
            "input": "{first}",
            "output": "fields",
            "next": "c",
        },
        {
            "kind": "specialist",
            "id": "c",
            "specialist": "decider",
            "input": "{fields}",
            "output": "decision",
            "next": "d",
        },
        {
            "kind": "specialist",
            "id": "d",
            "specialist": "labeller",
            "input": "{decision}",
            "output": "last",
            "next": "end",
        },
    ],
}

MEMO_FLOW = {
    "name": "memo",
    "description": "Recall what earlier runs learned, have a reviewer approve a fact, remember it.",
    "remember_runs": True,
    "input_schema": {
        "type": "object",
        "properties": {"fact": {"type": "string"}, "question": {"type": "string"}},
        "required": ["fact", "question"],
    },
    "state": {"recalled": {"type": "array"}, "episodes": {"type": "array"}},
    "output": ["recalled", "episodes"],
    "start": "recall",
    "nodes": [
        {
            "kind": "memory",
            "id": "recall",
            "op": "read",
            "query": "{question}",
            "top_k": 2,
            "output": "recalled",
            "next": "history",
        },
        {
            "kind": "memory",
            "id": "history",
            "op": "read",
            "memory": "episodic",
            "scope": "workflow",
            "query": "{question}",
            "output": "episodes",
            "next": "gate",
        },
        {"kind": "review", "id": "gate", "show": ["fact"], "next": "remember", "on_reject": "end"},
        {"kind": "memory", "id": "remember", "op": "write", "text": "{fact}", "next": "end"},
    ],
}


def scripted_workflow_catalog(
    root: Path,
    *,
    amount: float = 2500,
    delay_s: float = 0.0,
    call_log: Path | None = None,
    plan: list[dict[str, str]] | None = None,
) -> Path:
    """Write a scripted catalog (models, specialists) and graphs/ with the three flows."""
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
    for flow in (CLAIM_FLOW, TICKETS_FLOW, BRIEF_FLOW, CHAIN_FLOW, MEMO_FLOW):
        (root / "graphs" / f"{flow['name']}.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    return root / "agents"
