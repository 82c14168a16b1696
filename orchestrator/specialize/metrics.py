"""Scoring a specialist's answers against held-out examples, by the metric it declares.

An answer that did not parse or fit the schema is ``None`` and scores 0 on every metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from orchestrator.catalog.specs import EvaluationSpec


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-6
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return bool(a == b)


def fields_right(expected: dict[str, Any], got: dict[str, Any] | None) -> dict[str, bool]:
    """For each expected field, whether the answer has it right (an answer that did not parse
    has every field wrong): what a per-field table counts, whatever the declared metric."""
    answer = got or {}
    return {k: k in answer and _same(answer[k], v) for k, v in expected.items()}


def field_f1(expected: dict[str, Any], got: dict[str, Any] | None) -> float:
    """F1 over fields: a field of the answer is right when it equals the expected value
    (strings compared without case and outer spaces, numbers as numbers)."""
    if not got or not expected:
        return 0.0
    right = sum(1 for k, v in expected.items() if k in got and _same(got[k], v))
    if right == 0:
        return 0.0
    precision, recall = right / len(got), right / len(expected)
    return 2 * precision * recall / (precision + recall)


def score(
    evaluation: EvaluationSpec, expected: dict[str, Any], got: dict[str, Any] | None
) -> float:
    """One example's score in [0, 1]."""
    if got is None:
        return 0.0
    if evaluation.metric == "exact_match":
        assert evaluation.label is not None, "the catalog requires a label for exact_match"
        return 1.0 if _same(got.get(evaluation.label), expected.get(evaluation.label)) else 0.0
    if evaluation.metric == "field_f1":
        return field_f1(expected, got)
    return 1.0  # schema_valid: it parsed and fit


def mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores) if scores else 0.0


def majority(
    evaluation: EvaluationSpec, expected: Sequence[dict[str, Any]]
) -> tuple[str, float] | None:
    """For exact_match: the most common expected label and the score of always answering it,
    the floor a classifier has to clear to have learned anything (None for other metrics)."""
    if evaluation.metric != "exact_match" or not evaluation.label or not expected:
        return None
    label = evaluation.label
    top, count = Counter(str(e.get(label)) for e in expected).most_common(1)[0]
    return top, count / len(expected)
