"""The typed error tree.

Every error Cadre raises on purpose is a :class:`CadreError`. They split by whose move it is:

    CadreError                                                          exit  HTTP
    ├── UserError                 the user wrote or asked for something wrong  2   500
    │   ├── CatalogError          specs on disk do not load or do not agree        500
    │   │                         (all problems at once)
    │   ├── NotFoundError         a name that is not in the catalog                 404
    │   ├── InputError            a request that cannot be served as given          422
    │   │   ├── ConflictError     it clashes with what already happened             409
    │   │   ├── ContextLengthError    the prompt does not fit the model's context   422
    │   │   └── DataError         a data file with problems (each one listed)       422
    │   └── ApiError              an HTTP refusal with its own status and headers  (its own)
    └── RunError                  a run failed while doing its work           1   500
        ├── EngineError           the model engine failed or answered badly
        │   └── OutputSchemaError     the answer does not fit the specialist's output schema
        ├── HostUnavailableError  a model host died and did not come back within the retry bound
        ├── ToolTimeoutError      a tool did not answer within its timeout (and was stopped)
        └── BudgetExceeded        a call or a fan-out would go over a token budget; not made

``exit_code`` is what the CLI exits with, ``http_status`` and ``kind`` what the API answers with
(the status, and the machine-readable type of its error body). A UserError the API caller did
not make (the server's catalog or install) answers 500. Errors cross Ray actor boundaries, so
each one pickles with its fields (``__reduce__``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class CadreError(Exception):
    """Base of every error Cadre raises on purpose. ``str(err)`` is the message a user sees."""

    exit_code = 1
    http_status = 500
    kind = ""
    """The API error body's ``type``; empty means the class name."""
    headers = NO_HEADERS
    """Extra response headers the API sends with it (``Retry-After``, ``Allow``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def type_name(self) -> str:
        """The machine-readable type the API names it by."""
        return self.kind or type(self).__name__

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.message,))


class UserError(CadreError):
    """The user's move: a spec, a name or an input that is wrong. Never shown as a traceback."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the catalog: where it is (file, field) and what to do about it."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class CatalogError(UserError):
    """The catalog does not load: carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the catalog:\n{lines}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.problems,))


class NotFoundError(UserError):
    """A name (specialist, model, tool) that the catalog does not have."""

    http_status = 404
    kind = "not_found"


class InputError(UserError):
    """A request that cannot be served as given (empty text, too long, bad value)."""

    http_status = 422
    kind = "invalid_input"


class ConflictError(InputError):
    """A request that clashes with what already happened (a review already decided, a run
    already finished, an idempotency key used for something else)."""

    http_status = 409
    kind = "conflict"


class ApprovalsChanged(ConflictError):
    """A review that needs several approvals gained one while another reviewer's decision was
    being written; the decision is made again from the review as it now is."""


class ContextLengthError(InputError):
    """The prompt needs more tokens than the model's context holds."""

    def __init__(self, message: str, prompt_tokens: int, context_length: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.message, self.prompt_tokens, self.context_length))


class DataError(InputError):
    """A data file with problems; ``problems`` lists each as ``FILE:LINE: why``."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(
            f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} in {path}; "
            f"nothing was trained:\n{shown}{more}"
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.path, self.problems))


class ApiError(UserError):
    """An HTTP refusal with a machine-readable type and a message for people (a wrong key, a
    rate limit, a body too large), and the headers that go with it."""

    def __init__(
        self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.http_status, self.kind = status, kind
        self.headers = MappingProxyType(dict(headers or {}))

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.http_status, self.kind, self.message, dict(self.headers)))


def missing_dependency(what: str, err: ImportError, remedy: str = "run `make setup`") -> UserError:
    """The one error for a library Cadre needs and cannot import: what needs it, the module
    that is missing, and the command that installs it."""
    module = err.name or str(err)  # ray.train raises its own ImportError, with no name
    return UserError(f"{what} ({module} is missing); {remedy}")


class RunError(CadreError):
    """A run failed while doing its work (not the user's mistake)."""


class DatabaseUnavailable(CadreError):
    """The run database cannot be reached now (Postgres restarting, the network down): a
    request is answered 503 and may be tried again; nothing was written."""

    http_status = 503
    kind = "database_unavailable"
    headers = MappingProxyType({"Retry-After": "5"})


class EngineError(RunError):
    """The model engine failed or returned something unusable."""


class OutputSchemaError(EngineError):
    """The model's answer is not JSON that fits the specialist's output schema. The tokens the
    answer took are kept: the call was made, and a run's usage counts it."""

    def __init__(self, message: str, raw: str, input_tokens: int = 0, output_tokens: int = 0):
        super().__init__(message)
        self.raw = raw
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (
            self.__class__,
            (self.message, self.raw, self.input_tokens, self.output_tokens),
        )


class HostUnavailableError(RunError):
    """A model host died and the call could not be served within the retry bound."""


class ToolTimeoutError(RunError):
    """A tool did not answer within its timeout (and was stopped)."""


class BudgetExceeded(RunError):
    """A specialist call, or a map's or plan's fan-out, would take a run over a token budget
    (the workflow's per run, or the tenant's per UTC day); it stopped before the call.

    ``scope`` is ``workflow`` or ``tenant``; ``limit`` the budget; ``used`` the tokens already
    used or reserved by calls in flight; ``needed`` the estimate of what was refused.
    """

    exit_code = 1

    def __init__(self, message: str, scope: str, limit: int, used: int, needed: int) -> None:
        super().__init__(message)
        self.scope = scope
        self.limit = limit
        self.used = used
        self.needed = needed

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.message, self.scope, self.limit, self.used, self.needed))


# -- messages of bounded length --------------------------------------------------------------------
#
# Error messages of bounded length.
#
# pydantic and jsonschema write the offending value into their messages (``[...] is not of type
# 'object'``). A hostile or merely large value (a 10 MB input, a schema made of YAML aliases) would
# then become a 10 MB error message, printed, logged and stored in a run record. Every message built
# from a validator's text goes through :func:`clip`, and jsonschema's through
# :func:`schema_message`, which also says what kind of value was cut.

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


def schema_misfit(
    schema: Mapping[str, Any] | jsonschema.protocols.Validator,
    value: Any,
    root: str = "",
    sep: str = "/",
) -> tuple[str, str] | None:
    """Where ``value`` fails ``schema`` (a JSON Schema, or a validator made from one) and why,
    as ``(path, message)``; None when it fits. Of several failures, jsonschema's best match.
    The path is ``root`` and the keys down to the failing part, joined with ``sep``; it is
    empty when the value as a whole fails and there is no root (the caller names the whole)."""
    validator = jsonschema.Draft202012Validator(schema) if isinstance(schema, Mapping) else schema
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    parts = [root] if root else []
    return sep.join([*parts, *(str(p) for p in error.absolute_path)]), schema_message(error)


def person_name(value: str, what: str) -> str:
    """``value`` as a name that signs an audit trail (a reviewer, an API key's holder), or
    InputError: not empty, at most 200 characters, no control characters (a name is printed
    to terminals and pages)."""
    shown = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if not value.strip():
        raise InputError(f"{what}: give a name, not an empty one")
    if len(value) > 200:
        raise InputError(f"{what} {clip(shown, 40)!r}: at most 200 characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise InputError(f"{what} {clip(shown, 80)!r}: no control characters")
    return value


MAX_JSON_DEPTH = 64
"""How deep run inputs and review edits may nest (lists and objects); deeper is refused."""

SURROGATE = (
    "holds an unpaired UTF-16 surrogate (such as \\ud800), which is not text; send the "
    "character itself, or both halves of its pair"
)


def unfit_json(value: Any, path: str = "") -> tuple[str, str] | None:
    """Where and why JSON data ``value`` cannot be taken as it is, or None if it can.

    Refused: a string or key holding an unpaired UTF-16 surrogate (``"\\ud800"`` parses but
    is not text: it cannot be written as UTF-8), nesting deeper than :data:`MAX_JSON_DEPTH`, an
    integer outside 64 bits, and NaN or infinity (Python's JSON reads them; JSON has no such
    numbers). Where is a ``/``-joined path below ``path`` (``path`` itself for ``value``). The
    walk is iterative, so any depth is found without recursion."""
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return where, SURROGATE
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                return where, "is an integer outside 64 bits; send it as a string"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, f"is {item}, which is not a JSON number"
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return where, f"nests lists and objects more than {MAX_JSON_DEPTH} deep"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, inner in pairs:
                # A key is named with its surrogate escaped: the error must be text itself.
                name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
                inside = f"{where}/{name}" if where else name
                if name != str(key):
                    return inside, SURROGATE
                stack.append((inner, inside, depth + 1))
    return None
