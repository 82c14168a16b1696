"""A template that is one placeholder only gives a value of state with its type, where the field
or argument is not text: a fixed answer's number, a tool's list argument. Text fields and
arguments still get text."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog
from orchestrator.workflow.nodes.base import render_arg
from tests.catalogs import scripted_model, specialist, write_catalog

SCORE = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "tag": {"type": "string"}},
    "required": ["score", "tag"],
}


def test_one_placeholder_keeps_the_value_s_type_only_where_text_is_not_wanted() -> None:
    state = {"amount": 42, "ids": [1, 2], "name": "Zoë"}
    assert render_arg("{amount}", state, text=False) == 42
    assert render_arg(" {ids} ", state, text=False) == [1, 2]
    assert render_arg("{amount}", state) == "42"  # a text field gets text
    assert render_arg("{amount} euros", state, text=False) == "42 euros"  # not one placeholder
    assert render_arg("{missing}", state, text=False) == ""  # not set yet: empty, as in text


def flow(
    name: str, given: dict[str, Any], state: dict[str, Any], nodes: list[dict[str, Any]]
) -> Any:
    return {
        "name": name,
        "description": f"{name} for tests",
        "input_schema": {"type": "object", "properties": given},
        "state": state,
        "start": nodes[0]["id"],
        "nodes": nodes,
    }


def run(tmp_path: Path, spec: dict[str, Any], given: dict[str, Any]) -> Any:
    agents = write_catalog(
        tmp_path / "agents",
        [scripted_model("typed", rules=[{"reply": json.dumps({"score": 1, "tag": "x"})}])],
        [specialist("scorer", "typed", output_schema=SCORE)],
    )
    graphs = tmp_path / "graphs"
    graphs.mkdir(exist_ok=True)
    (graphs / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec))
    catalog = load_catalog(agents, graphs)
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def go() -> Any:
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            return await runner.start(spec["name"], given)

    return asyncio.run(go())


def test_a_fixed_number_from_state_stays_a_number(tmp_path: Path) -> None:
    spec = flow(
        "fixednum",
        {"amount": {"type": "integer"}, "label": {"type": "integer"}},
        {"sc": {"type": "object"}},
        [{"kind": "specialist", "id": "s", "specialist": "scorer", "input": "x",
          "fixed": {"score": "{amount}", "tag": "{label}"}, "output": "sc", "next": "end"}],
    )  # fmt: skip
    record = run(tmp_path, spec, {"amount": 42, "label": 7})
    assert record.status == "succeeded", record.error
    assert record.output["sc"] == {"score": 42, "tag": "7"}  # tag is text: it gets text


def test_a_list_argument_of_a_tool_takes_a_list_from_state(tmp_path: Path) -> None:
    data = tmp_path / "agents" / "data"
    data.mkdir(parents=True)
    with sqlite3.connect(data / "p.db") as db:
        db.execute("CREATE TABLE p (id INTEGER, name TEXT)")
        db.executemany("INSERT INTO p VALUES (?, ?)", [(1, "a"), (2, "b")])
    spec = flow(
        "lookup",
        {"ids": {"type": "array"}},
        {"rows": {"type": "array"}},
        [{"kind": "tool", "id": "q", "tool": "sql_query", "output": "rows", "next": "end",
          "args": {"database": "p.db", "query": "SELECT name FROM p WHERE id = ?",
                   "params": "{ids}"}}],
    )  # fmt: skip
    record = run(tmp_path, spec, {"ids": [2]})
    assert record.status == "succeeded", record.error
    assert record.output["rows"] == [{"name": "b"}]


def test_a_tool_result_that_does_not_fit_its_declared_key_is_the_tool_s_error(
    tmp_path: Path,
) -> None:
    """A calculator's 1.5 for a key declared integer is not stored as it is: it is the tool's
    error (tool_error, on_error), as a result state cannot hold is."""
    spec = flow(
        "halve",
        {"n": {"type": "integer"}},
        {"half": {"type": "integer"}, "note": {"type": "number"}},
        [{"kind": "tool", "id": "h", "tool": "calculator", "args": {"expression": "{n} / 2"},
          "output": "half", "next": "end", "on_error": "say"},
         {"kind": "tool", "id": "say", "tool": "calculator", "args": {"expression": "0"},
          "output": "note", "next": "end"}],
    )  # fmt: skip
    spec["output"] = ["half", "tool_error", "note"]
    odd = run(tmp_path, spec, {"n": 3})
    assert odd.status == "succeeded", odd.error
    assert odd.output["half"] is None and odd.output["note"] == 0  # on_error was taken
    even = run(tmp_path / "again", spec, {"n": 4})
    assert even.output["half"] == 2 and even.output["note"] is None
    spec["nodes"][0].pop("on_error")
    spec["nodes"].pop()
    spec["state"].pop("note")
    spec["output"] = ["half", "tool_error"]
    told = run(tmp_path / "told", spec, {"n": 3})
    assert told.output["tool_error"] == {
        "node": "h",
        "tool": "calculator",
        "error": "its result does not fit state key half: 1.5 is not of type 'integer'",
    }
