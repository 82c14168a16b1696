"""Error messages of bounded length.

pydantic and jsonschema write the offending value into their messages (``[...] is not of type
'object'``). A hostile or merely large value (a 10 MB input, a schema made of YAML aliases) would
then become a 10 MB error message, printed, logged and stored in a run record. Every message built
from a validator's text goes through :func:`clip`, and jsonschema's through
:func:`schema_message`, which also says what kind of value was cut.
"""

from __future__ import annotations

from typing import Any

import jsonschema

MESSAGE_LIMIT = 300
"""Most characters of a validator's message kept in an error."""


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text``, or its first ``limit`` characters and how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters cut)"


def kind_of(value: Any) -> str:
    """What a value is, in a few words and without its contents: ``a list of 9 items``."""
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def schema_message(
    error: jsonschema.ValidationError | jsonschema.SchemaError, limit: int = MESSAGE_LIMIT
) -> str:
    """jsonschema's message for ``error``, clipped; a clipped one names the keyword that failed
    and the kind of value (its path is the caller's to give, in the caller's notation)."""
    message = error.message
    if len(message) <= limit:
        return message
    return f"{message[:limit]}… (cut; `{error.validator}` failed on {kind_of(error.instance)})"
