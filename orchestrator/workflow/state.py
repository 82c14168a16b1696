"""A workflow's LangGraph state: its declared keys plus internal channels with reducers.

``_usage`` (tokens per specialist, summed), ``_tools`` (tool time, summed), ``_parts`` (map and
plan results by index), ``_expect`` (how many results each map or plan waits for), ``_plans``,
``_routes`` and ``_approvals`` (updated key by key).
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from orchestrator.specialists.calls import SpecialistAnswer
from orchestrator.workflow.spec import WorkflowSpec

TOKEN = "token"
"""The key of a piece of streamed text in the graph's custom stream (see ``nodes.base``)."""
INTERNAL_KEYS = ("_usage", "_tools", "_parts", "_plans", "_routes", "_expect", "_approvals")


def add_usage(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: tokens and calls per specialist, summed."""
    out = {name: dict(u) for name, u in (left or {}).items()}
    for name, usage in (right or {}).items():
        current = out.setdefault(name, {})
        for field, value in usage.items():
            current[field] = current.get(field, 0) + value
    return out


def merge_parts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: results of map/plan items by node and index; ``{node: None}`` resets a node."""
    out = dict(left or {})
    for node, items in (right or {}).items():
        if items is None:
            out.pop(node, None)
        else:
            out[node] = {**out.get(node, {}), **items}
    return out


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: a dict updated key by key."""
    return {**(left or {}), **(right or {})}


def state_type(spec: WorkflowSpec) -> type:
    fields: dict[str, Any] = {key: Any for key in spec.state_schemas()}
    fields.update(
        _usage=Annotated[dict, add_usage],
        _parts=Annotated[dict, merge_parts],
        _plans=Annotated[dict, merge],
        _routes=Annotated[dict, merge],
        _expect=Annotated[dict, merge],
        _tools=Annotated[dict, add_usage],
        _approvals=Annotated[dict, merge],
    )
    return TypedDict(f"State_{spec.name.replace('-', '_')}", fields, total=False)  # type: ignore[operator,no-any-return]


def usage_of(answer: SpecialistAnswer) -> dict[str, dict[str, float]]:
    """One call's accounting for the ``_usage`` channel (summed per specialist); a call an
    adapter answered also counts under ``adapter SPECIALIST/vN``, so results stay attributable."""
    usage: dict[str, float] = {
        "calls": 1,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "model_time_s": answer.model_time_s,
        "queue_time_s": answer.queue_time_s,
    }
    if answer.adapter:
        usage[f"adapter {answer.adapter}"] = 1
    return {answer.specialist: usage}
