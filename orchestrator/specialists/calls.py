"""One specialist call: render the prompt, and check the answer against the output schema.

The engine does the generating; this module owns what goes in (instructions, few-shot examples,
the user's text, the schema to constrain decoding to) and what is accepted back (JSON that fits the
schema). It knows nothing about Ray: the pool carries the request to a host.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.engines.base import GenerationRequest, GenerationResult, Message
from orchestrator.errors import InputError, OutputSchemaError, RunError, schema_misfit, unfit_json

JSON_RULE = "Answer with one JSON object that fits this schema, and nothing else:"


@dataclass(frozen=True)
class SpecialistAnswer:
    """A checked answer from one specialist, with what it cost."""

    specialist: str
    model: str
    output: dict[str, Any]
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    latency_s: float
    """Wall time of the whole call as the caller saw it."""
    model_time_s: float
    """Time the engine spent generating."""
    queue_time_s: float
    """Time the call waited inside the host before the engine took it."""
    host: str
    """Which host replica answered."""
    attempts: int = 1
    tool_calls: tuple[dict[str, Any], ...] = field(default=())
    """Tools the specialist called before answering: name, arguments, result or error."""
    adapter: str | None = None
    """The adapter that answered (``SPECIALIST/vN`` for a registry version), None: the base."""


OnText = Callable[[str], None]
"""Where a streamed answer's text goes, piece by piece, as the engine generates it."""


def model_label(model: str, adapter: str | None) -> str:
    """``gen_ai.request.model`` for a call: the adapter's name for a fine-tuned specialist (its
    file stem, or its folder name), else the base model's name."""
    if not adapter:
        return model
    path = Path(adapter)
    if re.fullmatch(r"v\d+", path.name):  # a registry version: .../SPECIALIST/vN
        return f"{path.parent.name}/{path.name}"
    return path.stem if path.suffix == ".gguf" else path.name


def with_fixed(specialist: SpecialistSpec, values: dict[str, Any]) -> SpecialistSpec:
    """``specialist`` with its output schema narrowed so that each field in ``values`` can only
    be that value (``const``): the model is told the decided fields and writes the rest."""
    if not values:
        return specialist
    schema = dict(specialist.output_schema)
    schema["properties"] = {
        **schema.get("properties", {}),
        **{field: {"const": value} for field, value in values.items()},
    }
    return specialist.model_copy(update={"output_schema": schema})


def build_request(
    specialist: SpecialistSpec,
    text: str,
    adapter: str | None = None,
    history: Sequence[Message] = (),
) -> GenerationRequest:
    """The engine request for asking ``specialist`` about ``text`` (``history``: the turns
    after it so far, e.g. tool calls and their results)."""
    if not text.strip():
        raise InputError(
            f"specialist {specialist.name!r}: the input text is empty; give it something to work on"
        )
    schema = json.dumps(specialist.output_schema, separators=(",", ":"))
    messages = [Message("system", f"{specialist.instructions.strip()}\n\n{JSON_RULE}\n{schema}")]
    for example in specialist.examples:
        messages.append(Message("user", example.input))
        messages.append(Message("assistant", json.dumps(example.output)))
    messages.append(Message("user", text))
    messages.extend(history)
    settings = specialist.generation
    return GenerationRequest(
        messages=tuple(messages),
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        stop=settings.stop,
        seed=settings.seed,
        repetition_penalty=settings.repetition_penalty,
        json_schema=specialist.output_schema,
        adapter=adapter,
        tag=specialist.name,
    )


def check_answer(specialist: SpecialistSpec, output: dict[str, Any], what: str) -> dict[str, Any]:
    """``output`` if it fits the specialist's schema, else RunError naming ``what`` and the
    field (an answer the workflow wrote itself, e.g. a rule's decision)."""
    wrong = schema_problem(specialist, output)
    if wrong is not None:
        raise RunError(f"{what}: {wrong} ({specialist.name!r}'s output schema)")
    return output


def schema_problem(specialist: SpecialistSpec, output: Any) -> str | None:
    """What in ``output`` does not fit the specialist's schema (where, and why), or None."""
    misfit = schema_misfit(specialist.output_schema, output)
    if misfit is None:
        return None
    where, why = misfit
    return f"{where or 'the answer'} does not fit the output schema: {why}"


def parse_answer(specialist: SpecialistSpec, result: GenerationResult) -> dict[str, Any]:
    """The answer as a JSON object that fits the specialist's schema, or OutputSchemaError."""
    cut = (
        " (the answer was cut off at max_tokens; raise generation.max_tokens)"
        if result.finish_reason == "length"
        else ""
    )
    spent = (result.input_tokens, result.output_tokens)
    try:
        # strict=False: a raw newline inside a string is still the answer the model meant
        # (llama.cpp's JSON grammar lets control characters through).
        output = json.loads(result.text, strict=False)
    except json.JSONDecodeError as err:
        raise OutputSchemaError(
            f"specialist {specialist.name!r} answered with text that is not JSON: {err.msg}{cut}",
            result.text,
            *spent,
        ) from None
    except RecursionError:
        raise OutputSchemaError(
            f"specialist {specialist.name!r} answered with JSON nested too deep to read",
            result.text,
            *spent,
        ) from None
    fault = unfit_json(output, "the answer")
    if fault is not None:  # NaN, 1e999 (infinity), too deep, a number outside 64 bits
        raise OutputSchemaError(
            f"specialist {specialist.name!r}: {fault[0]} {fault[1]}", result.text, *spent
        )
    wrong = schema_problem(specialist, output)
    if wrong is not None:
        raise OutputSchemaError(
            f"specialist {specialist.name!r}: {wrong}{cut}", result.text, *spent
        )
    return cast(dict[str, Any], output)  # the schema's top level is an object
