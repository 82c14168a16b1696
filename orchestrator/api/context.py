"""What every route shares: the process's settings, its stores, and who is calling.

One :class:`Context` per application (``app.state.cadre``). Each handler thread gets its own
database connection and stores, made on first use. The dependencies here authenticate the key,
apply its rate limit and check its role; routes name them as ``Anyone``, ``Submitter``,
``Reviewer`` or ``Admin``, and reach the context as ``Ctx``.
"""

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.api.keys import ApiKey, KeyStore
from orchestrator.api.long_polls import LongPolls
from orchestrator.api.rate_limits import RateLimits
from orchestrator.api.webhooks import Webhooks
from orchestrator.errors import ApiError, NotFoundError, clip
from orchestrator.runs.budget import TenantBudgets
from orchestrator.runs.store import ReviewRecord, RunRecord, RunStore
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import Catalog

WAIT_POLL_S = 0.05
"""How often the held long polls look at their runs again (one read for all of them)."""


@dataclass
class Settings:
    """How one API process is set up."""

    catalog: Catalog
    database_url: str
    max_body_bytes: int = 1_048_576
    rate_per_s: float = 50.0
    """Sustained requests per second allowed per key."""
    burst: int = 100
    """Requests a key may make at once before the rate applies."""
    wake: Callable[[], Any] | None = None
    """Wakes the run workers after a run or a decision is recorded (they also poll the run
    database, so a lost wake costs only latency); set by `cadre serve`."""
    max_queued_per_tenant: int = 10_000
    """Runs a tenant may have waiting for a worker; more are refused with 429."""
    escalate_poll_s: float | None = 30.0
    """The longest between two looks for overdue reviews (``escalate_after``); None: this
    process does not look (another API process does)."""


class _Stores(threading.local):
    """One handler thread's connection and the stores on it."""

    runs: RunStore | None = None
    keys: KeyStore | None = None
    hooks: Webhooks | None = None
    limits: RateLimits | None = None
    budgets: TenantBudgets | None = None


class Context:
    """One API process's settings and stores, each store the calling thread's own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = settings.catalog
        self._local = _Stores()
        self._open()  # create the tables once, up front
        self.long_polls = LongPolls(lambda ids: self.runs.statuses(ids), WAIT_POLL_S)

    def _open(self) -> _Stores:
        local = self._local
        if local.runs is None:
            database = Database(self.settings.database_url)
            local.runs, local.keys, local.hooks = (
                RunStore(database),
                KeyStore(database),
                Webhooks(database),
            )
            local.limits = RateLimits(database, self.settings.rate_per_s, self.settings.burst)
            local.budgets = TenantBudgets(database)
        return local

    @property
    def runs(self) -> RunStore:
        return self._open().runs  # type: ignore[return-value]

    @property
    def keys(self) -> KeyStore:
        return self._open().keys  # type: ignore[return-value]

    @property
    def hooks(self) -> Webhooks:
        return self._open().hooks  # type: ignore[return-value]

    @property
    def limits(self) -> RateLimits:
        return self._open().limits  # type: ignore[return-value]

    @property
    def budgets(self) -> TenantBudgets:
        return self._open().budgets  # type: ignore[return-value]

    def wake(self) -> None:
        """Tell the run workers that a run or a decision is waiting."""
        if self.settings.wake is not None:
            self.settings.wake()

    def own_run(self, key: ApiKey, run_id: str) -> RunRecord:
        """The run, if it is the key's tenant's; otherwise 404, as for one that does not exist."""
        try:
            run = self.runs.run(run_id)
        except NotFoundError:
            raise NotFoundError(f"no run {clip(run_id, 80)!r}") from None
        if run.tenant != key.tenant:
            raise NotFoundError(f"no run {clip(run_id, 80)!r}")
        return run

    def own_review(self, key: ApiKey, review_id: str) -> ReviewRecord:
        """The review, if its run is the key's tenant's; otherwise 404."""
        try:
            review = self.runs.review(review_id)
        except NotFoundError:
            raise NotFoundError(f"no review {clip(review_id, 80)!r}") from None
        if self.runs.run(review.run_id).tenant != key.tenant:
            raise NotFoundError(f"no review {clip(review_id, 80)!r}")
        return review


def context(request: Request) -> Context:
    return request.app.state.cadre  # type: ignore[no-any-return]


Ctx = Annotated[Context, Depends(context)]

BEARER = HTTPBearer(
    auto_error=False, description="An API key from `cadre keys create`, as a bearer token."
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same key, in a header of its own."
)


def caller(
    ctx: Ctx,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
    x_api_key: Annotated[str | None, Depends(API_KEY_HEADER)] = None,
) -> ApiKey:
    """The calling key: 401 without a good one, 429 over its rate."""
    token = bearer.credentials.strip() if bearer is not None else (x_api_key or "")
    if not token:
        raise ApiError(
            401,
            "unauthenticated",
            "no API key: send Authorization: Bearer <key> (create one with `cadre keys create`)",
            {"WWW-Authenticate": "Bearer"},
        )
    key = ctx.keys.authenticate(token)
    if key is None:
        raise ApiError(
            401,
            "unauthenticated",
            "the API key is wrong or revoked",
            {"WWW-Authenticate": "Bearer"},
        )
    wait = ctx.limits.take(key.id)
    if wait:
        retry = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for this key; retry in {retry} s",
            {"Retry-After": str(retry)},
        )
    return key


def role(*allowed: str) -> Callable[[ApiKey], ApiKey]:
    """A dependency that lets through only keys of the ``allowed`` roles (403 otherwise)."""

    def check(key: Annotated[ApiKey, Depends(caller)]) -> ApiKey:
        if key.role not in allowed:
            raise ApiError(
                403,
                "forbidden",
                f"a {key.role} key cannot do this; it needs a key of role {' or '.join(allowed)}",
            )
        return key

    return check


Anyone = Annotated[ApiKey, Depends(caller)]
Submitter = Annotated[ApiKey, Depends(role("submitter", "admin"))]
Reviewer = Annotated[ApiKey, Depends(role("reviewer", "admin"))]
Admin = Annotated[ApiKey, Depends(role("admin"))]
