"""A safe calculator: arithmetic on numbers, parsed with ``ast`` and never ``eval``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.errors import InputError
from orchestrator.tools.base import Tool

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
_MAX_EXPONENT = 1000


class CalculatorArgs(BaseModel):
    """Arguments of the calculator tool."""

    expression: str = Field(
        min_length=1,
        max_length=500,
        description="Arithmetic such as `0.8 * (12500 - 500)`; + - * / // % **, parentheses, "
        "min, max, abs, round, sqrt.",
    )


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression; InputError for anything that is not arithmetic."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise InputError(f"calculator: cannot parse {expression!r}: {err.msg}") from None
    try:
        return _eval(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as err:
        raise InputError(f"calculator: {expression!r}: {err}") from None


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
    raise InputError(f"calculator: only arithmetic is allowed, not {ast.unparse(node)!r}")


CALCULATOR = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression exactly (no code execution).",
    args=CalculatorArgs,
    fn=lambda args, context: evaluate(args.expression),
)
