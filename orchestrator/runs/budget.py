"""Tenants' daily token budgets, in the run database.

A tenant may have a budget of tokens per UTC day: the input and output tokens of all its runs
created that day. :class:`TenantBudgets` stores the budgets (``cadre tenants budget``) and is
the :class:`~orchestrator.workflow.budget.Ledger` that the runner's :class:`TokenBudget` checks
each call against. What a run driven by another process used counts as its record says (updated
when the run stops, fails or waits for review); runs driven here count live.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Collection
from dataclasses import dataclass

from orchestrator.catalog.specs import NAME_PATTERN
from orchestrator.errors import InputError, clip
from orchestrator.storage import schema
from orchestrator.storage.database import Database
from orchestrator.workflow.budget import TokenBudget, day_start


def check_tenant(tenant: str) -> None:
    """InputError unless ``tenant`` is a tenant name (as keys and budgets take them)."""
    if not re.fullmatch(NAME_PATTERN, tenant):  # match() would let a final newline through
        raise InputError(
            f"tenant {clip(tenant, 80)!r}: use lowercase letters, digits, - and _ (up to 64)"
        )


@dataclass(frozen=True)
class TenantBudget:
    """One tenant's daily budget and what its runs used today."""

    tenant: str
    tokens_per_day: int | None
    """None: the tenant has no budget."""
    used_today: int
    """Input and output tokens of its runs created today (UTC), as their records hold them."""


class TenantBudgets:
    """The ``cadre_tenant_budgets`` table, and what tenants' runs used (``cadre_runs``).

    Budgets are read at most once per ``cache_s`` seconds per tenant when checking calls, so a
    tenant without a budget costs its runs no query per call.
    """

    def __init__(self, db: Database, cache_s: float = 5.0) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, int | None]] = {}
        self.db.set_up("tenant_budgets", lambda: schema.create(db, schema.TENANT_BUDGETS))

    def set(self, tenant: str, tokens_per_day: int | None) -> None:
        """Give ``tenant`` a daily budget, or none (``None``)."""
        check_tenant(tenant)
        if tokens_per_day is None:
            self.db.execute("DELETE FROM cadre_tenant_budgets WHERE tenant = ?", (tenant,))
        elif tokens_per_day <= 0:
            raise InputError(f"--tokens-per-day {tokens_per_day}: give a positive number")
        else:
            self.db.execute(
                "INSERT INTO cadre_tenant_budgets (tenant, tokens_per_day, updated_at) "
                "VALUES (?, ?, ?) ON CONFLICT (tenant) DO UPDATE SET "
                "tokens_per_day = excluded.tokens_per_day, updated_at = excluded.updated_at",
                (tenant, tokens_per_day, time.time()),
            )
        self._cache.pop(tenant, None)

    def get(self, tenant: str) -> int | None:
        """The tenant's tokens per day, or None."""
        rows = self.db.query(
            "SELECT tokens_per_day FROM cadre_tenant_budgets WHERE tenant = ?", (tenant,)
        )
        return int(rows[0]["tokens_per_day"]) if rows else None

    def used_today(self, tenant: str, exclude: Collection[str] = ()) -> int:
        """Input and output tokens of the tenant's runs created today (UTC), but ``exclude``."""
        return self._used(tenant, day_start(), exclude)

    def show(self, tenant: str) -> TenantBudget:
        return TenantBudget(tenant, self.get(tenant), self.used_today(tenant))

    def list(self) -> list[TenantBudget]:
        """Every tenant with a budget, by name."""
        rows = self.db.query(
            "SELECT tenant, tokens_per_day FROM cadre_tenant_budgets ORDER BY tenant"
        )
        return [
            TenantBudget(r["tenant"], int(r["tokens_per_day"]), self.used_today(r["tenant"]))
            for r in rows
        ]

    def _used(self, tenant: str, since: float, exclude: Collection[str]) -> int:
        sql = (
            "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS used FROM cadre_runs "
            "WHERE tenant = ? AND created_at >= ?"
        )
        if exclude:
            sql += f" AND id NOT IN ({', '.join('?' for _ in exclude)})"
        return int(self.db.query(sql, (tenant, since, *exclude))[0]["used"])

    # -- the Ledger a TokenBudget checks calls against ----------------------------------------

    async def recorded(self, run_id: str) -> tuple[int, float]:
        rows = await asyncio.to_thread(
            self.db.query,
            "SELECT input_tokens + output_tokens AS used, created_at FROM cadre_runs WHERE id = ?",
            (run_id,),
        )
        return (int(rows[0]["used"]), float(rows[0]["created_at"])) if rows else (0, time.time())

    async def tenant_limit(self, tenant: str) -> int | None:
        now = time.monotonic()
        cached = self._cache.get(tenant)
        if cached is None or now - cached[0] > self.cache_s:
            cached = (now, await asyncio.to_thread(self.get, tenant))
            self._cache[tenant] = cached
        return cached[1]

    async def tenant_used(self, tenant: str, since: float, exclude: Collection[str]) -> int:
        return await asyncio.to_thread(self._used, tenant, since, exclude)


def token_budget(db: Database) -> TokenBudget:
    """The budget check a runner gives its graphs: workflow budgets, and tenants' daily ones."""
    return TokenBudget(TenantBudgets(db))
