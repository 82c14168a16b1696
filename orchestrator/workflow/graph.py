"""Compile a checked WorkflowSpec into a LangGraph graph.

Each spec node becomes one LangGraph node, built by its kind's module in ``nodes/`` (map and plan
nodes add a worker, an optional per-item review, and a deferred join). State is a TypedDict of the
workflow's keys plus internal channels with reducers (``state.py``).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph

from orchestrator.catalog import SpecialistCatalog
from orchestrator.specialists.asking import Asker
from orchestrator.workflow.budget import TokenBudget
from orchestrator.workflow.nodes import BUILD
from orchestrator.workflow.nodes.base import Guard, NodeBuilder
from orchestrator.workflow.spec import WorkflowSpec


class GraphBuilder(NodeBuilder):
    """Builds the LangGraph StateGraph for one workflow spec, node by node."""

    def build(self) -> StateGraph[Any]:
        self.graph.add_edge(START, self.spec.start)
        for node in self.spec.nodes:
            BUILD[node.kind](node, self)
        return self.graph


def compile_workflow(
    spec: WorkflowSpec,
    catalog: SpecialistCatalog,
    asker: Asker | None = None,
    checkpointer: Any = None,
    store: Any = None,
    corpora: Any = None,
    budget: TokenBudget | None = None,
    guard: Guard | None = None,
) -> Any:
    """The runnable LangGraph graph for a checked workflow spec; ``budget`` holds its calls to
    the workflow's token budget and, with a ledger, to tenants' daily budgets; ``guard`` is
    awaited with the run id before each model and tool call (a driver's check that it still
    holds the run)."""
    graph = GraphBuilder(spec, catalog, asker, corpora, budget, guard).build()
    return graph.compile(checkpointer=checkpointer, store=store)


def mermaid(spec: WorkflowSpec, catalog: SpecialistCatalog) -> str:
    """The workflow drawn as a Mermaid flowchart."""
    return str(compile_workflow(spec, catalog).get_graph().draw_mermaid())
