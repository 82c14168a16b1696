"""`cadre eval`'s conditions: the bare base, the base as declared (retrieval and few-shot), and
each adapter version as it serves. A scripted engine stands in for vLLM so the test can see
exactly what each condition asked; the retrieval is real (the shipped policy corpus, MiniLM)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.catalog.engine_options import ScriptedOptions, ScriptRule
from orchestrator.catalog.specs import EvaluationSpec
from orchestrator.cli.specialize import field_table
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.engines.scripted import ScriptedEngine
from orchestrator.specialize.data import Labeled, as_served
from orchestrator.specialize.evaluate import conditions, run
from orchestrator.specialize.metrics import majority
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT

CATALOG = load_catalog(ROOT / "agents")
DENY = json.dumps({"decision": "deny", "rationale": "Not covered [1]."})


class Recording(ScriptedEngine):
    """A scripted engine that keeps every request it was given, per batch."""

    def __init__(self, options: ScriptedOptions) -> None:
        super().__init__(options)
        self.batches: list[list[GenerationRequest]] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append(list(requests))
        return await super().generate(requests)


def test_retrieval_and_few_shot_make_one_condition_and_serve_every_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADRE_DATABASE_URL", f"sqlite:///{tmp_path / 'corpus.db'}")
    spec = CATALOG.specialist("claim-decision").model_copy(
        update={"evaluation": EvaluationSpec(metric="exact_match", label="decision")}
    )
    assert spec.corpus == "home-policy" and spec.examples
    # Only the policy wording says that mould is never covered: a decider that was given the
    # passages denies; one that was not answers the schema's first choice, pay.
    examples = [
        Labeled("Fields: black mould behind the bathroom tiles, 900 euros.", {"decision": "deny",
                "rationale": "x"}, 1),
        Labeled("Fields: mould on the bedroom ceiling after years of damp.", {"decision": "deny",
                "rationale": "x"}, 2),
    ]  # fmt: skip
    rows = conditions(spec, [("v1", "/adapters/claim-decision/v1")])
    assert [(r.name, r.adapter, r.retrieval) for r in rows] == [
        ("base", None, False),
        ("base + retrieval + few-shot", None, True),
        ("v1", "/adapters/claim-decision/v1", True),
    ]
    retrieved = as_served(spec, [e.input for e in examples], CATALOG.root / "corpora")
    for text, example in zip(retrieved, examples, strict=True):
        assert text.startswith(example.input) and "wear and tear" in text

    engine = Recording(
        ScriptedOptions(rules=(ScriptRule(tag=spec.name, contains="mould; damage", reply=DENY),))
    )
    asyncio.run(run(engine, spec, examples, rows, retrieved))

    base, declared, v1 = engine.batches
    assert [m.role for m in base[0].messages] == ["system", "user"]  # no few-shot, no passages
    assert base[0].messages[-1].content == examples[0].input
    assert [m.role for m in declared[0].messages] == ["system", "user", "assistant", "user"]
    assert "wear and tear" in declared[0].messages[-1].content
    assert {r.adapter for r in v1} == {"/adapters/claim-decision/v1"}
    assert [m.content for m in v1[1].messages] == [m.content for m in declared[1].messages]
    assert [r.scores for r in rows] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert rows[1].input_tokens[0] > rows[0].input_tokens[0]
    # Every expected field is counted, not only the one the metric scores.
    assert rows[1].fields() == {"decision": (2, 2), "rationale": (0, 2)}
    assert rows[0].fields()["decision"] == (0, 2)
    assert rows[1].summary()["fields"]["decision"] == {"right": 2, "of": 2}
    console = Console(width=200, record=True)
    console.print(field_table(spec, rows))
    printed = console.export_text()
    assert "the metric scores decision only" in printed and "decision (scored)" in printed
    assert "base + retrieval + few-shot" in printed and "2/2" in printed and "0/2" in printed


def test_the_majority_label_is_the_floor_a_classifier_must_clear() -> None:
    evaluation = EvaluationSpec(metric="exact_match", label="team")
    expected = [{"team": "billing"}] * 3 + [{"team": "shipping"}]
    assert majority(evaluation, expected) == ("billing", 0.75)
    assert majority(EvaluationSpec(metric="field_f1"), expected) is None


def test_a_specialist_without_a_corpus_is_asked_its_inputs_unchanged() -> None:
    spec = CATALOG.specialist("ticket-triage")
    assert not spec.corpus
    names = [r.name for r in conditions(spec, [])]
    assert names == (["base", "base + few-shot"] if spec.examples else ["base"])
    # Its shipped adapter is scored after the prompt-only rows and before the registry's.
    shipped = CATALOG.declared_adapter(spec)
    rows = conditions(spec, [("v1", "/a/v1")], shipped)
    assert [(r.name, r.adapter) for r in rows][-2:] == [
        ("shipped adapter", shipped),
        ("v1", "/a/v1"),
    ]
    inputs = ["The app crashes on start."]
    assert as_served(spec, inputs, CATALOG.root / "corpora") == inputs
