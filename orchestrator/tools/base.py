"""A tool: a Python callable with a pydantic argument model and a description."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import InputError


@dataclass(frozen=True)
class Tool:
    """A registered tool. ``args`` validates what a caller passes before ``fn`` sees it."""

    name: str
    description: str
    args: type[BaseModel]
    fn: Callable[[Any], Any]
    side_effect: bool = False
    """True when calling it changes the world (it then gets an idempotency key on resume)."""

    def __call__(self, raw_args: dict[str, Any]) -> Any:
        """Validate ``raw_args`` and call the tool; bad arguments raise InputError naming them."""
        try:
            args = self.args.model_validate(raw_args)
        except ValidationError as err:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in err.errors()
            )
            raise InputError(f"tool {self.name!r}: bad arguments: {details}") from None
        return self.fn(args)
