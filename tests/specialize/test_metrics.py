"""Scoring answers by the metric a specialist declares: exact match on a label, F1 over fields,
schema-valid; an answer that did not parse scores 0; the majority label's floor."""

from __future__ import annotations

import pytest

from orchestrator.catalog.specs import EvaluationSpec
from orchestrator.specialize.metrics import field_f1, fields_right, majority, mean, score


def test_scores() -> None:
    label = EvaluationSpec(metric="exact_match", label="team")
    assert (
        score(
            label,
            {"team": "billing", "priority": "low"},
            {"team": "Billing ", "priority": "urgent"},
        )
        == 1.0
    )
    assert score(label, {"team": "billing"}, {"team": "shipping"}) == 0.0
    assert score(label, {"team": "billing"}, None) == 0.0
    expected = {
        "policy_number": "HP-1",
        "claim_type": "property",
        "incident_date": "4 March",
        "amount": 3200,
    }
    assert field_f1(expected, dict(expected)) == 1.0
    half = {**expected, "claim_type": "auto", "amount": 3100}
    assert field_f1(expected, half) == pytest.approx(0.5)
    assert field_f1(expected, {"amount": 3200.0}) == pytest.approx(2 * 1 * 0.25 / 1.25)
    assert score(EvaluationSpec(metric="schema_valid"), expected, {}) == 1.0


def test_numbers_compare_as_numbers_and_other_types_exactly() -> None:
    expected = {"amount": 1200, "paid": True, "items": ["a", "b"]}
    assert field_f1(expected, {"amount": 1200.0000001, "paid": True, "items": ["a", "b"]}) == 1.0
    assert field_f1(expected, {"amount": "1200", "paid": "true", "items": ["b", "a"]}) == 0.0
    # An extra field the example does not expect lowers precision, not recall.
    assert field_f1({"a": 1}, {"a": 1, "b": 2}) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert field_f1({}, {"a": 1}) == 0.0 and field_f1({"a": 1}, {}) == 0.0


def test_an_unparsed_answer_scores_zero_on_every_metric() -> None:
    for spec in (
        EvaluationSpec(metric="exact_match", label="team"),
        EvaluationSpec(metric="field_f1"),
        EvaluationSpec(metric="schema_valid"),
    ):
        assert score(spec, {"team": "billing"}, None) == 0.0


def test_the_majority_label_and_what_always_answering_it_scores() -> None:
    label = EvaluationSpec(metric="exact_match", label="team")
    expected = [{"team": "billing"}, {"team": "billing"}, {"team": "tech"}, {"team": "billing"}]
    assert majority(label, expected) == ("billing", 0.75)
    assert majority(label, []) is None
    assert majority(EvaluationSpec(metric="field_f1"), expected) is None
    assert mean([1.0, 0.0, 0.5]) == 0.5 and mean([]) == 0.0


def test_each_expected_field_is_right_or_wrong_whatever_the_metric() -> None:
    expected = {"team": "billing", "priority": "urgent", "amount": 12.5}
    got = {"team": " Billing ", "priority": "low", "amount": 12.5000000001, "extra": 1}
    assert fields_right(expected, got) == {"team": True, "priority": False, "amount": True}
    assert fields_right(expected, None) == dict.fromkeys(expected, False)
    assert fields_right(expected, {"team": "billing"}) == {
        "team": True,
        "priority": False,
        "amount": False,
    }
