"""A safe calculator: arithmetic on numbers, parsed with ``ast`` and never ``eval``.

Sizes are bounded before anything is computed: an integer result may have at most
``MAX_INT_BITS`` bits, estimated from the operands (a power's size from the base's bit length
times the exponent, a product's from the sum of the two lengths), so ``9**9**9**9`` or
``((9**1000)**1000)**1000`` is refused in microseconds instead of holding the interpreter (a big
integer power is one C call: no thread timeout can interrupt it). Floats overflow to an error,
and a result must be a finite real number. The tool also runs isolated (``Tool.isolated``): a child
process that is killed at the timeout, whatever the expression does.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.errors import InputError
from orchestrator.tools.base import Tool, ToolContext

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "sqrt": math.sqrt,
}
MAX_INT_BITS = 4096
"""The largest integer result, in bits (about 1,200 decimal digits): more than any amount needs."""


class CalculatorArgs(BaseModel):
    """Arguments of the calculator tool."""

    expression: str = Field(
        min_length=1,
        max_length=500,
        description="Arithmetic such as `0.8 * (12500 - 500)`; + - * / // % **, parentheses, "
        "min, max, abs, round, sqrt.",
    )


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression; InputError for anything that is not arithmetic
    or whose result would be too large."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise InputError(f"calculator: cannot parse {expression!r}: {err.msg}") from None
    except (RecursionError, MemoryError):
        raise InputError(f"calculator: {expression!r} is nested too deeply") from None
    try:
        value: float | int = _eval(tree.body)
        return value
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as err:
        raise InputError(f"calculator: {expression!r}: {err}") from None
    except RecursionError:
        raise InputError(f"calculator: {expression!r} is nested too deeply") from None


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        _check_size(node.op, left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        args = [_eval(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2 and isinstance(args[1], int):
            args[1] = max(-MAX_INT_BITS, min(MAX_INT_BITS, args[1]))  # same value, bounded work
        return _checked(_FUNCS[node.func.id](*args))
    raise InputError(f"calculator: only arithmetic is allowed, not {ast.unparse(node)!r}")


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse an integer operation whose result would pass MAX_INT_BITS, before computing it."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return  # float arithmetic is bounded: it overflows to an error
    if isinstance(op, ast.Pow):
        if right < 0 or abs(left) <= 1:
            return  # a float, or 0, 1 or -1
        bits = (abs(left).bit_length() - 1) * right + 1  # a lower bound of the result's length
    elif isinstance(op, ast.Mult):
        bits = abs(left).bit_length() + abs(right).bit_length() - 1
    else:
        return  # + - // % and / grow by a bit at most
    if bits > MAX_INT_BITS:
        raise ValueError(f"the result is too large (over {MAX_INT_BITS} bits)")


def _checked(value: Any) -> Any:
    """A result the next step and the run's state can hold: a finite real number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the result is not a real number ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError("the result is not a finite number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"the result is too large (over {MAX_INT_BITS} bits)")
    return value


def calculate(args: CalculatorArgs, context: ToolContext) -> float | int:
    """The calculator tool's function (module level, so an isolated child can import it)."""
    return evaluate(args.expression)


CALCULATOR = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression exactly (no code execution).",
    args=CalculatorArgs,
    fn=calculate,
    isolated=True,
)
