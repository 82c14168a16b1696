"""Workflows of tool nodes only (no model), and a child process that runs one: for tests that
time a run's tools or kill the process that drives it (run as a script, or as a
``multiprocessing`` child with :func:`drive_blocked`).

    python -m tests.hostile.tool_flows DIR DATABASE_URL WORKFLOW INPUT [--block-after-effect MARK]

prints the run as JSON when it ends. With ``--block-after-effect``, ``notify`` writes MARK once
its effect has committed and then blocks: the moment between the effect and the checkpoint, for
the parent to kill the process in.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

SQL_FLOW = {
    "name": "slow_sql",
    "description": "A query that runs far past its timeout, then a calculation.",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "state": {"rows": {"type": ["array", "null"]}, "sum": {"type": ["number", "null"]}},
    "start": "lookup",
    "nodes": [
        {
            "kind": "tool",
            "id": "lookup",
            "tool": "sql_query",
            "args": {
                "database": "policies.db",
                # 7^12 rows: hours of work for SQLite
                "query": "SELECT count(*) AS n FROM "
                + ", ".join(f"policies p{i}" for i in range(12)),
            },
            "output": "rows",
            "timeout_s": 1.0,
            "next": "add",
        },
        {
            "kind": "tool",
            "id": "add",
            "tool": "calculator",
            "args": {"expression": "1 + 2"},
            "output": "sum",
            "next": "end",
        },
    ],
}
BIG_POWER_FLOW = {
    "name": "big_power",
    "description": "A small calculation, then one far too large.",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "state": {"big": {"type": ["number", "null"]}, "sum": {"type": ["number", "null"]}},
    "start": "add",
    "nodes": [
        {
            "kind": "tool",
            "id": "add",
            "tool": "calculator",
            "args": {"expression": "1 + 2"},
            "output": "sum",
            "next": "big",
        },
        {
            "kind": "tool",
            "id": "big",
            "tool": "calculator",
            "args": {"expression": "((9**1000)**1000)**1000"},
            "output": "big",
            "timeout_s": 1.0,
            "next": "end",
        },
    ],
}
NOTIFY_FLOW = {
    "name": "tell",
    "description": "Tell the claims desk.",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "state": {"notice": {"type": ["object", "null"]}},
    "start": "tell",
    "nodes": [
        {
            "kind": "tool",
            "id": "tell",
            "tool": "notify",
            "args": {"channel": "claims-desk", "message": "{text}"},
            "output": "notice",
            "next": "end",
        }
    ],
}
FLOWS = (SQL_FLOW, BIG_POWER_FLOW, NOTIFY_FLOW)


def write_tool_catalog(folder: Path) -> tuple[Path, Path]:
    """A catalog with no models, the shipped data/ files, and the flows above."""
    agents, graphs = folder / "agents", folder / "graphs"
    for sub in ("models", "specialists"):
        (agents / sub).mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "agents" / "data", agents / "data", dirs_exist_ok=True)
    graphs.mkdir(parents=True, exist_ok=True)
    for flow in FLOWS:
        (graphs / f"{flow['name']}.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    return agents, graphs


class NoModels:
    """An asker for workflows that call no specialist."""

    async def ask_spec(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("this workflow calls no specialist")


async def drive(folder: Path, database_url: str, workflow: str, data: Any) -> Any:
    """Start a run and drive it to its end (in this process)."""
    from orchestrator.runs.runner import Runner
    from orchestrator.workflow.catalog import load_catalog

    agents, graphs = folder / "agents", folder / "graphs"
    catalog = load_catalog(agents, graphs)
    async with Runner(catalog, database_url=database_url, asker=NoModels()) as runner:
        record = await runner.start(workflow, data)
        state = await runner.graph(workflow).aget_state({"configurable": {"thread_id": record.id}})
        return record, state.values


async def resume(folder: Path, database_url: str, run_id: str) -> Any:
    """Resume a run from its last checkpoint (in this process)."""
    from orchestrator.runs.runner import Runner
    from orchestrator.workflow.catalog import load_catalog

    catalog = load_catalog(folder / "agents", folder / "graphs")
    async with Runner(catalog, database_url=database_url, asker=NoModels()) as runner:
        return await runner.resume(run_id)


def _block_after_effect(mark: Path) -> None:
    """Make ``notify`` write ``mark`` once its effect has committed, then block."""
    import orchestrator.tools as tools

    effect = tools.NOTIFY.fn

    def notify_then_block(args: Any, context: Any) -> Any:
        effect(args, context)
        mark.write_text("effect committed")
        time.sleep(3600)

    tools.NOTIFY = dataclasses.replace(tools.NOTIFY, fn=notify_then_block)


def drive_blocked(folder: Path, database_url: str, workflow: str, data: Any, mark: Path) -> None:
    """A child process's work (``multiprocessing``): drive a run whose notify blocks after its
    effect."""
    _block_after_effect(mark)
    asyncio.run(drive(folder, database_url, workflow, data))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("database_url")
    parser.add_argument("workflow")
    parser.add_argument("input")
    parser.add_argument("--block-after-effect", type=Path)
    args = parser.parse_args(argv)
    if args.block_after_effect:
        _block_after_effect(args.block_after_effect)
    record, state = asyncio.run(
        drive(args.folder, args.database_url, args.workflow, json.loads(args.input))
    )
    print(json.dumps({"id": record.id, "status": record.status, "state": state}, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
