"""Exactly-once side effects: a process killed between a side effect and the checkpoint that
would have recorded it, then resumed, has made the effect once.

``notify``'s effect is ours (an outbox row), so its idempotency key commits in the same
transaction; an external effect is reserved before the call and recorded after it."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.context
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator.errors import InputError, RunError, ToolTimeoutError
from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
from orchestrator.tools import ToolContext
from orchestrator.tools.base import Tool
from orchestrator.tools.builtins import outbox
from orchestrator.tools.runner import call_tool
from tests.hostile.tool_flows import drive_blocked, resume, write_tool_catalog

KILLS = 20


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.ForkServerContext:
    """Children forked from a server that has imported LangGraph and the runner once (a fresh
    interpreter takes seconds to import them; 20 kills would take minutes)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["orchestrator.runs.runner", "tests.hostile.tool_flows"])
    return context


def kill_after_the_effect(
    forkserver: multiprocessing.context.ForkServerContext, folder: Path, url: str, n: int
) -> str:
    """Run the notify workflow in a child process; SIGKILL it once the outbox row has committed
    (and before the node returns, so before any checkpoint records it). Returns the run id."""
    mark = folder / f"effect-{n}"
    child = forkserver.Process(
        target=drive_blocked, args=(folder, url, "tell", {"text": f"claim {n} paid"}, mark)
    )
    child.start()
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert child.is_alive(), f"the child ended with {child.exitcode}"
        assert time.monotonic() < deadline, "the effect never happened"
        time.sleep(0.01)
    child.kill()  # SIGKILL
    child.join()
    (killed,) = [r for r in RunStore(Database(url)).runs() if f"claim {n} " in str(r.input)]
    assert killed.status == "running"
    return killed.id


def test_notify_killed_between_effect_and_checkpoint_sends_once_on_resume(
    tmp_path: Path, forkserver: multiprocessing.context.ForkServerContext, database_url: str
) -> None:
    write_tool_catalog(tmp_path)
    url = database_url
    started = time.monotonic()
    for n in range(KILLS):
        run_id = kill_after_the_effect(forkserver, tmp_path, url, n)
        rows = [m for m in outbox(url) if m["run_id"] == run_id]
        assert len(rows) == 1, f"kill {n}: the effect committed before the kill"
        record = asyncio.run(resume(tmp_path, url, run_id))
        assert record.status == "succeeded", record.error
        rows = [m for m in outbox(url) if m["run_id"] == run_id]
        assert len(rows) == 1, f"kill {n}: {len(rows)} outbox rows after resume"
        assert record.output["notice"]["message_id"] == rows[0]["id"]
    assert len(outbox(url)) == KILLS
    print(f"{KILLS} kills and resumes in {time.monotonic() - started:.1f} s")


# -- an external effect: reserved before, recorded after ----------------------------------------


class SendArgs(BaseModel):
    to: str


def external_tool(effect: Any) -> Tool:
    return Tool("send", "Sends somewhere else.", SendArgs, effect, side_effect=True)


@pytest.fixture
def context(database_url: str) -> ToolContext:
    """A node's context, on SQLite and on Postgres."""
    return ToolContext(database_url=database_url, run_id="run-1", node_id="n")


def test_an_external_effect_that_succeeded_is_not_repeated(context: ToolContext) -> None:
    sent: list[str] = []
    tool = external_tool(lambda args, ctx: sent.append(args.to) or {"sent": len(sent)})
    first = asyncio.run(call_tool(tool, {"to": "desk"}, context))
    again = asyncio.run(call_tool(tool, {"to": "desk"}, context))
    assert first == again == {"sent": 1} and sent == ["desk"]


def test_an_external_effect_whose_outcome_is_unknown_is_not_repeated(
    context: ToolContext,
) -> None:
    """The call overran its timeout: it may have happened, so a re-run of the node must not
    call it again (nor pretend it did): it fails saying so."""
    sent: list[str] = []

    def slow(args: SendArgs, ctx: ToolContext) -> None:
        sent.append(args.to)
        time.sleep(1.0)

    tool = external_tool(slow)
    with pytest.raises(ToolTimeoutError):
        asyncio.run(call_tool(tool, {"to": "desk"}, context, timeout_s=0.2))
    with pytest.raises(RunError, match="its outcome was never recorded"):
        asyncio.run(call_tool(tool, {"to": "desk"}, context, timeout_s=0.2))
    assert sent == ["desk"]


def test_an_external_effect_that_failed_may_be_tried_again(context: ToolContext) -> None:
    tries: list[str] = []

    def flaky(args: SendArgs, ctx: ToolContext) -> dict[str, int]:
        tries.append(args.to)
        if len(tries) == 1:
            raise InputError("send: the desk is closed")
        return {"sent": len(tries)}

    tool = external_tool(flaky)
    with pytest.raises(InputError, match="closed"):
        asyncio.run(call_tool(tool, {"to": "desk"}, context))
    assert asyncio.run(call_tool(tool, {"to": "desk"}, context)) == {"sent": 2}
    assert asyncio.run(call_tool(tool, {"to": "desk"}, context)) == {"sent": 2}
