"""The typed error tree.

Every error Cadre raises on purpose is a :class:`CadreError`. They split by whose move it is:

    CadreError
    ├── UserError                 the user wrote or asked for something wrong; exit code 2
    │   ├── CatalogError          specs on disk do not load or do not agree (all problems at once)
    │   ├── NotFoundError         a name that is not in the catalog
    │   └── InputError            a request that cannot be served as given
    │       └── ContextLengthError    the prompt does not fit the model's context
    └── RunError                  a run failed while doing its work; exit code 1
        ├── EngineError           the model engine failed or answered badly
        │   └── OutputSchemaError     the answer does not fit the specialist's output schema
        ├── HostUnavailableError  a model host died and did not come back within the retry bound
        └── BudgetExceeded        a call or a fan-out would go over a token budget; not made

Errors cross Ray actor boundaries, so each one pickles with its fields (``__reduce__``).
"""

from __future__ import annotations

from dataclasses import dataclass


class CadreError(Exception):
    """Base of every error Cadre raises on purpose. ``str(err)`` is the message a user sees."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

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


class InputError(UserError):
    """A request that cannot be served as given (empty text, too long, bad value)."""


class ConflictError(InputError):
    """A request that clashes with what already happened (a review already decided, a run
    already finished, an idempotency key used for something else)."""


class ContextLengthError(InputError):
    """The prompt needs more tokens than the model's context holds."""

    def __init__(self, message: str, prompt_tokens: int, context_length: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.message, self.prompt_tokens, self.context_length))


class RunError(CadreError):
    """A run failed while doing its work (not the user's mistake)."""


class EngineError(RunError):
    """The model engine failed or returned something unusable."""


class OutputSchemaError(EngineError):
    """The model's answer is not JSON that fits the specialist's output schema."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.__class__, (self.message, self.raw))


class HostUnavailableError(RunError):
    """A model host died and the call could not be served within the retry bound."""


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
