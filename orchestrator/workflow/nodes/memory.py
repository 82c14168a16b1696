"""A memory node: read the records most like a query from the run's tenant's memory, or write
one with its provenance (run, workflow, node, who approved). Always inside the tenant."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config, get_store

from orchestrator import telemetry
from orchestrator.config import DEFAULT_TENANT
from orchestrator.telemetry import gen_ai
from orchestrator.workflow.nodes.base import NodeBuilder, target
from orchestrator.workflow.spec import MemoryNode, MemoryRead, MemoryWrite
from orchestrator.workflow.templates import render


def approvers(approvals: dict[str, Any]) -> list[str]:
    """Everyone who approved a review of the run so far (a review that needs several approvals
    records a list of names), sorted and each once."""
    names: set[str] = set()
    for who in approvals.values():
        names.update([who] if isinstance(who, str) else who or [])
    return sorted(name for name in names if name)


def memory_namespace(
    tenant: str, scope: str, workflow: str, run_id: str, memory: str
) -> tuple[str, ...]:
    """Where a memory node reads and writes: always inside the run's tenant."""
    where = {"global": ("global",), "workflow": ("workflow", workflow), "run": ("run", run_id)}
    return ("tenant", tenant, *where[scope], memory)


def build(node: MemoryNode, b: NodeBuilder) -> None:
    async def run(state: dict[str, Any]) -> dict[str, Any]:
        store = get_store()
        configurable = get_config().get("configurable", {})
        run_id = configurable.get("thread_id", "")
        namespace = memory_namespace(
            configurable.get("tenant", DEFAULT_TENANT),
            node.scope,
            b.spec.name,
            run_id,
            node.memory,
        )
        attributes = {
            **b.run_attributes(node.id),
            "cadre.memory.op": node.op,
        }
        if isinstance(node, MemoryRead):
            query = render(node.query, state)
            searched = {**attributes, gen_ai.OPERATION_NAME: gen_ai.RETRIEVAL}
            with telemetry.span(f"retrieval memory:{node.memory}", searched):
                found = await store.asearch(namespace, query=query, limit=node.top_k)
            records = [
                {
                    "text": i.value.get("text"),
                    "score": round(i.score or 0.0, 4),
                    "provenance": i.value.get("provenance", {}),
                }
                for i in found
            ]
            return {node.output: records}
        provenance = {
            "run": run_id,
            "workflow": b.spec.name,
            "node": node.id,
            "approved_by": approvers(state.get("_approvals", {})),
        }
        assert isinstance(node, MemoryWrite)
        value = {"text": render(node.text, state), "provenance": provenance}
        # Keyed by run, node and step: each pass of a loop keeps its own record, and a resumed
        # run, doing a step again, overwrites that step's record instead of doubling it.
        step = get_config().get("metadata", {}).get("langgraph_step", 0)
        with telemetry.span("cadre.memory.write", attributes):
            await store.aput(namespace, f"{run_id}:{node.id}:{step}", value, ttl=node.ttl_minutes)
        return {}

    b.add(node.id, run)
    b.graph.add_edge(node.id, target(node.next))
