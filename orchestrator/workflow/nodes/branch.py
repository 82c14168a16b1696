"""A branch: the first case whose condition holds of state, or the case a router specialist
picks; otherwise the default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.workflow.nodes.base import NodeBuilder, target
from orchestrator.workflow.spec import BranchNode, Condition
from orchestrator.workflow.state import usage_of
from orchestrator.workflow.templates import lookup, render

_MISSING = object()


def holds(condition: Condition, state: dict[str, Any]) -> bool:
    """Whether a branch condition is true of state (a missing value is false)."""
    value = lookup(state, condition.key, _MISSING)
    if condition.op == "exists":
        return value is not _MISSING and value is not None
    if value is _MISSING:
        return False
    if condition.op == "truthy":
        return bool(value)
    compare: dict[str, Callable[[], bool]] = {
        "eq": lambda: value == condition.value,
        "ne": lambda: value != condition.value,
        "gt": lambda: value > condition.value,
        "ge": lambda: value >= condition.value,
        "lt": lambda: value < condition.value,
        "le": lambda: value <= condition.value,
        "in": lambda: value in condition.value,
        "not_in": lambda: value not in condition.value,
    }
    try:
        return compare[condition.op]()
    except TypeError:
        return False


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
                if state.get("_routes", {}).get(node.id) == case.equals:
                    return target(case.next)
            elif case.when is not None and holds(case.when, state):
                return target(case.next)
        return target(node.default)

    targets = sorted({target(c.next) for c in node.cases} | {target(node.default)})
    b.add(node.id, run)
    b.graph.add_conditional_edges(node.id, choose, targets)
