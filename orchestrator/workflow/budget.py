"""Token budgets at call time: one counter per run, shared by all of its concurrent calls.

Before a specialist call, the run's counter is checked and the call's estimate reserved: what the
run has used, plus what its calls in flight have reserved, plus this call's estimate must fit in
the workflow's budget (``budget: {tokens: N}``) and in its tenant's budget for the day (UTC). When
the call answers, the reservation is replaced by the tokens it used. A map or a plan checks its
whole fan-out (every branch's estimate at once) before it sends any branch, so a fan-out that
cannot fit makes no call at all.

An estimate is what a call may cost at most: its prompt's tokens, guessed from the prompt's length
(``CHARS_PER_TOKEN``: the engines' tokenizers live in their hosts), plus its ``max_tokens``.

Tenants' budgets, and what their other runs used today, come from a :class:`Ledger` (the run
database's: ``orchestrator/runs/budget.py``); without one, only workflow budgets hold. A run's
counter starts from what the run already used: the larger of its state's ``_usage`` and its record.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.errors import BudgetExceeded
from orchestrator.specialists.calls import build_request

CHARS_PER_TOKEN = 4
"""A prompt's tokens are guessed as its characters over this (English text, BPE tokenizers)."""


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` is guessed to take, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def call_estimate(specialist: SpecialistSpec, text: str) -> int:
    """The most one ask of ``specialist`` about ``text`` may use: the prompt (estimated) plus its
    ``max_tokens``, for each model call (a specialist with tools may make ``tool_steps + 1``)."""
    request = build_request(specialist, text)
    prompt = sum(estimate_tokens(message.content) for message in request.messages)
    calls = specialist.tool_steps + 1 if specialist.tools else 1
    return calls * (prompt + request.max_tokens)


def tokens_used(usage: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Input plus output tokens of a ``_usage`` channel (per specialist) or a run record's usage."""
    return int(
        sum(u.get("input_tokens", 0) + u.get("output_tokens", 0) for u in (usage or {}).values())
    )


def day_start(now: float | None = None) -> float:
    """When the current UTC day began (epoch seconds): tenant budgets renew then."""
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC).date()
    return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC).timestamp()


def budget_attributes(err: BudgetExceeded) -> dict[str, Any]:
    """Span attributes of a refusal, beside its ``error.type``."""
    return {
        "cadre.budget.scope": err.scope,
        "cadre.budget.limit": err.limit,
        "cadre.budget.used": err.used,
        "cadre.budget.needed": err.needed,
    }


@dataclass(frozen=True)
class RunRef:
    """The run a call is made for, and the workflow's limit on it."""

    run_id: str
    tenant: str
    workflow: str
    limit: int | None
    """The workflow's tokens per run; None: no workflow budget."""
    used: int = 0
    """Tokens the run's state says it used: its counter never starts below this."""


class Ledger(Protocol):
    """What the run database knows about budgets (``orchestrator.runs.budget.TenantBudgets``)."""

    async def recorded(self, run_id: str) -> tuple[int, float]:
        """The tokens the run's record holds, and when the run was created."""
        ...

    async def tenant_limit(self, tenant: str) -> int | None:
        """The tenant's tokens per day; None: it has no daily budget."""
        ...

    async def tenant_used(self, tenant: str, since: float, exclude: Collection[str]) -> int:
        """What the tenant's runs created ``since`` used, leaving out the runs in ``exclude``
        (counted live here)."""
        ...


@dataclass
class _Counter:
    tenant: str
    created_at: float
    used: int = 0
    reserved: int = 0


@dataclass(frozen=True)
class Hold:
    """A call's reservation, until :meth:`TokenBudget.settle` replaces it with what it used."""

    run_id: str
    tokens: int


class TokenBudget:
    """The budget check of every specialist call a graph makes, for every run it drives.

    Counters live in this process (one process drives a run at a time); the ``keep`` most recently
    used are kept, and a counter dropped early is rebuilt from the run's state and record.
    """

    def __init__(self, ledger: Ledger | None = None, keep: int = 4096) -> None:
        self.ledger = ledger
        self.keep = keep
        self._runs: OrderedDict[str, _Counter] = OrderedDict()

    def applies(self, run: RunRef) -> bool:
        """Whether any budget can hold this run (else there is nothing to count)."""
        return run.limit is not None or self.ledger is not None

    async def check(self, run: RunRef, estimates: Sequence[int], what: str) -> None:
        """Refuse, with BudgetExceeded, calls of these estimates that would not all fit at once:
        a fan-out's check before it sends any branch. Nothing is reserved."""
        await self._admit(run, sum(estimates), what, reserve=False)

    async def reserve(self, run: RunRef, estimate: int, what: str) -> Hold | None:
        """Reserve a call's estimate, or refuse the call with BudgetExceeded."""
        return await self._admit(run, estimate, what, reserve=True)

    def settle(self, hold: Hold | None, used: int | None) -> None:
        """Replace a reservation with the tokens the call used (None: it failed unanswered)."""
        if hold is None:
            return
        counter = self._runs.get(hold.run_id)
        if counter is not None:
            counter.reserved -= hold.tokens
            counter.used += used or 0

    def used(self, run_id: str) -> int:
        """Tokens this process counts for a run: used, and reserved by its calls in flight."""
        counter = self._runs.get(run_id)
        return counter.used + counter.reserved if counter else 0

    async def _admit(self, run: RunRef, tokens: int, what: str, reserve: bool) -> Hold | None:
        if not self.applies(run):
            return None
        counter = await self._counter(run)
        tenant_limit: int | None = None
        others, since = 0, 0.0
        if self.ledger is not None:
            tenant_limit = await self.ledger.tenant_limit(run.tenant)
            if tenant_limit is not None:
                since = day_start()
                mine = [rid for rid, c in self._runs.items() if self._today(c, run.tenant, since)]
                others = await self.ledger.tenant_used(run.tenant, since, mine)
        # Nothing below awaits: the check and the reservation are one step for concurrent calls.
        counter = self._runs.setdefault(run.run_id, counter)
        run_used = counter.used + counter.reserved
        if run.limit is not None and run_used + tokens > run.limit:
            raise BudgetExceeded(
                f"token budget: workflow {run.workflow!r} allows {run.limit} tokens a run "
                f"(budget.tokens) and this run has used {run_used}; {what} would need up to "
                f"{tokens} more. Raise budget.tokens, give a shorter input, or lower the "
                "specialists' generation.max_tokens.",
                "workflow",
                run.limit,
                run_used,
                tokens,
            )
        if tenant_limit is not None:
            live = sum(
                c.used + c.reserved
                for c in self._runs.values()
                if self._today(c, run.tenant, since)
            )
            tenant_used = others + live
            if tenant_used + tokens > tenant_limit:
                raise BudgetExceeded(
                    f"token budget: tenant {run.tenant!r} may use {tenant_limit} tokens a day "
                    f"and its runs have used {tenant_used} today; {what} would need up to "
                    f"{tokens} more. The budget renews at 00:00 UTC; raise it with "
                    f"`cadre tenants budget {run.tenant} --tokens-per-day N`.",
                    "tenant",
                    tenant_limit,
                    tenant_used,
                    tokens,
                )
        if not reserve:
            return None
        counter.reserved += tokens
        return Hold(run.run_id, tokens)

    @staticmethod
    def _today(counter: _Counter, tenant: str, since: float) -> bool:
        return counter.tenant == tenant and counter.created_at >= since

    async def _counter(self, run: RunRef) -> _Counter:
        counter = self._runs.get(run.run_id)
        if counter is None:
            recorded, created_at = (
                await self.ledger.recorded(run.run_id) if self.ledger else (0, time.time())
            )
            # Another call of the run may have made the counter while this one awaited.
            counter = self._runs.setdefault(
                run.run_id, _Counter(run.tenant, created_at, used=recorded)
            )
            self._evict(but=run.run_id)
        self._runs.move_to_end(run.run_id)
        counter.used = max(counter.used, run.used)
        return counter

    def _evict(self, but: str) -> None:
        if len(self._runs) <= self.keep:
            return
        idle = [rid for rid, c in self._runs.items() if not c.reserved and rid != but]
        for run_id in idle[: max(0, len(self._runs) - self.keep)]:
            del self._runs[run_id]
