"""Build small catalogs on disk for tests: real YAML files, loaded by the real loader."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

SENTIMENT_SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
    "required": ["sentiment"],
    "additionalProperties": False,
}


def unique(prefix: str) -> str:
    """A model name no other test uses (host actors are named after their model)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def scripted_model(name: str, **options: Any) -> dict[str, Any]:
    replicas = options.pop("replicas", 1)
    context_length = options.pop("context_length", 512)
    return {
        "name": name,
        "engine": "scripted",
        "weights": {"kind": "none"},
        "context_length": context_length,
        "engine_options": options,
        "hosting": {"replicas": replicas},
    }


def specialist(name: str, model: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "description": f"{name} for tests",
        "model": model,
        "instructions": "Classify the sentiment.",
        "output_schema": SENTIMENT_SCHEMA,
    }
    spec.update(fields)
    return spec


def write_catalog(
    root: Path, models: list[dict[str, Any]], specialists: list[dict[str, Any]]
) -> Path:
    """Write models/ and specialists/ YAML files under root and return root."""
    for folder, specs in (("models", models), ("specialists", specialists)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for spec in specs:
            (root / folder / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec))
    return root
