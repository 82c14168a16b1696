"""A tool node: one tool call with rendered arguments, inside an ``execute_tool`` span. A tool's
failure goes into state (``tool_error``) and to ``on_error`` when the node names one: it is the
workflow's to handle, not a crash."""

from __future__ import annotations

import time
from typing import Any

import jsonschema
from langgraph.types import Command

from orchestrator import telemetry
from orchestrator.errors import CadreError, schema_misfit, unfit_json
from orchestrator.telemetry import gen_ai
from orchestrator.tools import registry
from orchestrator.tools.runner import call_tool
from orchestrator.workflow.nodes.base import NodeBuilder, render_arg, target, wants_text
from orchestrator.workflow.spec import ToolNode


def build(node: ToolNode, b: NodeBuilder) -> None:
    tool = registry()[node.tool]
    # An argument that is not text (sql_query's params) takes a value from state as it is.
    declared = tool.args.model_json_schema().get("properties", {})
    text = {name: wants_text(declared.get(name)) for name in node.args}

    declared_as = b.spec.state_schemas().get(node.output) or {}
    checker = jsonschema.Draft202012Validator(declared_as) if declared_as else None

    def unfit_for_key(result: Any) -> str | None:
        """Why a result cannot go into the output key as the workflow declares it (a
        calculator's 1.5 for an integer key), or None."""
        misfit = None if checker is None else schema_misfit(checker, result, root=node.output)
        if misfit is None:
            return None
        return f"its result does not fit state key {misfit[0]}: {misfit[1]}"

    async def run(state: dict[str, Any]) -> Command[str]:
        args = {name: render_arg(value, state, text[name]) for name, value in node.args.items()}
        context = b.tool_context(node.id)
        attributes = {
            **b.run_attributes(node.id),
            gen_ai.OPERATION_NAME: gen_ai.EXECUTE_TOOL,
            gen_ai.TOOL_NAME: tool.name,
            gen_ai.TOOL_DESCRIPTION: tool.description,
        }
        started = time.perf_counter()
        error: dict[str, Any] | None = None
        result: Any = None
        await b.guard()  # outside the try: a driver that must stop is no tool error
        try:
            with telemetry.span(f"execute_tool {tool.name}", attributes):
                result = await call_tool(tool, args, context, node.timeout_s)
        except CadreError as err:
            # A tool's failure is the workflow's to handle: into state, not a crash.
            error = {"node": node.id, "tool": tool.name, "error": err.message}
        fault = unfit_json(result, "its result")
        if fault is not None:  # e.g. the calculator's 2 ** 64: state cannot hold it
            error = {"node": node.id, "tool": tool.name, "error": ": ".join(fault)}
            result = None
        elif error is None and (misfit := unfit_for_key(result)) is not None:
            error = {"node": node.id, "tool": tool.name, "error": misfit}
            result = None
        timing = {
            tool.name: {
                "calls": 1,
                "errors": int(error is not None),
                "time_s": time.perf_counter() - started,
            }
        }
        update = {node.output: result, "tool_error": error, "_tools": timing}
        then = node.on_error if error and node.on_error else node.next
        return Command(goto=target(then), update=update)

    ways = {target(node.next)} | ({target(node.on_error)} if node.on_error else set())
    b.add(node.id, run, destinations=tuple(sorted(ways)))
