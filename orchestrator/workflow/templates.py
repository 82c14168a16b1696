"""Templates over state: ``"Claim: {claim} (amount {fields.amount})"``.

A placeholder is a dotted path into state; its first part must be a state key, which the compile
step checks. Strings are inserted as they are, anything else as JSON, and a value not set yet as
empty text. ``{{`` and ``}}`` are literal braces; what looks like a placeholder but is none
(``{ text }``, ``{amount:.2f}``, an unclosed ``{text``) is refused by the compile step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
_MISSING = object()


_LOOKS_LIKE = re.compile(
    r"\{\s*[A-Za-z0-9_.]*\s*(?:[:!][^{}]*)?\}|\{[A-Za-z_][A-Za-z0-9_.]*(?![A-Za-z0-9_.}])"
)
"""What an author may mean as a placeholder but is none: ``{ text }``, ``{text:>9}``,
``{text!r}``, ``{0}``, ``{}``, an unclosed ``{text``."""


def same(a: Any, b: Any) -> bool:
    """Equality as JSON has it: true is not 1 and false is not 0 (Python says they are);
    1 and 1.0 are the same number; lists and objects compare member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def malformed(template: str) -> list[str]:
    """The pieces of ``template`` that look like placeholders but are none (they would be
    sent as they are): for the compile step to name."""
    rest = _PLACEHOLDER.sub(" ", template)
    return [m.group(0) for m in _LOOKS_LIKE.finditer(rest)]


def placeholders(template: str) -> list[str]:
    """The dotted paths a template refers to, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def lookup(state: Mapping[str, Any], path: str, default: Any = _MISSING) -> Any:
    """The value at a dotted path (``fields.amount``, ``items.0``); KeyError if absent."""
    value: Any = state
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            if default is not _MISSING:
                return default
            raise KeyError(path)
    return value


def whole(template: str) -> str | None:
    """The path of a template that is one placeholder and nothing else (``{amount}``)."""
    match = _PLACEHOLDER.fullmatch(template.strip())
    return match.group(1) if match is not None else None


def render(template: str, state: Mapping[str, Any]) -> str:
    """Fill a template from state: text as it is, anything else as JSON with its characters
    kept (`Zürich`, not `Z\\u00fcrich`: a model, a person or a search reads it). The compile
    step checks every path names a state key; a key with no value yet renders as empty text."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        path = match.group(1)
        value = lookup(state, path, None)
        if value is None:
            return ""  # not set yet (e.g. review_feedback before any rejection)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(fill, template)
