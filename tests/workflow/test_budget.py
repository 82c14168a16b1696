"""A run's token counter (``TokenBudget``): calls of one run share it, a fan-out is checked whole
before any branch, and only idle counters of older runs are dropped."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import BudgetExceeded
from orchestrator.workflow.budget import RunRef, TokenBudget


def test_concurrent_calls_of_a_run_share_one_counter() -> None:
    budget = TokenBudget()
    run = RunRef("run-1", "acme", "wf", limit=100)

    async def go() -> None:
        first = await budget.reserve(run, 60, "a call")
        with pytest.raises(BudgetExceeded) as refused:
            await budget.reserve(run, 60, "a call")  # 60 reserved + 60 > 100
        assert (refused.value.used, refused.value.needed) == (60, 60)
        budget.settle(first, 25)  # the call used less than its estimate
        second = await budget.reserve(run, 60, "a call")
        assert budget.used("run-1") == 85
        budget.settle(second, None)  # failed unanswered: its reservation is let go
        assert budget.used("run-1") == 25
        with pytest.raises(BudgetExceeded):
            await budget.check(run, [40, 40], "two branches")
        await budget.check(run, [40, 35], "two branches")
        assert budget.used("run-1") == 25, "a fan-out check reserves nothing"
        # A counter starts from what the run's state says it used.
        await budget.reserve(RunRef("run-2", "acme", "wf", limit=100, used=90), 10, "a call")
        with pytest.raises(BudgetExceeded):
            await budget.reserve(RunRef("run-2", "acme", "wf", limit=100), 1, "a call")

    asyncio.run(go())


def test_only_idle_counters_of_older_runs_are_dropped() -> None:
    budget = TokenBudget(keep=2)

    def run(i: int) -> RunRef:
        return RunRef(f"run-{i}", "acme", "wf", limit=100)

    async def go() -> None:
        holds = [await budget.reserve(run(i), 10, "a call") for i in range(3)]
        assert [budget.used(f"run-{i}") for i in range(3)] == [10, 10, 10], "calls in flight"
        for hold in holds:
            budget.settle(hold, 5)
        await budget.reserve(run(3), 10, "a call")
        assert [budget.used(f"run-{i}") for i in range(4)] == [0, 0, 5, 10]

    asyncio.run(go())
