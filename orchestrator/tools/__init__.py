"""The tool registry: tools that specialists and tool nodes may call, by name."""

from __future__ import annotations

from orchestrator.tools.base import Tool
from orchestrator.tools.calculator import CALCULATOR

__all__ = ["Tool", "registry"]


def registry() -> dict[str, Tool]:
    """Every registered tool by name."""
    return {tool.name: tool for tool in (CALCULATOR,)}
