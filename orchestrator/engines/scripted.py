"""The scripted engine: deterministic answers from a script, for tests and overhead measurement.

It is the in-package fake of the engine interface (like httpx's MockTransport): real requests in,
real results out, no model. Replies come from the first matching rule of the script; with no rule
matching, a request that carries a JSON Schema gets the simplest instance of that schema, and any
other request gets its last user message echoed back. Tokens are whitespace-separated words.

Never the default for a user's run: a model must name ``engine: scripted`` explicitly.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from orchestrator.catalog.engine_options import ScriptedOptions
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.errors import ContextLengthError


def count_tokens(text: str) -> int:
    """The scripted engine's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def example_for_schema(schema: dict[str, Any]) -> Any:
    """The simplest value that fits a JSON Schema (first enum value, minimum numbers, ...)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return example_for_schema(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_for_schema(sub) for name, sub in props.items()}
    if kind == "array":
        item = example_for_schema(schema.get("items", {"type": "string"}))
        return [item] * int(schema.get("minItems", 0))
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = low + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else low
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


class ScriptedEngine:
    """Answers from a script; see the module docstring."""

    def __init__(self, options: ScriptedOptions | None = None, context_length: int = 8192) -> None:
        self.options = options or ScriptedOptions()
        self.context_length = context_length
        self.calls = 0
        self._inflight = 0
        self.most_at_once = 0
        """The most requests this engine answered at the same time (what a batching engine
        would have batched)."""
        self._closed = False

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self._closed:
            raise RuntimeError("scripted engine is closed")
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        input_tokens = sum(count_tokens(m.content) for m in request.messages)
        if input_tokens >= self.context_length:
            raise ContextLengthError(
                f"the prompt is {input_tokens} tokens; the model's context holds "
                f"{self.context_length}. Shorten the input.",
                input_tokens,
                self.context_length,
            )
        self._inflight += 1
        self.most_at_once = max(self.most_at_once, self._inflight)
        try:
            while self.options.hold_while and os.path.exists(self.options.hold_while):
                await asyncio.sleep(0.05)
            if self.options.delay_s:
                await asyncio.sleep(self.options.delay_s)
        finally:
            self._inflight -= 1
        trigger = self.options.exit_process_on
        if trigger and any(trigger in m.content for m in request.messages if m.role == "user"):
            os._exit(70)
        self.calls += 1
        if self.options.call_log:
            line = request.tag or "-"
            if self.options.call_log_format == "json":
                users = [m.content for m in request.messages if m.role == "user"]
                line = json.dumps({"tag": line, "user": users[-1] if users else ""})
            with open(self.options.call_log, "a", encoding="utf-8") as log:
                log.write(f"{line}\n")
        text, finish = self._reply(request), "stop"
        for stop in request.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
        words = text.split()
        if len(words) > request.max_tokens:
            text, finish = " ".join(words[: request.max_tokens]), "length"
        return GenerationResult(
            text=text,
            input_tokens=input_tokens,
            output_tokens=count_tokens(text),
            finish_reason=finish,  # type: ignore[arg-type]
            model_time_s=time.perf_counter() - started,
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        """The reply word by word (each with the space after it), then the result."""
        if self._closed:
            raise RuntimeError("scripted engine is closed")
        result = await self._one(request)
        for word in re.findall(r"\s*\S+\s*", result.text):
            yield word
            await asyncio.sleep(0)
        yield result

    def _reply(self, request: GenerationRequest) -> str:
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        for rule in self.options.rules:
            if rule.tag is not None and rule.tag != request.tag:
                continue
            if rule.contains is not None and rule.contains not in last_user:
                continue
            return rule.reply
        if request.json_schema is not None:
            return json.dumps(example_for_schema(request.json_schema))
        return last_user

    def stats(self) -> dict[str, int]:
        """Calls answered, and the most answered at once."""
        return {"calls": self.calls, "most_at_once": self.most_at_once}

    async def close(self) -> None:
        self._closed = True
