"""A tool: a Python callable with a pydantic argument model and a description.

Tools are called with validated arguments and a :class:`ToolContext` (where the catalog and the
run database are, which run and node are calling, and the deadline the call must finish by).
A tool that changes the world declares ``side_effect=True``; :mod:`orchestrator.tools.runner` then
makes sure a node re-run after a crash does not do it twice. A tool that runs untrusted work which
may hold the interpreter (a big computation in one C call) declares ``isolated=True``: it runs in a
child process that is killed at its timeout (:mod:`orchestrator.tools.isolation`).
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
    deadline: float | None = None
    """``time.monotonic()`` by which the call must end (set by the runner from the timeout);
    a tool that can stop itself (a SQLite progress handler, a socket timeout) stops there."""
    idempotency_key: str | None = None
    """For a ``transactional`` side effect: the key to commit in the same transaction as the
    effect (see :func:`orchestrator.tools.idempotency.claim`)."""


@dataclass(frozen=True)
class Tool:
    """A registered tool. ``args`` validates what a caller passes before ``fn`` sees it."""

    name: str
    description: str
    args: type[BaseModel]
    fn: Callable[[Any, ToolContext], Any]
    side_effect: bool = False
    """True when calling it changes the world. The runner reserves its idempotency key before
    the call and records the outcome after it, so a re-run never repeats a call that may have
    happened."""
    transactional: bool = False
    """For a side effect that is a write to the run database (the outbox): the tool commits
    ``context.idempotency_key`` in the same transaction as the write, so the effect and the
    record of it happen together or not at all."""
    isolated: bool = False
    """Run in a child process that is killed at the timeout (``fn`` and ``args`` must be
    importable module-level names; arguments and result travel as JSON)."""

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
