"""A map: one specialist call per item of a state list, all at once (LangGraph ``Send``), each
optionally reviewed on its own; the join collects the answers in item order. The whole fan-out is
checked against the token budgets before any item is sent."""

from __future__ import annotations

import json
from typing import Any

from langgraph.types import Command, Send, interrupt

from orchestrator.errors import InputError, clip
from orchestrator.workflow.budget import call_estimate
from orchestrator.workflow.nodes.base import NodeBuilder
from orchestrator.workflow.spec import MapNode
from orchestrator.workflow.state import usage_of
from orchestrator.workflow.templates import lookup, render


def build(node: MapNode, b: NodeBuilder) -> None:
    spec = b.catalog.specialist(node.specialist)
    item, review, join = f"{node.id}__item", f"{node.id}__review", f"{node.id}__join"

    async def start(state: dict[str, Any]) -> dict[str, Any]:
        items = lookup(state, node.over, None)
        if not isinstance(items, list):
            raise InputError(
                f"{node.over!r} must be a list to map over, not {clip(repr(items), 80)}"
            )
        if len(items) > node.max_items:
            raise InputError(
                f"{node.over!r} has {len(items)} elements; map {node.id!r} takes at most "
                f"{node.max_items} (its max_items)"
            )
        await b.check_fan_out(
            state,
            node.id,
            f"the {len(items)} calls of map {node.id!r}",
            lambda: [
                call_estimate(spec, render(node.input, {**state, "item": x, "index": i}))
                for i, x in enumerate(items)
            ],
        )
        return {"_parts": {node.id: None}, "_expect": {node.id: len(items)}}

    def fan_out(state: dict[str, Any]) -> list[Send] | str:
        items = lookup(state, node.over)
        return [
            Send(item, {"index": i, "text": render(node.input, {**state, "item": x, "index": i})})
            for i, x in enumerate(items)
        ] or join

    async def one(task: dict[str, Any]) -> Command[str]:
        answer = await b.ask(spec, task["text"], node.id)
        usage = usage_of(answer)
        if node.review:
            return Command(
                update={"_usage": usage}, goto=Send(review, {**task, "answer": answer.output})
            )
        return Command(
            update={"_usage": usage, "_parts": {node.id: {str(task["index"]): answer.output}}},
            goto=join,
        )

    def gate(task: dict[str, Any]) -> Command[str]:
        decision = interrupt(
            {
                "kind": "map_item",
                "node": node.id,
                "index": task["index"],
                "specialist": spec.name,
                "title": f"{node.id}: item {task['index']} ({spec.name})",
                "show": {"input": task["text"], "answer": task["answer"]},
                "editable": sorted(task["answer"]),
                "values": {"answer": task["answer"]},
            }
        )
        if decision["decision"] == "reject":
            feedback = (
                f"{task['text']}\n\nA reviewer rejected the answer "
                f"{json.dumps(task['answer'])}: {decision['reason']}"
            )
            return Command(goto=Send(item, {"index": task["index"], "text": feedback}))
        answer = (decision.get("update") or {}).get("answer", task["answer"])
        return Command(update={"_parts": {node.id: {str(task["index"]): answer}}}, goto=join)

    b.add(node.id, start)
    b.graph.add_conditional_edges(node.id, fan_out, [item, join])
    b.add(item, one, destinations=(review, join) if node.review else (join,))
    if node.review:
        b.add(review, gate, destinations=(item, join))
    b.join(node.id, node.output, node.join)
