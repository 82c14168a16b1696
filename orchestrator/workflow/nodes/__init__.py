"""One module per node kind, each turning its spec into LangGraph nodes and edges (``build``).

The kinds' models stay in ``workflow/spec.py`` and their load-time checks and successors in
``workflow/checks.py``: a workflow is read and checked (``cadre validate``, every catalog load)
without importing LangGraph, which costs about 0.5 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.workflow.nodes import branch, map, memory, plan, review, specialist, tool
from orchestrator.workflow.nodes.base import NodeBuilder

BUILD: dict[str, Callable[[Any, NodeBuilder], None]] = {
    "specialist": specialist.build,
    "tool": tool.build,
    "review": review.build,
    "branch": branch.build,
    "map": map.build,
    "plan": plan.build,
    "memory": memory.build,
}
"""How each kind of node is built, by the spec's ``kind``."""
