"""Tools that hold the interpreter, for the timeout tests (module level: an isolated helper
process imports them by name)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from orchestrator.tools.base import Tool


class PowerArgs(BaseModel):
    exponent: int


def power(args: PowerArgs, context: Any) -> int:
    """One C call (a big-integer power): on a thread, it would hold the interpreter (and the
    event loop's timers) until done, so no thread timeout could interrupt it."""
    return len(str(10 ** (10**args.exponent) % 7))


ISOLATED_POWER = Tool(
    "isolated_power", "Computes 10**10**n, isolated.", PowerArgs, power, isolated=True
)
