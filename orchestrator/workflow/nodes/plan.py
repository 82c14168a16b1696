"""A plan: a planner specialist splits the input into tasks for the specialists the node
allows (its answer schema is narrowed to them), the tasks run at once, and the join collects the
answers in order."""

from __future__ import annotations

import json
from typing import Any

from langgraph.types import Command, Send

from orchestrator.errors import CadreError, InputError
from orchestrator.workflow.budget import call_estimate
from orchestrator.workflow.nodes.base import NodeBuilder
from orchestrator.workflow.spec import PlanNode
from orchestrator.workflow.state import usage_of
from orchestrator.workflow.templates import render


def build(node: PlanNode, b: NodeBuilder) -> None:
    planner = b.catalog.specialist(node.planner)
    schema = json.loads(json.dumps(planner.output_schema))
    tasks_schema = schema["properties"]["tasks"]
    tasks_schema["maxItems"] = node.max_tasks
    items = tasks_schema.setdefault("items", {})
    task_props = items.setdefault("properties", {})
    task_props["specialist"] = {"type": "string", "enum": list(node.specialists)}
    # Every task needs its input, whatever the planner's own schema says: held by decoding.
    task_props["input"] = {**task_props.get("input", {}), "type": "string", "minLength": 1}
    items["required"] = sorted({*items.get("required", []), "specialist", "input"})
    narrowed = planner.model_copy(update={"output_schema": schema})
    task, join = f"{node.id}__task", f"{node.id}__join"

    async def plan(state: dict[str, Any]) -> dict[str, Any]:
        answer = await b.ask(narrowed, render(node.input, state), node.id, state)
        steps = answer.output.get("tasks", [])
        try:
            # The narrowed schema already held every task to the allowed specialists and an
            # input; an input of spaces only still gets here.
            for i, step in enumerate(steps):
                if not str(step.get("input", "")).strip():
                    raise InputError(f"the plan's task {i} has no input")
            await b.check_fan_out(
                state,
                node.id,
                f"the {len(steps)} tasks of plan {node.id!r}",
                lambda: [
                    call_estimate(b.catalog.specialist(s["specialist"]), s["input"]) for s in steps
                ],
            )
        except CadreError as err:  # the failed run still used the planner's tokens
            err.cadre_usage = usage_of(answer)  # type: ignore[attr-defined]
            raise
        return {
            "_plans": {node.id: steps},
            "_parts": {node.id: None},
            "_expect": {node.id: len(steps)},
            "_usage": usage_of(answer),
        }

    def fan_out(state: dict[str, Any]) -> list[Send] | str:
        steps = state.get("_plans", {}).get(node.id, [])
        return [Send(task, {"index": i, **step}) for i, step in enumerate(steps)] or join

    async def run_task(step: dict[str, Any]) -> Command[str]:
        spec = b.catalog.specialist(step["specialist"])
        answer = await b.ask(spec, step["input"], node.id)
        result = {"specialist": spec.name, "task": step["input"], "answer": answer.output}
        return Command(
            update={
                "_usage": usage_of(answer),
                "_parts": {node.id: {str(step["index"]): result}},
            },
            goto=join,
        )

    b.add(node.id, plan)
    b.graph.add_conditional_edges(node.id, fan_out, [task, join])
    b.add(task, run_task, destinations=(join,))
    b.join(node.id, node.output, node.join)
