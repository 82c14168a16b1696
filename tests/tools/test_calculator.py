from __future__ import annotations

import pytest

from orchestrator.errors import InputError
from orchestrator.tools import registry


def test_arithmetic() -> None:
    calc = registry()["calculator"]
    assert calc({"expression": "0.8 * (12500 - 500)"}) == pytest.approx(9600)
    assert calc({"expression": "max(0, 100 - 250) + round(2.5 ** 2)"}) == 6
    assert calc({"expression": "-7 // 2 % 5"}) == 1


@pytest.mark.parametrize(
    "expression, message",
    [
        ("__import__('os').system('true')", "only arithmetic"),
        ("(1).__class__", "only arithmetic"),
        ("2 ** 100000", "too large"),
        ("1 / 0", "division by zero"),
        ("1 +", "cannot parse"),
        ("'a' * 3", "only arithmetic"),
    ],
)
def test_refuses_anything_but_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        registry()["calculator"]({"expression": expression})


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(InputError, match="expression: Field required"):
        registry()["calculator"]({"expr": "1+1"})
