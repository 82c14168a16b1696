"""A branch: the first case whose condition holds of state, or the case a router specialist
picks; otherwise the default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.errors import RunError, clip, kind_of
from orchestrator.workflow.nodes.base import NodeBuilder, target
from orchestrator.workflow.spec import BranchNode, Condition
from orchestrator.workflow.state import usage_of
from orchestrator.workflow.templates import lookup, render, same

_MISSING = object()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ordered(a: Any, b: Any) -> bool:
    """Whether two values compare by order: two numbers, or two texts (not true and 1)."""
    return (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))


def holds(condition: Condition, state: dict[str, Any]) -> bool:
    """Whether a branch condition is true of state (a missing or null value is false). Values
    compare as JSON does: true is not 1. Only numbers with numbers or texts with texts compare
    by order; any other pair is RunError, not false: a rule such as ``payout gt "1000"`` that
    quietly never held would send every run down the default, past its review gate."""
    value = lookup(state, condition.key, _MISSING)
    if condition.op == "exists":
        return value is not _MISSING and value is not None
    if value is _MISSING:
        return False
    if condition.op == "truthy":
        return bool(value)
    given = condition.value
    if condition.op in ("gt", "ge", "lt", "le") and not _ordered(value, given):
        if value is None:
            return False
        raise RunError(
            f"branch condition {condition.key} {condition.op} {clip(repr(given), 60)}: "
            f"{condition.key} is {kind_of(value)} ({clip(repr(value), 60)}), which does not "
            f"compare by order with {kind_of(given)}; compare numbers with a number (no quotes) "
            "and texts with a text"
        )
    compare: dict[str, Callable[[], bool]] = {
        "eq": lambda: same(value, given),
        "ne": lambda: not same(value, given),
        "gt": lambda: value > given,
        "ge": lambda: value >= given,
        "lt": lambda: value < given,
        "le": lambda: value <= given,
        "in": lambda: any(same(value, v) for v in given),
        "not_in": lambda: not any(same(value, v) for v in given),
    }
    return compare[condition.op]()


def _holds_in(node_id: str, condition: Condition, state: dict[str, Any]) -> bool:
    try:
        return holds(condition, state)
    except RunError as err:
        raise RunError(f"branch {node_id!r}: {err}") from None


def build(node: BranchNode, b: NodeBuilder) -> None:
    router = b.catalog.specialist(node.router) if node.router else None

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        if router is None:
            return {}
        answer = await b.ask(router, render(node.input or "", state), node.id, state)
        choice = answer.output.get(node.route_on or "")
        update: dict[str, Any] = {"_routes": {node.id: choice}, "_usage": usage_of(answer)}
        if node.output:
            update[node.output] = answer.output
        return update

    def choose(state: dict[str, Any]) -> str:
        for case in node.cases:
            if router is not None:
                if same(state.get("_routes", {}).get(node.id), case.equals):
                    return target(case.next)
            elif case.when is not None and _holds_in(node.id, case.when, state):
                return target(case.next)
        return target(node.default)

    targets = sorted({target(c.next) for c in node.cases} | {target(node.default)})
    b.add(node.id, run)
    b.graph.add_conditional_edges(node.id, choose, targets)
