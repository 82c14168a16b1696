"""A specialist node: one call of a specialist with the rendered input, its answer into state.
``fixed`` fields are the workflow's, not the model's; when they give every field of the answer, no
model is asked."""

from __future__ import annotations

from typing import Any

from orchestrator.specialists.calls import check_answer, with_fixed
from orchestrator.workflow.nodes.base import NodeBuilder, render_arg, target, wants_text
from orchestrator.workflow.spec import SpecialistNode
from orchestrator.workflow.state import usage_of
from orchestrator.workflow.templates import render


def build(node: SpecialistNode, b: NodeBuilder) -> None:
    spec = b.catalog.specialist(node.specialist)

    properties = spec.output_schema.get("properties", {})
    fields = set(properties)
    decided = bool(fields) and fields <= set(node.fixed)
    # A fixed number, list or true/false from state keeps its type ({amount} gives 42, not "42").
    text = {k: wants_text(properties.get(k)) for k in node.fixed}

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        fixed = {k: render_arg(v, state, text[k]) for k, v in node.fixed.items()}
        if decided:  # every field is the workflow's: nothing is left to ask
            return {node.output: check_answer(spec, fixed, f"node {node.id!r}'s fixed answer")}
        asked = with_fixed(spec, fixed)
        answer = await b.ask(asked, render(node.input, state), node.id, state, stream=node.stream)
        return {node.output: {**answer.output, **fixed}, "_usage": usage_of(answer)}

    b.add(node.id, run)
    b.graph.add_edge(node.id, target(node.next))
