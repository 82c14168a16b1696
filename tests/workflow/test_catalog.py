"""The whole catalog: the specialist catalog, the tools its specialists name, and the workflows
beside it, checked together with every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.catalog import load_specialists
from orchestrator.errors import CatalogError
from orchestrator.workflow.catalog import load_catalog
from tests.catalogs import scripted_model, specialist, write_catalog
from tests.conftest import ROOT

FLOW = {
    "name": "sentiment",
    "description": "One specialist call.",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "state": {"verdict": {"type": "object"}},
    "start": "classify",
    "nodes": [
        {
            "kind": "specialist",
            "id": "classify",
            "specialist": "s",
            "input": "{text}",
            "output": "verdict",
            "next": "end",
        },
    ],
}


def problems_of(root: Path, graphs: Path | None = None) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(root, graphs)
    return [str(p) for p in info.value.problems]


def write_flows(folder: Path, **flows: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file, flow in flows.items():
        (folder / f"{file}.yaml").write_text(yaml.safe_dump(flow))
    return folder


def test_the_shipped_catalog_and_workflows_load_clean() -> None:
    catalog = load_catalog(ROOT / "agents", ROOT / "graphs")
    assert catalog.workflows and catalog.specialists
    for name, workflow in catalog.workflows.items():
        assert catalog.workflow(name) is workflow
        assert catalog.sources[("workflow", name)].parent == ROOT / "graphs"


def test_unknown_tool(tmp_path: Path) -> None:
    write_catalog(
        tmp_path, [scripted_model("m")], [specialist("s", "m", tools=["calculator", "teleport"])]
    )
    (problem,) = problems_of(tmp_path)
    assert "specialists/s.yaml: tools.1: unknown tool 'teleport'" in problem


def test_the_specialist_catalog_alone_does_not_look_at_tools_or_workflows(tmp_path: Path) -> None:
    # The workflows beside the catalog folder, inside this test's own folder: the folder beside
    # tmp_path is shared by every test, and a broken workflow there broke their catalogs.
    agents = tmp_path / "agents"
    write_catalog(agents, [scripted_model("m")], [specialist("s", "m", tools=["teleport"])])
    write_flows(tmp_path / "graphs", broken={"name": "broken"})
    assert set(load_specialists(agents).specialists) == {"s"}
    problems = problems_of(agents, tmp_path / "graphs")
    assert any("unknown tool 'teleport'" in p for p in problems)
    assert any("graphs/broken.yaml" in p for p in problems)


def test_a_workflow_defined_twice_names_both_files(tmp_path: Path) -> None:
    write_catalog(tmp_path / "agents", [scripted_model("m")], [specialist("s", "m")])
    graphs = write_flows(tmp_path / "graphs", a=FLOW, b=FLOW)
    (problem,) = problems_of(tmp_path / "agents", graphs)
    assert "b.yaml: name: workflow 'sentiment' is also in" in problem and "a.yaml" in problem
    (graphs / "b.yaml").unlink()
    assert load_catalog(tmp_path / "agents", graphs).workflow("sentiment").start == "classify"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write_catalog(
        tmp_path / "agents",
        [scripted_model("m"), scripted_model("m") | {"description": "twin"}],
        [
            specialist("a", "nope"),
            specialist("b", "m", tools=["x"]),
            specialist("c", "m", corpus="faq"),
        ],
    )
    models = tmp_path / "agents" / "models"
    (models / "twin.yaml").write_text((models / "m.yaml").read_text())
    flow = FLOW | {"start": "nowhere", "nodes": [FLOW["nodes"][0] | {"specialist": "b"}]}
    problems = problems_of(tmp_path / "agents", write_flows(tmp_path / "graphs", flow=flow))
    assert len(problems) == 6, problems
    assert any("also defined in" in p for p in problems)
    assert any("model: unknown model 'nope'" in p for p in problems)
    assert any("unknown tool 'x'" in p for p in problems)
    assert any("corpus: corpus folder" in p for p in problems)
    assert any("graphs/flow.yaml: start" in p and "nowhere" in p for p in problems)
    assert any("graphs/flow.yaml" in p and "never reached" in p for p in problems)


def test_a_named_workflow_folder_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = tmp_path / "agents"
    write_catalog(agents, [scripted_model("m")], [specialist("s", "m")])
    assert load_catalog(agents).workflows == {}  # no graphs/ beside it, none named: no workflows
    (problem,) = problems_of(agents, tmp_path / "grahps")
    assert "grahps: workflow folder not found; pass --graphs or set CADRE_GRAPHS" in problem
    monkeypatch.setenv("CADRE_GRAPHS", str(tmp_path / "nowhere"))
    (problem,) = problems_of(agents)
    assert "nowhere: workflow folder not found" in problem


def test_hidden_files_are_passed_over_and_links_out_of_the_folder_refused(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_catalog(agents, [scripted_model("m")], [specialist("s", "m")])
    graphs = write_flows(tmp_path / "graphs", flow=FLOW)
    (graphs / ".flow.yaml").write_text("an editor's copy: not: a: spec")  # would not parse
    (graphs / "inside.yaml").symlink_to(graphs / "flow.yaml")  # a link inside is a file like any
    outside = tmp_path / "secret.yaml"
    outside.write_text("name: x\n")
    (graphs / "leak.yaml").symlink_to(outside)
    problems = problems_of(agents, graphs)
    assert len(problems) == 2, problems  # the link out, and the inside link's repeated name
    assert any(
        p.endswith("leak.yaml: a link to a file outside the folder; copy the file in")
        for p in problems
    )
    assert any("inside.yaml" in p or "also in" in p for p in problems)


def test_commands_that_use_only_specialists_are_not_stopped_by_a_broken_workflow(
    tmp_path: Path,
) -> None:
    agents = tmp_path / "agents"
    write_catalog(agents, [scripted_model("m")], [specialist("s", "m", tools=["teleport"])])
    write_flows(tmp_path / "graphs", broken={"name": "broken"})
    with pytest.raises(CatalogError) as info:  # the specialists' own problems still count
        load_catalog(agents, workflows=False)
    assert [p.field for p in info.value.problems] == ["tools.0"]
    write_catalog(agents, [scripted_model("m")], [specialist("s", "m")])
    assert set(load_catalog(agents, workflows=False).specialists) == {"s"}


def test_a_spec_defined_twice_is_still_checked_so_one_round_shows_every_problem(
    tmp_path: Path,
) -> None:
    """The second file of a repeated name was skipped whole: its own problems showed only
    after the name was fixed, a round later."""
    twice = specialist("s", "no-such-model")
    write_catalog(tmp_path / "agents", [scripted_model("m")], [specialist("s", "m")])
    (tmp_path / "agents" / "specialists" / "z.yaml").write_text(yaml.safe_dump(twice))
    flawed = {**FLOW, "start": "nowhere"}
    graphs = write_flows(tmp_path / "graphs", a=FLOW, b=flawed)
    problems = problems_of(tmp_path / "agents", graphs)
    assert any("z.yaml: name: specialist 's' is also defined in" in p for p in problems)
    assert any("z.yaml: model: unknown model 'no-such-model'" in p for p in problems)
    assert any("b.yaml: name: workflow 'sentiment' is also in" in p for p in problems)
    assert any("b.yaml: start" in p and "nowhere" in p for p in problems), problems
