"""Templates over state: placeholders, dotted lookup into dicts and lists, and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.errors import CatalogError
from orchestrator.workflow.catalog import load_catalog
from orchestrator.workflow.templates import lookup, malformed, placeholders, render
from tests.workflow.fixtures import load_flow, scripted_workflow_catalog

STATE = {
    "claim": "a flood",
    "fields": {"amount": 4800, "items": ["roof", "door"], "note": None},
    "flags": [True, {"deep": "x"}],
}


def test_placeholders_are_the_dotted_paths_in_order_without_literal_braces() -> None:
    text = "{claim} {{not}} {fields.amount} {flags.1.deep} {fields.items.0}"
    assert placeholders(text) == ["claim", "fields.amount", "flags.1.deep", "fields.items.0"]
    assert placeholders("{ claim } {1bad} {a-b} {}") == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("claim", "a flood"),
        ("fields.amount", 4800),
        ("fields.items.1", "door"),
        ("flags.1.deep", "x"),
        ("fields.note", None),
    ],
)
def test_lookup_walks_dicts_and_list_indexes(path: str, value: object) -> None:
    assert lookup(STATE, path) == value


@pytest.mark.parametrize(
    "path", ["nope", "fields.missing", "fields.items.2", "fields.items.x", "claim.length"]
)
def test_a_missing_path_is_a_key_error_or_the_default(path: str) -> None:
    with pytest.raises(KeyError, match=path.replace(".", r"\.")):
        lookup(STATE, path)
    assert lookup(STATE, path, "fallback") == "fallback"


def test_render_inserts_strings_as_they_are_and_other_values_as_json() -> None:
    text = "Claim: {claim}; amount {fields.amount}; items {fields.items}; first {flags.0}"
    assert render(text, STATE) == (
        'Claim: a flood; amount 4800; items ["roof", "door"]; first true'
    )
    # JSON keeps its characters: a model or a search reads Zürich, not Z\u00fcrich.
    where = {"place": {"city": "Zürich", "jp": "東京"}, "tags": ["ü"]}
    assert render("{place} {tags}", where) == '{"city": "Zürich", "jp": "東京"} ["ü"]'


def test_a_value_not_set_yet_renders_as_empty_text_and_double_braces_are_literal() -> None:
    assert render("[{review_feedback}] [{fields.note}]", STATE) == "[] []"
    assert render('{{"amount": {fields.amount}}}', STATE) == '{"amount": 4800}'


def test_rendering_does_not_run_templates_found_in_values() -> None:
    assert render("{claim}", {"claim": "{secret}", "secret": "leaked"}) == "{secret}"


@pytest.mark.parametrize(
    ("template", "found"),
    [
        ("{text:>100000000}", ["{text:>100000000}"]),
        ("{ text }", ["{ text }"]),
        ("{{literal}} and {text", ["{text"]),
        ("{0} {} {text!r} {amount:.2f}", ["{0}", "{}", "{text!r}", "{amount:.2f}"]),
        ("Claim: {claim} ({fields.amount}, {items.0}) {{x}}", []),
        ('Answer like {"team": "billing"}', []),  # JSON in the text: no placeholder meant
    ],
)
def test_what_looks_like_a_placeholder_but_is_none_is_found(
    template: str, found: list[str]
) -> None:
    assert malformed(template) == found


def test_the_compile_step_names_a_malformed_placeholder(tmp_path: Path) -> None:
    flow = load_flow("claim")
    flow["name"] = "odd"
    flow["nodes"][0]["input"] = "Claim: { claim }"
    agents = scripted_workflow_catalog(tmp_path)
    (tmp_path / "graphs" / "odd.yaml").write_text(yaml.safe_dump(flow))
    with pytest.raises(CatalogError) as info:
        load_catalog(agents)
    (problem,) = [str(p) for p in info.value.problems]
    assert "odd.yaml: nodes.0.input: '{ claim }' is not a placeholder: write {key}" in problem
    assert problem.endswith("or {{ and }} for literal braces")  # as written, not doubled
