"""A driver that stood still past its lease (a pause, a swap storm, a frozen VM) while another
driver took its run: it makes no further model call and writes no checkpoint for that run; it
stops without recording anything. A driver whose lease merely looked stale by its own clock,
and is still its own, renews and goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.engines.base import Message
from orchestrator.runs.runner import Runner
from orchestrator.runs.store import RunStore
from orchestrator.specialists.asking import SpecialistAnswer
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog
from orchestrator.workflow.nodes.base import DriverStopped
from tests.workflow.fixtures import scripted_workflow_catalog


class Stalling(LocalAsker):
    """Calls the scripted engine; at the ``at``-th call, ``then`` runs first (what happened
    while this driver stood still)."""

    def __init__(self, catalog: Any, at: int, then: Any) -> None:
        super().__init__(catalog)
        self.calls: list[str] = []
        self.at, self.then = at, then

    async def ask_spec(
        self,
        specialist: SpecialistSpec,
        text: str,
        history: Sequence[Message] = (),
        on_text: Any = None,
    ) -> SpecialistAnswer:
        self.calls.append(specialist.name)
        if len(self.calls) == self.at:
            self.then()
        return await super().ask_spec(specialist, text, history, on_text)


def chain(tmp_path: Path) -> Any:
    return load_catalog(scripted_workflow_catalog(tmp_path))


def test_a_driver_whose_run_was_taken_while_it_stood_still_calls_and_writes_nothing_more(
    tmp_path: Path, database_url: str
) -> None:
    catalog = chain(tmp_path)
    runner_ref: dict[str, Runner] = {}

    def taken_over() -> None:  # during the second call: the lease ran out, B took the run
        runner = runner_ref["r"]
        (run_id,) = list(runner._stops)
        runner._valid[run_id] = 0.0  # by this process's clock, its lease may have run out
        runner.store.db.execute(
            "UPDATE cadre_runs SET owner = 'other:1:b', lease_until = 9e9 WHERE id = ?", (run_id,)
        )

    asker = Stalling(catalog, at=2, then=taken_over)

    async def body() -> Any:
        async with Runner(catalog, database_url=database_url, asker=asker) as runner:
            runner_ref["r"] = runner
            record = await runner.start("chain", {"text": "printer"})
            saver = runner.checkpointer
            config = {"configurable": {"thread_id": record.id, "checkpoint_ns": ""}}
            history = [c async for c in saver.alist(config)]
            return runner.store.run(record.id), runner.store.events(record.id), history

    record, events, history = asyncio.run(body())
    # The second call was in flight when the run was taken: its answer is not written, and
    # the third node never asks its model.
    assert asker.calls == ["labeller", "extractor"]
    assert [e["node"] for e in events] == ["a"]
    assert (record.status, record.owner, record.error) == ("running", "other:1:b", None)
    steps = [c.metadata.get("step") for c in history]
    assert max(steps) <= 1, steps  # nothing past node a's checkpoint


def test_a_lease_stale_by_the_clock_but_still_held_is_renewed_and_the_run_goes_on(
    tmp_path: Path, database_url: str
) -> None:
    catalog = chain(tmp_path)
    runner_ref: dict[str, Runner] = {}

    def stood_still() -> None:
        runner = runner_ref["r"]
        for run_id in runner._stops:
            runner._valid[run_id] = 0.0  # nobody took it: a renewal finds it still ours

    asker = Stalling(catalog, at=2, then=stood_still)

    async def body() -> Any:
        async with Runner(catalog, database_url=database_url, asker=asker) as runner:
            runner_ref["r"] = runner
            return await runner.start("chain", {"text": "printer"})

    record = asyncio.run(body())
    assert record.status == "succeeded"
    assert asker.calls == ["labeller", "extractor", "decider", "labeller"]


def test_the_guard_refuses_a_cancelled_run_s_calls_but_not_its_last_write(
    tmp_path: Path, database_url: str
) -> None:
    catalog = chain(tmp_path)

    async def body() -> None:
        async with Runner(catalog, database_url=database_url, asker=LocalAsker(catalog)) as r:
            run, _ = r.store.create_run("chain", {"text": "x"}, driver=r.owner, lease_s=60)
            r._hold(run.id)
            await r._guard(run.id)  # held: nothing to say
            r._stops[run.id].set()  # cancelled
            with pytest.raises(DriverStopped, match="cancelled, or another driver"):
                await r._guard(run.id)
            await r._guard_writes(run.id)  # the step in flight is still written
            await r._guard("run-not-mine")  # a run this driver does not hold: not its business

    asyncio.run(body())


def test_a_cancel_from_another_process_stops_the_next_call_before_any_tick(
    tmp_path: Path, database_url: str
) -> None:
    """The API cancels in its own process. A driver learned of it only at its next lease tick,
    so a tool (a side effect) or a model call starting in that window still ran after the
    cancel had been answered."""
    catalog = chain(tmp_path)

    async def body() -> None:
        async with Runner(
            catalog, database_url=database_url, asker=LocalAsker(catalog), tick_s=3600
        ) as r:
            run, _ = r.store.create_run("chain", {"text": "x"}, driver=r.owner, lease_s=60)
            r._hold(run.id)
            await r._guard(run.id)
            RunStore(r.store.db).cancel(run.id)  # as the API does: no event in this process
            with pytest.raises(DriverStopped, match="cancelled, or another driver"):
                await r._guard(run.id)

    asyncio.run(body())


def test_a_database_locked_past_the_bound_leaves_the_run_where_it_was(
    tmp_path: Path, database_url: str
) -> None:
    """A write that gave up on a locked SQLite file (or a Postgres out of reach) stops the run
    with one error naming what to do; the run is not recorded failed, and resuming it finishes
    it without redoing its finished steps."""
    import sqlite3

    from orchestrator.errors import RunError

    catalog = chain(tmp_path)

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked: no checkpoint write for 30 s")

    stopping = Stalling(catalog, at=2, then=locked)

    async def body() -> Any:
        async with Runner(catalog, database_url=database_url, asker=stopping) as runner:
            with pytest.raises(RunError, match=r"could not be written .* `cadre runs resume"):
                await runner.start("chain", {"text": "printer"})
            (record,) = runner.store.runs()
            assert (record.status, record.error) == ("running", None)
        again = Stalling(catalog, at=0, then=None)
        async with Runner(catalog, database_url=database_url, asker=again) as runner:
            return await runner.resume(record.id), again.calls

    record, calls = asyncio.run(body())
    assert record.status == "succeeded"
    assert calls == ["extractor", "decider", "labeller"]  # node a was not asked again
