"""`cadre eval`: the same held-out examples through the generalist baseline and every adapter.

Conditions, all on one engine of the specialist's base model (the engine it serves on):

- ``base``: the base model with the specialist's instructions only (no examples, no retrieval):
  what prompt engineering alone gets;
- ``base + retrieval + few-shot``: the specialist as declared, as it serves without an adapter:
  each input with its corpus's passages appended, and its few-shot examples (named for what the
  specialist has; absent when it has neither);
- ``vN``: each adapter version, prompted as it was trained and as it serves (the specialist as
  declared, with retrieval if it has a corpus).

Every answer is constrained to the schema, parsed and scored by the specialist's declared metric;
tokens and engine time are kept per example. The scores go into each version's registry record
(and the base's score beside them), which is what `cadre specialists promote` compares.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.catalog.specs import ModelSpec, SpecialistSpec
from orchestrator.engines.base import GenerationRequest
from orchestrator.errors import InputError, OutputSchemaError
from orchestrator.specialists.calls import build_request, parse_answer
from orchestrator.specialize.data import Labeled, as_served
from orchestrator.specialize.metrics import fields_right, majority, mean, score


@dataclass
class Condition:
    """One row of the table: what was asked, and how it did."""

    name: str
    adapter: str | None
    spec: SpecialistSpec
    retrieval: bool = False
    """Whether each input gets its corpus passages appended."""
    scores: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    input_tokens: list[int] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    """Wall time of the whole condition (its calls batched together)."""
    answers: list[dict[str, Any] | None] = field(default_factory=list)
    right: dict[str, list[bool]] = field(default_factory=dict)
    """Per expected field, whether each answer had it right (every field, scored or not)."""

    def fields(self) -> dict[str, tuple[int, int]]:
        """Per expected field: (answers with it right, examples that expect it)."""
        return {k: (sum(hits), len(hits)) for k, hits in self.right.items()}

    def summary(self) -> dict[str, Any]:
        return {
            "condition": self.name,
            "adapter": self.adapter,
            "n": len(self.scores),
            "score": mean(self.scores),
            "schema_valid": mean([1.0 if v else 0.0 for v in self.valid]),
            "input_tokens": mean([float(t) for t in self.input_tokens]),
            "output_tokens": mean([float(t) for t in self.output_tokens]),
            "seconds": self.wall_s / max(1, len(self.scores)),
            "fields": {k: {"right": r, "of": n} for k, (r, n) in self.fields().items()},
        }


def conditions(
    spec: SpecialistSpec, versions: Sequence[tuple[str, str]], shipped: str | None = None
) -> list[Condition]:
    """Base; the base as declared (retrieval and few-shot, if the spec has either); the adapter
    the specialist ships with (``shipped``, its path), if any; then each (name, adapter path)."""
    plain = spec.model_copy(update={"examples": (), "corpus": None})
    made = [Condition("base", None, plain)]
    retrieval = bool(spec.corpus)
    extras = ["retrieval"] * retrieval + ["few-shot"] * bool(spec.examples)
    if extras:
        made.append(Condition(" + ".join(["base", *extras]), None, spec, retrieval))
    if shipped is not None:
        made.append(Condition("shipped adapter", shipped, spec, retrieval))
    made += [Condition(name, path, spec, retrieval) for name, path in versions]
    return made


async def run(
    engine: Any,
    spec: SpecialistSpec,
    examples: Sequence[Labeled],
    rows: list[Condition],
    retrieved: Sequence[str] = (),
) -> None:
    """Every condition over every example; each condition's calls go to the engine together.
    ``retrieved``: the inputs with their passages, for the conditions that retrieve."""
    for row in rows:
        inputs = retrieved if row.retrieval else [e.input for e in examples]
        requests: list[GenerationRequest] = [
            build_request(row.spec, text, row.adapter) for text in inputs
        ]
        started = time.perf_counter()
        results = await engine.generate(requests)
        row.wall_s = time.perf_counter() - started
        for example, result in zip(examples, results, strict=True):
            try:
                answer: dict[str, Any] | None = parse_answer(row.spec, result)
            except OutputSchemaError:
                answer = None
            row.answers.append(answer)
            row.valid.append(answer is not None)
            row.scores.append(score(spec.evaluation, example.output, answer))
            for key, hit in fields_right(example.output, answer).items():
                row.right.setdefault(key, []).append(hit)
            row.input_tokens.append(result.input_tokens)
            row.output_tokens.append(result.output_tokens)


def evaluate(
    spec: SpecialistSpec,
    model: ModelSpec,
    weights: Path,
    examples: Sequence[Labeled],
    versions: Sequence[tuple[str, str]],
    corpora: Path,
    shipped: str | None = None,
) -> list[Condition]:
    """Score every condition on one engine of the specialist's model: llama.cpp on its GGUF
    file (adapters converted and chosen per request, as it serves), or vLLM on the HF-format
    directory (eager, in this CPU's fast dtype). ``corpora``: the catalog's corpora folder,
    for a specialist that retrieves."""
    rows = conditions(spec, versions, shipped)
    retrieved = as_served(spec, [e.input for e in examples], corpora)

    async def go() -> None:
        engine = open_engine(model, weights, adapters=len(versions) + (shipped is not None))
        try:
            await run(engine, spec, examples, rows, retrieved)
        finally:
            await engine.close()

    asyncio.run(go())
    return rows


def open_engine(model: ModelSpec, weights: Path, adapters: int) -> Any:
    """The engine eval scores on: the model's own, with room for every adapter at once."""
    from orchestrator.engines import create_engine

    keep = {"max_adapters": max(1, adapters)}
    if model.engine == "llamacpp":
        served = {**model.engine_options, **keep}
        return create_engine(model.model_copy(update={"engine_options": served}), weights)
    if model.engine != "vllm":
        raise InputError(
            f"model {model.name!r} runs on the {model.engine} engine, which has no weights to "
            "score; eval needs a llamacpp or vllm model"
        )
    from orchestrator.catalog.engine_options import VllmOptions
    from orchestrator.engines.vllm import VllmEngine, cpu_dtype

    options = VllmOptions(dtype=cpu_dtype(), enforce_eager=True, cpu_kvcache_gb=2, **keep)
    return VllmEngine(weights, model.context_length, options)


def report(
    spec: SpecialistSpec,
    rows: Sequence[Condition],
    expected: Sequence[dict[str, Any]],
    data: Path,
    data_hash: str,
    out: Path,
) -> Path:
    """Write the results (JSON) and a bar chart (PNG, with the always-the-most-common-label
    line for a classifier) under ``out``; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    summaries = [r.summary() for r in rows]
    floor = majority(spec.evaluation, expected)
    (out / f"eval-{stamp}.json").write_text(
        json.dumps(
            {
                "specialist": spec.name,
                "metric": spec.evaluation.model_dump(),
                "data": str(data),
                "data_hash": data_hash,
                "at": time.time(),
                "conditions": summaries,
                "majority_label": {"label": floor[0], "score": floor[1]} if floor else None,
                "answers": {r.name: r.answers for r in rows},
            },
            indent=2,
        )
    )
    figure, axes = plt.subplots(figsize=(1.6 + 1.3 * len(rows), 3.6))
    names = [s["condition"].replace(" + ", "\n+ ") for s in summaries]  # long names wrap
    values = [s["score"] for s in summaries]
    colors = ["#1f6feb" if r.adapter else "#9aa4ae" for r in rows]  # adapters blue, baselines grey
    bars = axes.bar(names, values, color=colors)
    for bar, value in zip(bars, values, strict=True):
        axes.annotate(
            f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom"
        )
    if floor:
        axes.axhline(floor[1], color="#cf222e", linestyle="--", linewidth=1)
        axes.annotate(
            f"always {floor[0]!r}", (-0.45, floor[1]), va="bottom", fontsize=8, color="#cf222e"
        )
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(
        spec.evaluation.metric + (f" ({spec.evaluation.label})" if spec.evaluation.label else "")
    )
    axes.set_title(f"{spec.name}: {len(rows[0].scores)} held-out examples", fontsize=10)
    figure.tight_layout()
    plot = out / f"eval-{stamp}.png"
    figure.savefig(plot, dpi=110)
    plt.close(figure)
    return plot
