"""A specialist node with ``stream: true`` sends its answer's text to the run's stream as the
engine generates it: ``token`` events for that node, before the node's own event, whose text
makes up the answer; nodes without it send none. Runs driven in this process (LocalAsker,
scripted engine), on both databases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from orchestrator.runs.runner import Runner
from orchestrator.runs.stream import pending
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog


def test_a_streaming_node_sends_its_text_as_token_events(tmp_path: Path, database_url: str) -> None:
    root = scripted_workflow_catalog(tmp_path / "c", amount=300)
    path = root.parent / "graphs" / "claim.yaml"
    flow = yaml.safe_load(path.read_text())
    next(n for n in flow["nodes"] if n["id"] == "extract")["stream"] = True
    path.write_text(yaml.safe_dump(flow, sort_keys=False))
    catalog = load_catalog(root)

    async def go() -> Any:
        async with Runner(catalog, database_url=database_url, asker=LocalAsker(catalog)) as r:
            record = await r.start("claim", {"claim": "a dent"})
            return record, pending(r.store, record.id)

    record, events = asyncio.run(go())
    assert record.status == "succeeded"
    names = [(e.event, e.data.get("node")) for e in events]
    tokens = [e for e in events if e.event == "token"]
    assert tokens and {e.data["node"] for e in tokens} == {"extract"}
    assert names.index(("token", "extract")) < names.index(("node", "extract"))
    text = "".join(e.data["text"] for e in tokens)
    assert json.loads(text) == record.output["fields"] == {"policy_number": "P-1", "amount": 300}
    assert [e.id for e in events] == sorted(e.id for e in events)
    # Asked for what comes after an id past the end of the log, `end` still carries the id of
    # the log's last event (it echoed the id the client sent).
    last = events[-1].id
    (end,) = asyncio.run(after_the_end(database_url, catalog, record.id, last + 10**6))
    assert (end.event, end.id) == ("end", last)


async def after_the_end(url: str, catalog: Any, run_id: str, after: int) -> Any:
    async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as r:
        return pending(r.store, run_id, after)
