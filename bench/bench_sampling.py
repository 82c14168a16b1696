"""Benchmark: constrained answers on llama.cpp with the grammar asked about the chosen token first.

llama-cpp-python matches the JSON-Schema grammar against the whole vocabulary at every token; the
llama.cpp engine (``orchestrator/engines/llamacpp_grammar.py``) samples first and asks the grammar
about the one token chosen, matching the whole vocabulary only when it refuses that token.

Two shipped specialists (a short answer and a long one) answer the first ``--examples`` inputs of
their out-of-distribution eval sets, as declared (with their few-shot examples), on SmolLM2,
greedily, one request at a time: once through the engine as it serves, and once through the same
engine on llama-cpp-python's plain chain (the baseline), alternating per input in the same run.
Printed per specialist: milliseconds per answer both ways and their ratio, how many answers are
identical (all should be), and how many tokens the grammar allowed at once or refused.

Run: `make bench` (or `python bench/bench_sampling.py --examples 12`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from orchestrator.engines.base import GenerationRequest
from orchestrator.engines.llamacpp import LlamaCppEngine
from orchestrator.engines.llamacpp_grammar import GrammarLastSampler
from orchestrator.specialists.calls import build_request
from orchestrator.workflow.catalog import load_catalog

ROOT = Path(__file__).resolve().parent.parent
SPECIALISTS = ("ticket-triage", "claim-extractor")


class PlainChainEngine(LlamaCppEngine):
    """The engine on llama-cpp-python's own ``Llama``: the grammar inside the sampler chain."""

    def _load_base(self) -> Any:
        return Llama(
            model_path=str(self.model_path),
            n_ctx=self.context_length,
            n_batch=self.options.n_batch,
            verbose=False,
        )


async def answer(engine: LlamaCppEngine, request: GenerationRequest) -> tuple[str, float]:
    started = time.perf_counter()
    result = (await engine.generate([request]))[0]
    return result.text, time.perf_counter() - started


async def compare(name: str, examples: int) -> None:
    catalog = load_catalog(ROOT / "agents")
    spec = catalog.specialist(name)
    model = catalog.model(spec.model)
    weights = catalog.weights_path(model)
    assert weights is not None, f"{model.name} has no weights file"
    path = ROOT / "examples" / "specialize" / f"{name}.ood.jsonl"
    inputs = [json.loads(line)["input"] for line in path.read_text().splitlines() if line.strip()]
    requests = [build_request(spec, text) for text in inputs[:examples]]
    ours = LlamaCppEngine(weights, model.context_length)
    plain = PlainChainEngine(weights, model.context_length)
    await answer(ours, requests[0])  # warm-up: each engine's first prompt fills its cache
    await answer(plain, requests[0])
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    same = checked = refused = 0
    for request in requests:
        text, seconds = await answer(ours, request)
        times["ours"].append(seconds)
        sampler = ours._base._sampler
        if isinstance(sampler, GrammarLastSampler):
            checked, refused = checked + sampler.checked, refused + sampler.refused
        expected, seconds = await answer(plain, request)
        times["plain"].append(seconds)
        same += text == expected
    await ours.close()
    await plain.close()
    ms = {way: 1000 * sum(t) / len(t) for way, t in times.items()}
    print(f"{name}: {len(requests)} answers, greedy, one at a time ({model.name})")
    print(
        f"  grammar asked first: {ms['ours']:.0f} ms per answer   "
        f"baseline, the grammar in the chain: {ms['plain']:.0f} ms   "
        f"ratio x{ms['ours'] / ms['plain']:.2f}"
    )
    print(
        f"  identical answers: {same}/{len(requests)}; tokens the grammar allowed at once: "
        f"{checked}, refused (the whole vocabulary matched): {refused}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=12)
    args = parser.parse_args()
    for name in SPECIALISTS:
        asyncio.run(compare(name, args.examples))


if __name__ == "__main__":
    main()
