"""The tool registry: tools that specialists and tool nodes may call, by name."""

from __future__ import annotations

from orchestrator.tools.base import Tool, ToolContext
from orchestrator.tools.builtins import CORPUS_SEARCH, HTTP_GET, NOTIFY, SQL_QUERY
from orchestrator.tools.calculator import CALCULATOR

__all__ = ["Tool", "ToolContext", "registry"]


def registry() -> dict[str, Tool]:
    """Every registered tool by name."""
    tools = (CALCULATOR, SQL_QUERY, CORPUS_SEARCH, HTTP_GET, NOTIFY)
    return {tool.name: tool for tool in tools}
