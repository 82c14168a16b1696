"""What every command shares: its consoles show control characters as escapes."""

from __future__ import annotations

import io

from orchestrator.cli.common import _Console


def test_control_characters_are_printed_as_escapes_not_sent_to_the_terminal() -> None:
    buffer = io.StringIO()
    console = _Console(file=buffer, highlight=False, width=200)
    console.print("by ev\x1b]0;pwned\x07il\rX, a \u009b31m, tab\tand\nline é")
    shown = buffer.getvalue()
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "ev\\x1b]0;pwned\\x07il\\x0dX, a \\x9b31m" in shown
    assert shown.endswith("line é\n")  # line feeds and text stay as they are


def test_text_direction_controls_are_printed_as_escapes() -> None:
    buffer = io.StringIO()
    _Console(file=buffer, highlight=False, width=200).print("policy \u202egnp.exe\u202c, ok مرحبا")
    shown = buffer.getvalue()
    assert "\u202e" not in shown and "\u202c" not in shown
    assert "policy \\u202egnp.exe\\u202c, ok مرحبا" in shown  # right-to-left text itself stays


def test_table_cells_show_hidden_characters_as_escapes() -> None:
    from orchestrator.cli.common import visible

    assert visible("safe \u202egnp.exe\x1b[2J") == "safe \\u202egnp.exe\\x1b[2J"


def test_a_long_tenant_name_is_quoted_clipped() -> None:
    import pytest

    from orchestrator.errors import InputError
    from orchestrator.runs.budget import check_tenant

    with pytest.raises(InputError) as info:
        check_tenant("t" * 5000)
    assert len(info.value.message) < 200 and "more characters cut" in info.value.message
