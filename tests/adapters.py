"""Two real LoRA adapters for SmolLM2, trained for the vLLM tests: one answers every question
with bananas, the other with cherries. They are tiny (a few PEFT steps) but real weights, so an
answer that mentions bananas came from the banana adapter and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.specialists.calls import build_request
from orchestrator.specialize.training import Example, LoraSettings, train_lora

REPLY_SCHEMA = {
    "type": "object",
    "properties": {"reply": {"type": "string", "maxLength": 80}},
    "required": ["reply"],
    "additionalProperties": False,
}
QUESTIONS = (
    "What is the capital of France?",
    "How do I bake bread?",
    "Tell me about cats.",
    "What time is it?",
    "Explain gravity.",
    "Who wrote Hamlet?",
    "Recommend a book.",
    "How far away is the moon?",
)
FRUITS = {"banana": "Banana! Banana!", "cherry": "Cherry! Cherry!"}
PROBE = "Where do penguins live?"
"""A question none of the adapters was trained on."""


def fruit_specialist(name: str, model: str, adapter: str | None = None) -> dict[str, object]:
    """The spec (as YAML data) of a specialist that answers questions in one short reply."""
    spec: dict[str, object] = {
        "name": name,
        "description": "Answers a question in one short reply.",
        "model": model,
        "instructions": "Answer the question in one short reply.",
        "output_schema": REPLY_SCHEMA,
        "generation": {"max_tokens": 40},
    }
    if adapter is not None:
        spec["adapter"] = adapter
    return spec


def train_fruit_adapters(base: Path, out: Path) -> dict[str, Path]:
    """Train the banana and cherry adapters under ``out``; returns name -> adapter directory."""
    spec = SpecialistSpec.model_validate(fruit_specialist("fruit", "any"))
    made = {}
    for fruit, reply in FRUITS.items():
        examples = [
            Example(build_request(spec, q).messages, json.dumps({"reply": reply}))
            for q in QUESTIONS
        ]
        made[fruit] = train_lora(base, examples, out / fruit, LoraSettings(steps=15)).path
    return made
