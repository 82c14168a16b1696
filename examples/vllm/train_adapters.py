"""Train the LoRA adapters of this example's specialists (ticket-router, sentiment-tagger).

Each adapter is a few PEFT steps on SmolLM2 over the twelve examples in data/NAME.jsonl, rendered
exactly as the specialist's calls are at serving time. That is enough to be a real adapter that
changes the model's answers; it is not a well-trained specialist (`cadre specialize` is).

    .venv-vllm/bin/cadre models prepare smollm2-135m
    .venv-vllm/bin/python examples/vllm/train_adapters.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.catalog.weights import prepared_path
from orchestrator.specialists.calls import build_request
from orchestrator.specialize.training import Example, LoraSettings, train_lora

HERE = Path(__file__).resolve().parent
SPECIALISTS = ("ticket-router", "sentiment-tagger")


def main() -> int:
    base = prepared_path("smollm2-135m")
    if base is None:
        print("SmolLM2 is not prepared; run: .venv-vllm/bin/cadre models prepare smollm2-135m")
        return 2
    for name in SPECIALISTS:
        source = HERE / "agents" / "specialists" / f"{name}.yaml"
        # Read the spec alone: the catalog as a whole is incomplete until the adapter exists.
        spec = SpecialistSpec.model_validate(yaml.safe_load(source.read_text()))
        lines = (HERE / "data" / f"{name}.jsonl").read_text().splitlines()
        examples = []
        for line in lines:
            row = json.loads(line)
            request = build_request(spec, row["input"])
            examples.append(Example(request.messages, json.dumps(row["output"])))
        assert spec.adapter is not None
        out = (source.parent / spec.adapter).resolve()
        trained = train_lora(base, examples, out, LoraSettings(steps=15))
        print(
            f"{name}: {len(examples)} examples, {len(trained.losses)} steps, loss "
            f"{trained.losses[0]:.2f} -> {trained.losses[-1]:.2f}, {trained.seconds:.0f} s, "
            f"adapter at {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
