"""A specialist that may call tools: ask, run the tool it asks for, give it the result, repeat.

The model's answer is constrained (by JSON Schema) to either a call of one of its allowed tools,
``{"tool": NAME, "args": {...}}`` with that tool's argument schema, or its final answer. After
``tool_steps`` calls only the final answer's schema is offered. A tool's failure goes back to the
model as ``{"error": ...}``; it is the model's to deal with, not a crash.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from orchestrator import telemetry
from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.engines.base import Message
from orchestrator.errors import CadreError, OutputSchemaError
from orchestrator.specialists.asking import Asker
from orchestrator.specialists.calls import SpecialistAnswer
from orchestrator.telemetry import gen_ai
from orchestrator.tools import ToolContext, registry
from orchestrator.tools.runner import call_tool

RESULT_CHARS = 2000


def call_schema(specialist: SpecialistSpec) -> dict[str, Any]:
    """Either a call of one of the specialist's tools or its final answer."""
    tools = registry()
    calls = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": name},
                "args": _plain(tools[name].args.model_json_schema()),
            },
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
        for name in specialist.tools
    ]
    return {"type": "object", "anyOf": [*calls, specialist.output_schema]}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's argument schema without the titles that only make the prompt longer."""
    schema = {k: v for k, v in schema.items() if k not in ("title", "description")}
    if "properties" in schema:
        schema["properties"] = {
            name: {k: v for k, v in prop.items() if k != "title"}
            for name, prop in schema["properties"].items()
        }
    return schema


def tool_instructions(specialist: SpecialistSpec) -> str:
    tools = registry()
    lines = [f"- {name}: {tools[name].description}" for name in specialist.tools]
    return (
        f"{specialist.instructions.strip()}\n\nYou may call a tool first by answering "
        '{"tool": NAME, "args": {...}}; its result comes back to you. Tools:\n'
        + "\n".join(lines)
        + "\nWhen you know the answer, give the final answer instead."
    )


async def ask_with_tools(
    asker: Asker, specialist: SpecialistSpec, text: str, context: ToolContext
) -> SpecialistAnswer:
    """Ask a specialist that may call tools, bounded by its ``tool_steps``."""
    tools = registry()
    history: list[Message] = []
    calls: list[dict[str, Any]] = []
    totals = {"input_tokens": 0, "output_tokens": 0, "model_time_s": 0.0, "queue_time_s": 0.0}
    for step in range(specialist.tool_steps + 1):
        last = step == specialist.tool_steps
        offered = specialist.model_copy(
            update={
                "instructions": tool_instructions(specialist),
                "output_schema": specialist.output_schema if last else call_schema(specialist),
            }
        )
        try:
            answer = await asker.ask_spec(offered, text, tuple(history))
        except OutputSchemaError as err:
            # The earlier steps' tokens were spent too.
            err.input_tokens += int(totals["input_tokens"])
            err.output_tokens += int(totals["output_tokens"])
            if not last or not calls:
                raise
            raise OutputSchemaError(
                f"specialist {specialist.name!r} gave no final answer that fits its schema "
                f"after {len(calls)} tool calls (limit {specialist.tool_steps}): {err.message}",
                err.raw,
                err.input_tokens,
                err.output_tokens,
            ) from None
        for key in totals:
            totals[key] += getattr(answer, key)
        name = str(answer.output.get("tool"))
        is_call = name in specialist.tools and set(answer.output) == {"tool", "args"}
        if last or not is_call:
            return _final(answer, totals, calls)
        attributes = {gen_ai.OPERATION_NAME: gen_ai.EXECUTE_TOOL, gen_ai.TOOL_NAME: name}
        with telemetry.span(f"execute_tool {name}", attributes):
            try:
                result: Any = await call_tool(tools[name], answer.output["args"], context)
            except CadreError as err:
                result = {"error": err.message}
        calls.append({"tool": name, "args": answer.output["args"], "result": result})
        history += [
            Message("assistant", json.dumps(answer.output)),
            Message("user", f"Result of {name}: {json.dumps(result, default=str)[:RESULT_CHARS]}"),
        ]
    raise AssertionError("the last step always returns")


def _final(
    answer: SpecialistAnswer, totals: dict[str, Any], calls: list[dict[str, Any]]
) -> SpecialistAnswer:
    """The final answer, with the whole exchange's tokens and times and its tool calls. (It fits
    the output schema: the pool checked it against the schema offered, whose only non-call
    branch is the output schema.)"""
    return dataclasses.replace(answer, tool_calls=tuple(calls), **totals)
