"""A tool: a Python callable with a pydantic argument model and a description.

Tools are called with validated arguments and a :class:`ToolContext` (where the catalog and the
run database are, and which run and node are calling). A tool that changes the world declares
``side_effect=True``; :mod:`orchestrator.tools.runner` then records its result under an
idempotency key, so a node re-run after a crash does not do it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import InputError


@dataclass(frozen=True)
class ToolContext:
    """What a tool may know about where it runs."""

    catalog_root: Path = Path("agents")
    database_url: str | None = None
    run_id: str = ""
    node_id: str = ""


@dataclass(frozen=True)
class Tool:
    """A registered tool. ``args`` validates what a caller passes before ``fn`` sees it."""

    name: str
    description: str
    args: type[BaseModel]
    fn: Callable[[Any, ToolContext], Any]
    side_effect: bool = False
    """True when calling it changes the world (it then gets an idempotency key on resume)."""

    def validate(self, raw_args: dict[str, Any]) -> BaseModel:
        """The arguments, checked; bad ones raise InputError naming each field."""
        try:
            return self.args.model_validate(raw_args)
        except ValidationError as err:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in err.errors()
            )
            raise InputError(f"tool {self.name!r}: bad arguments: {details}") from None

    def __call__(self, raw_args: dict[str, Any], context: ToolContext | None = None) -> Any:
        """Validate ``raw_args`` and call the tool (no timeout, no idempotency: see runner)."""
        return self.fn(self.validate(raw_args), context or ToolContext())
