"""Held long polls share one reader: each tick reads every waited-on run in one query."""

from __future__ import annotations

import asyncio
import time

from orchestrator.api.long_polls import LongPolls


class Statuses:
    """Run statuses a test sets, and the reads made of them."""

    def __init__(self, runs: int) -> None:
        self.status = {f"run-{n}": "queued" for n in range(runs)}
        self.reads: list[list[str]] = []

    def __call__(self, ids: list[str]) -> dict[str, str]:
        self.reads.append(list(ids))
        return {i: self.status[i] for i in ids if i in self.status}


def test_many_waiters_cost_one_read_per_tick_and_each_is_released_when_its_run_ends() -> None:
    statuses = Statuses(200)
    polls = LongPolls(statuses, poll_s=0.02)

    async def scenario() -> dict[str, float]:
        released: dict[str, float] = {}
        started = time.monotonic()

        async def client(run_id: str) -> None:
            await polls.wait(run_id, timeout_s=5)
            released[run_id] = time.monotonic() - started

        clients = [asyncio.create_task(client(r)) for r in statuses.status]
        await asyncio.sleep(0.1)
        assert released == {}  # all still queued: nobody answered early
        statuses.status["run-7"] = "succeeded"
        statuses.status["run-8"] = "awaiting_review"
        await asyncio.sleep(0.1)
        assert set(released) == {"run-7", "run-8"}
        for run_id in statuses.status:
            statuses.status[run_id] = "failed"
        await asyncio.gather(*clients)
        return released

    released = asyncio.run(scenario())
    assert len(released) == 200 and max(released.values()) < 1.0
    assert all(len(ids) <= 500 for ids in statuses.reads)
    ticks = len(statuses.reads)
    assert ticks < 30, f"{ticks} reads for 200 waiters over ~0.3 s: one per tick expected"
    assert len(statuses.reads[0]) == 200  # the first tick read every waiter's run at once


def test_a_wait_ends_at_its_timeout_and_a_missing_run_is_not_waited_on() -> None:
    statuses = Statuses(1)
    polls = LongPolls(statuses, poll_s=0.02)

    async def scenario() -> tuple[float, float]:
        started = time.monotonic()
        await polls.wait("run-0", timeout_s=0.2)
        timed_out = time.monotonic() - started
        started = time.monotonic()
        await polls.wait("run-gone", timeout_s=5)
        return timed_out, time.monotonic() - started

    timed_out, missing = asyncio.run(scenario())
    assert 0.2 <= timed_out < 1.0
    assert missing < 1.0
    assert polls._waiters == {}  # nothing left behind by either waiter


def test_a_failing_read_is_retried_next_tick() -> None:
    statuses = Statuses(1)
    failures = [RuntimeError("database is locked")]

    def flaky(ids: list[str]) -> dict[str, str]:
        if failures:
            raise failures.pop()
        statuses.status["run-0"] = "succeeded"
        return statuses(ids)

    polls = LongPolls(flaky, poll_s=0.02)
    started = time.monotonic()
    asyncio.run(polls.wait("run-0", timeout_s=5))
    assert time.monotonic() - started < 1.0 and not failures
