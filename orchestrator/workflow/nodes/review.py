"""A review gate: the run stops at ``interrupt()`` with what the reviewer sees and may edit; a
rejection goes to ``on_reject`` with the reason, an approval goes on with the edits.

The interrupt comes first thing: LangGraph re-runs a resumed node from its top, so nothing before
it may do work."""

from __future__ import annotations

from typing import Any

from langgraph.types import Command, interrupt

from orchestrator.workflow.nodes.base import NodeBuilder, target
from orchestrator.workflow.spec import ReviewNode
from orchestrator.workflow.templates import lookup


def build(node: ReviewNode, b: NodeBuilder) -> None:
    editable = node.editable or node.show

    def run(state: dict[str, Any]) -> Command[str]:
        decision = interrupt(
            {
                "kind": "review",
                "node": node.id,
                "title": node.title or f"Review {node.id}",
                "show": {key: lookup(state, key, None) for key in node.show},
                "editable": list(editable),
                "values": {key.split(".")[0]: state.get(key.split(".")[0]) for key in editable},
                "key_fields": {key: lookup(state, key, None) for key in node.key_fields},
                "approvals": node.approvals,
                "escalate_after_s": node.escalate_after_s,
            }
        )
        if decision["decision"] == "reject":
            return Command(
                goto=target(node.on_reject), update={"review_feedback": decision["reason"]}
            )
        update = {**(decision.get("update") or {}), "_approvals": {node.id: decision.get("by")}}
        return Command(goto=target(node.next), update=update)

    b.add(node.id, run, destinations=(target(node.next), target(node.on_reject)))
