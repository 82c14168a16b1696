"""CLI commands for tenants: ``tenants budget`` (set, remove or show a daily token budget) and
``tenants list``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from orchestrator.cli.common import out
from orchestrator.errors import InputError

tenants_app = typer.Typer(help="Tenants' daily token budgets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")


def _budgets() -> Any:
    from orchestrator.runs.budget import TenantBudgets
    from orchestrator.runs.store import RunStore
    from orchestrator.storage.database import Database

    db = Database()
    RunStore(db)  # the runs table, whose tokens count against budgets
    return TenantBudgets(db)


def _left(budget: Any) -> str:
    if budget.tokens_per_day is None:
        return "-"
    return str(max(0, budget.tokens_per_day - budget.used_today))


@tenants_app.command("budget")
def tenants_budget(
    tenant: Annotated[str, typer.Argument(help="The tenant (as its API keys name it).")],
    tokens_per_day: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional here
        typer.Option(
            "--tokens-per-day",
            min=1,
            max=2**63 - 1,
            help="Input + output tokens all the tenant's runs created in one UTC day may use.",
            show_default=False,
        ),
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Take the budget away.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Set, remove or show a tenant's daily token budget. A call that would take the tenant's
    runs over it stops before it is made (BudgetExceeded); the budget renews at 00:00 UTC."""
    if remove and tokens_per_day is not None:
        raise InputError("give --tokens-per-day or --remove, not both")
    budgets = _budgets()
    if remove or tokens_per_day is not None:
        budgets.set(tenant, tokens_per_day)
    budget = budgets.show(tenant)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "tenant": budget.tenant,
                    "tokens_per_day": budget.tokens_per_day,
                    "used_today": budget.used_today,
                }
            )
        )
        return
    if budget.tokens_per_day is None:
        line = f"{tenant}: no daily token budget; {budget.used_today} tokens used today (UTC)"
    else:
        line = (
            f"{tenant}: {budget.tokens_per_day} tokens a day; {budget.used_today} used today "
            f"(UTC), {_left(budget)} left"
        )
    out.print(line, markup=False)


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant with a daily token budget, and what its runs used today (UTC)."""
    table = Table()
    for column in ("tenant", "tokens/day", "used today", "left"):
        table.add_column(column, no_wrap=column == "tenant")
    for budget in _budgets().list():
        table.add_row(
            budget.tenant, str(budget.tokens_per_day), str(budget.used_today), _left(budget)
        )
    out.print(table)
