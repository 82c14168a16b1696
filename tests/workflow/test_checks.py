"""The compile step rejects broken workflows, every problem at once, before anything starts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import CatalogError
from orchestrator.workflow.catalog import load_catalog
from orchestrator.workflow.graph import mermaid
from tests.conftest import ROOT
from tests.workflow.fixtures import load_flow, scripted_workflow_catalog


def problems_with(tmp_path: Path, flow: dict[str, Any]) -> list[str]:
    agents = scripted_workflow_catalog(tmp_path)
    (tmp_path / "graphs" / "broken.yaml").write_text(yaml.safe_dump(flow))
    with pytest.raises(CatalogError) as info:
        load_catalog(agents)
    return [str(p) for p in info.value.problems]


def broken(base: dict[str, Any], name: str = "broken") -> dict[str, Any]:
    flow = copy.deepcopy(base)
    flow["name"] = name
    return flow


def test_shipped_workflows_compile_and_draw() -> None:
    catalog = load_catalog(ROOT / "agents")
    assert set(catalog.workflows) == {"claim-triage", "support-ticket", "research-brief"}
    drawing = mermaid(catalog.workflow("support-ticket"), catalog)
    for node in (
        "split",
        "triage_each",
        "triage_each__item",
        "route",
        "billing_reply",
        "general_reply",
    ):
        assert node in drawing


def test_every_graph_problem_is_reported_at_once(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    nodes = flow["nodes"]
    nodes[0]["specialist"] = "extracter"  # unknown specialist
    nodes[1]["tool"] = "calculater"  # unknown tool: a typo
    nodes[4]["input"] = "{fields} {verdict}"  # template names a key that is not state
    nodes.append(  # nobody reaches it, and it loops on itself: no way out
        {
            "kind": "specialist",
            "id": "orphan",
            "specialist": "decider",
            "input": "x",
            "output": "decision",
            "next": "orphan",
        }
    )
    nodes.append(  # a map over a key that is not state, joining into a node that does not exist
        {
            "kind": "map",
            "id": "each",
            "over": "claims",
            "specialist": "decider",
            "input": "{item}",
            "output": "decision",
            "join": "tally",
        }
    )
    nodes[3]["next"] = "decidee"  # an edge to a node that does not exist
    problems = problems_with(tmp_path, flow)
    expected = [
        "nodes.0.specialist: unknown specialist 'extracter' in node 'extract'",
        "nodes.1.tool: unknown tool 'calculater' in node 'payout'; did you mean 'calculator'?",
        "nodes.4.input: 'verdict' is not in the workflow's state",
        "nodes.5: node 'orphan' is never reached from start",
        "nodes.6.over: 'claims' is not",
        "nodes.6: node 'each' goes to 'tally', which is not a node",
        "nodes.3: node 'adjuster' goes to 'decidee', which is not a node",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert all(p.startswith("graphs/broken.yaml") or "broken.yaml" in p for p in problems)


def test_a_cycle_with_no_exit_is_refused(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    flow["nodes"][4]["next"] = "extract"  # decide -> extract -> ... never reaches end
    problems = problems_with(tmp_path, flow)
    assert any("node 'decide' has no way out" in p for p in problems), problems


def test_what_a_node_kind_requires_is_a_shape_error_naming_the_field(tmp_path: Path) -> None:
    """A branch's default, a map's or plan's join and a memory read's query and output are
    required by the specs themselves; a memory node's op picks which fields it takes."""
    flow = broken(load_flow("claim"))
    flow["nodes"][2].pop("default")
    flow["nodes"] += [
        {"kind": "map", "id": "each", "over": "fields", "specialist": "decider",
         "input": "{item}", "output": "decision"},
        {"kind": "plan", "id": "plan", "planner": "decider", "input": "x",
         "specialists": ["decider"], "output": "decision"},
        {"kind": "memory", "id": "recall", "op": "read", "next": "end"},
        {"kind": "memory", "id": "keep", "op": "write", "query": "x", "next": "end"},
        {"kind": "memory", "id": "odd", "op": "forget", "next": "end"},
    ]  # fmt: skip
    problems = problems_with(tmp_path, flow)
    expected = [
        "nodes.2.branch.default: required field is missing",
        "nodes.5.map.join: required field is missing",
        "nodes.6.plan.join: required field is missing",
        "nodes.7.memory.read.query: required field is missing",
        "nodes.7.memory.read.output: required field is missing",
        "nodes.8.memory.write.text: required field is missing",
        "nodes.8.memory.write.query: unknown field",
        "nodes.9.memory: Input tag 'forget' found using 'op' does not match",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == len(expected), problems


def test_a_planner_with_the_wrong_schema(tmp_path: Path) -> None:
    flow = {
        "name": "broken",
        "description": "bad plan",
        "input_schema": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "state": {"out": {"type": "array"}},
        "start": "plan",
        "nodes": [
            {
                "kind": "plan",
                "id": "plan",
                "planner": "decider",
                "input": "{topic}",
                "specialists": ["ghost"],
                "output": "out",
                "join": "end",
            }
        ],
    }
    problems = problems_with(tmp_path, flow)
    assert any("nodes.0.specialists.0: unknown specialist 'ghost'" in p for p in problems), problems
    assert any("planner 'decider' must answer {tasks:" in p for p in problems), problems


def test_spec_shape_errors_name_the_field(tmp_path: Path) -> None:
    flow = broken(load_flow("tickets"))
    flow["nodes"][0]["kind"] = "loop"
    flow["nodes"][1]["id"] = "Route Me"
    problems = problems_with(tmp_path, flow)
    assert any(
        "nodes.0: Input tag 'loop' found using 'kind' does not match" in p for p in problems
    ), problems
    assert any("nodes.1.branch.id: String should match pattern" in p for p in problems), problems


def test_output_and_state_keys_must_be_declared(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    flow["output"] = ["fields", "verdict"]
    flow["nodes"][0]["output"] = "extracted"
    flow["nodes"][3]["show"] = ["fields", "notes"]
    problems = problems_with(tmp_path, flow)
    assert any("output: 'verdict' is not a state key" in p for p in problems), problems
    assert any("nodes.0.output: 'extracted' is not declared" in p for p in problems), problems
    assert any("nodes.3.show: 'notes' is not in the workflow's state" in p for p in problems), (
        problems
    )


def test_a_template_naming_a_field_the_specialist_never_answers_is_a_problem(
    tmp_path: Path,
) -> None:
    """The key is declared as a bare object: its fields come from the extractor's output schema."""
    flow = broken(load_flow("claim"))
    flow["state"]["fields"] = {"type": "object"}
    flow["nodes"][4]["input"] = "Claim {fields.amonut} payout {payout}"
    flow["nodes"][2]["cases"][0]["when"]["key"] = "fields.amount.cents"
    problems = problems_with(tmp_path, flow)
    assert len(problems) == 2, problems
    when, template = problems
    assert "nodes.2.cases.0.when.key: 'fields.amount.cents': fields.amount is a number" in when
    assert "nodes.4.input: 'fields.amonut': fields has no field 'amonut'" in template
    assert "(its fields: amount, policy_number)" in template


def test_branch_values_outside_the_enum_are_problems(tmp_path: Path) -> None:
    tickets = broken(load_flow("tickets"))
    tickets["nodes"][1]["cases"] = [{"equals": "shipping", "next": "end"}]
    problems = problems_with(tmp_path, tickets)
    assert len(problems) == 1, problems
    assert "nodes.1.cases.0.equals: 'shipping' is never labeller's label" in problems[0]
    assert "'billing', 'technical'" in problems[0]

    claim = broken(load_flow("claim"))
    claim["nodes"][2]["cases"].append(
        {
            "when": {"key": "decision.decision", "op": "in", "value": ["pay", "aprove"]},
            "next": "end",
        }
    )
    problems = problems_with(tmp_path, claim)
    assert len(problems) == 1, problems
    assert "nodes.2.cases.1.when.value: 'aprove' is never decision.decision" in problems[0]


def test_branch_values_of_another_type_than_the_field_are_problems(tmp_path: Path) -> None:
    """A case comparing a number field with a text (or a text field with true) never fires:
    validate says so, where the run would take the default silently."""
    tickets = broken(load_flow("tickets"))
    tickets["nodes"][1]["cases"] = [{"equals": True, "next": "end"}]
    problems = problems_with(tmp_path, tickets)
    assert len(problems) == 1, problems
    assert (
        "cases.0.equals: True is never labeller's label: that is string, and this is "
        in (problems[0])
    )
    claim = broken(load_flow("claim"))
    claim["nodes"][2]["cases"].insert(
        0, {"when": {"key": "fields.amount", "op": "eq", "value": "1000"}, "next": "end"}
    )
    problems = problems_with(tmp_path, claim)
    assert len(problems) == 1, problems
    assert (
        "nodes.2.cases.0.when.value: '1000' is never fields.amount: that is number, and this is "
        "string (write it without quotes)"
    ) in problems[0]

    # an order too: `gt "1000"` passed validate and never held, so the rule was skipped
    claim = broken(load_flow("claim"))
    claim["nodes"][2]["cases"].insert(
        0, {"when": {"key": "fields.amount", "op": "gt", "value": "1000"}, "next": "end"}
    )
    problems = problems_with(tmp_path, claim)
    assert len(problems) == 1, problems
    assert "nodes.2.cases.0.when.value: '1000' is never fields.amount" in problems[0]


def test_one_typo_in_next_is_one_problem_with_the_node_it_probably_meant(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    flow["nodes"][0]["next"] = "payuot"
    problems = problems_with(tmp_path, flow)
    assert len(problems) == 1, problems
    assert (
        "node 'extract' goes to 'payuot', which is not a node (did you mean 'payout'?)"
        in (problems[0])
    )


def test_fixed_answer_fields_must_be_fields_and_values_the_specialist_has(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    flow["nodes"][4]["fixed"] = {"decision": "aprove", "verdict": "deny", "rationale": "{payuot}"}
    problems = problems_with(tmp_path, flow)
    assert len(problems) == 3, problems
    wrong_value, template, no_field = sorted(problems)
    assert "nodes.4.fixed.decision: 'aprove'" in wrong_value and "pay" in wrong_value
    assert (
        "nodes.4.fixed.rationale: 'payuot' is not in the workflow's state; did you mean 'payout'?"
        in template
    )
    assert "nodes.4.fixed.verdict: 'decider' answers no field 'verdict'" in no_field


def test_review_desk_fields_are_checked(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    gate = next(n for n in flow["nodes"] if n["id"] == "adjuster")
    gate.update(key_fields=["fields.policy_numbr", "claim"], approvals=9, escalate_after="soon")
    found = problems_with(tmp_path, flow)
    joined = "\n".join(found)
    assert "approvals" in joined and "less than or equal to 5" in joined
    assert "escalate_after" in joined and "soon" in joined
    gate.update(approvals=2, escalate_after="99999999d")  # a duration, but past the bound
    found = problems_with(tmp_path / "long", flow)
    assert any("'99999999d': at most 999999 of a unit" in p for p in found), found
    gate.update(approvals=2, escalate_after="90m")
    found = problems_with(tmp_path / "again", flow)
    assert any("key_fields" in p and "policy_numbr" in p for p in found), found
    assert len(found) == 1, found  # `claim` is the workflow's input, so it is state


def test_keys_cadre_or_langgraph_keep_for_themselves_cannot_be_declared(tmp_path: Path) -> None:
    """A state key named ``__start__`` looped some 5,000 model calls; ``tool_error`` as an input
    let a submitter fake a tool's failure."""
    flow = broken(load_flow("claim"))
    flow["input_schema"]["properties"]["tool_error"] = {"type": "string"}
    flow["state"].update({"__start__": {"type": "object"}, "": {}, "a.b": {}, "_usage": {}})
    found = problems_with(tmp_path, flow)
    for where, why in (
        ("input_schema.properties.tool_error", "'tool_error' is a key Cadre writes itself"),
        ("state.__start__", "'__start__': a key must not be empty or start with '_'"),
        ("state.", "'': a key must not be empty"),
        ("state.a.b", "'a.b': a key must not hold '.'"),
        ("state._usage", "'_usage': a key must not be empty or start with '_'"),
    ):
        assert any(f"{where}: {why}" in p for p in found), (where, found)


def test_tool_arguments_are_checked_before_a_run(tmp_path: Path) -> None:
    """A misspelt, missing or mistyped argument was found only at the node, as a tool error in
    state, while the run went on and exited 0."""
    flow = broken(load_flow("claim"))
    payout = next(n for n in flow["nodes"] if n["kind"] == "tool")
    payout["args"] = {"expr": "{fields.amount} * 0.8"}
    flow["nodes"].append(
        {
            "kind": "tool",
            "id": "lookup",
            "tool": "sql_query",
            "args": {"database": 5, "query": "{fields.policy_number}"},
            "output": "rows",
            "next": "end",
        }
    )  # unreached as well: that problem is reported beside these
    flow["state"]["rows"] = {"type": "array"}
    found = problems_with(tmp_path, flow)
    for expected in (
        "args.expr: tool 'calculator' takes no argument 'expr' (it takes expression)",
        "args: tool 'calculator' needs the argument 'expression'",
        "args.database: Input should be a valid string",
    ):
        assert any(expected in p for p in found), (expected, found)
    assert not any("args.query" in p for p in found)  # a placeholder: known only at run time


def test_a_misspelt_field_is_matched_to_the_one_missing_beside_it(tmp_path: Path) -> None:
    flow = broken(load_flow("claim"))
    flow["strat"] = flow.pop("start")
    flow["nodes"][0]["nxt"] = flow["nodes"][0].pop("next")
    found = problems_with(tmp_path, flow)
    assert any("strat: unknown field; did you mean 'start'?" in p for p in found), found
    assert any("nodes.0.specialist.nxt: unknown field; did you mean 'next'?" in p for p in found)
    # Only the node's own problems: not also "nodes: at least 1 item", which its failure made.
    assert not any("at least 1 item" in p for p in found), found


def test_a_node_writing_what_its_state_key_is_not_declared_as_is_a_problem(
    tmp_path: Path,
) -> None:
    flow = broken(load_flow("claim"))
    flow["state"]["fields"] = {"type": "array"}  # the extractor answers an object
    found = problems_with(tmp_path, flow)
    assert any(
        "nodes.0.output: node 'extract' writes an object to 'fields', which the workflow "
        "declares as array" in p
        for p in found
    ), found


def test_a_boolean_is_no_number_and_a_word_no_boolean(tmp_path: Path) -> None:
    """Pydantic would read `tokens: true` as a budget of one token and "yes" as true."""
    flow = broken(load_flow("claim"))
    flow["budget"] = {"tokens": True}
    found = problems_with(tmp_path / "a", flow)
    assert any("budget: tokens: give a number, not true" in p for p in found), found
    flow = broken(load_flow("claim"))
    flow["remember_runs"] = "yes"
    found = problems_with(tmp_path / "b", flow)
    assert any("remember_runs: give true or false, not 'yes'" in p for p in found), found


def test_a_workflow_schema_referring_outside_itself_is_refused(tmp_path: Path) -> None:
    claim = broken(load_flow("claim"))
    claim["input_schema"]["properties"]["claim"] = {"$ref": "http://127.0.0.1:9/claim.json"}
    claim["state"]["fields"] = {"$ref": "#/nowhere"}
    problems = problems_with(tmp_path, claim)
    assert any(
        "input_schema.properties.claim.$ref: 'http://127.0.0.1:9/claim.json' is outside the "
        "schema" in p
        for p in problems
    ), problems
    assert any("state.fields.$ref: '#/nowhere' points at nothing" in p for p in problems), problems
