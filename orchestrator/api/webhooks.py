"""Webhooks: a tenant hears when one of its runs needs review or finishes.

A tenant registers a URL (admin key) and gets a signing secret back once. Each event is a JSON
POST with ``X-Cadre-Event`` and ``X-Cadre-Signature: sha256=HMAC(secret, body)``, so the receiver
can check it came from us. Targets inside the network are refused, at registration and again at
every delivery (:mod:`.webhook_targets`).

Deliveries are durable. Each is a row of ``cadre_webhook_deliveries`` first (``pending``, with
``next_attempt_at``), then tried by a deliverer: a background thread in any process that records
or opens deliveries, which claims due rows with a lease (one conditional UPDATE, so two processes
never send the same attempt) and records each attempt. A failed attempt is retried after a
pause that grows (``BACKOFF_S``), up to ``ATTEMPTS`` attempts in all; then the delivery is
``failed``. A process that dies mid-delivery leaves its row pending: the lease runs out and the
next deliverer (that process restarted, or any other) sends it.

What a tenant reads about a delivery is the HTTP status the receiver answered, or that there was
no answer; never why a connection failed (refused, timed out, reset), which would turn the
deliveries into a scanner of the network the API runs in.

Events: ``run.awaiting_review``, ``run.finished`` (succeeded, failed or cancelled) and
``review.overdue`` (a review waited longer than its node's ``escalate_after``; see
:class:`Escalator`). The same event for the same run and status (or review) is delivered once,
however many processes notice it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from orchestrator.api import webhook_targets
from orchestrator.errors import InputError, NotFoundError
from orchestrator.runs.store import FINISHED, ReviewRecord, RunRecord, RunStore
from orchestrator.runs.views import webhook_event
from orchestrator.storage import schema
from orchestrator.storage.database import Database

log = logging.getLogger(__name__)

BACKOFF_S = (2.0, 15.0, 60.0)
"""The pause before each retry: a delivery is tried once, then retried ``len(BACKOFF_S)`` times."""
ATTEMPTS = len(BACKOFF_S) + 1
TIMEOUT_S = 5.0
"""How long one attempt waits for each step (connecting, each read or write)."""
DEADLINE_S = 10.0
"""How long one attempt may take in all: a receiver that drips its answer gets no more."""
LEASE_S = 60.0
"""How long a deliverer's claim on an attempt holds (longer than any attempt takes)."""
POLL_S = 30.0
"""The longest a deliverer sleeps while deliveries are pending (it is woken for new ones)."""
NO_ANSWER = "no answer (the receiver could not be reached or did not answer in time)"

SHOWN = (
    "d.id, d.webhook_id, d.run_id, d.event, d.status, d.state, d.attempts, d.last_error, "
    "d.response_code, d.created_at, d.next_attempt_at"
)
"""What a tenant sees of a delivery."""


@dataclass(frozen=True)
class Webhook:
    id: str
    tenant: str
    url: str
    created_at: float


@dataclass(frozen=True)
class _Post:
    """One attempt at a delivery, ready to send."""

    delivery_id: str
    attempts: int
    """Which attempt this is (1 for the first)."""
    target: webhook_targets.Target
    body: bytes
    headers: dict[str, str]


async def _send_all(posts: list[_Post]) -> list[int | None]:
    """POST each attempt at once; each one's HTTP status, or None when there was no answer."""
    import httpx

    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:  # redirects are not followed
        return await asyncio.gather(*(_send(client, post) for post in posts))


async def _send(client: Any, post: _Post) -> int | None:
    """One POST: its status once the receiver's headers are in (the body is never read, so a
    receiver cannot fill our memory), or None if it took longer than ``DEADLINE_S`` in all."""
    import httpx

    request = httpx.Request(
        "POST",
        post.target.url,
        content=post.body,
        headers=post.headers,
        extensions=post.target.extensions,
    )
    try:
        async with asyncio.timeout(DEADLINE_S):
            response = await client.send(request, stream=True)
            await response.aclose()
            return int(response.status_code)
    except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as err:
        # The operator's log says why; the tenant's record does not (see the docstring).
        log.info("webhook delivery %s: attempt %d: %r", post.delivery_id, post.attempts, err)
        return None


class Webhooks:
    """Registered webhooks and their deliveries, in the run database."""

    def __init__(self, db: Database, *, background: bool = True) -> None:
        """With ``background`` (the default), this process's deliverer thread sends what
        :meth:`notify` records, and deliveries left pending (by this process before a restart,
        or by one that died) start going out at once. Without, only :meth:`deliver_due` sends."""
        self.db = db
        self.background = background
        db.set_up("webhooks", self._create)
        if background and self.next_due() is not None:
            _wake(db.url)

    def _create(self) -> None:
        schema.create(self.db, schema.WEBHOOKS, schema.WEBHOOK_DELIVERIES)

    def register(self, tenant: str, url: str) -> tuple[Webhook, str]:
        """A new webhook for the tenant; returns it and its signing secret (shown once).
        A URL inside the network is refused (:func:`webhook_targets.check`)."""
        if not isinstance(url, str) or len(url) > 2000:
            raise InputError("webhook url: give an absolute http:// or https:// URL (2000 chars)")
        webhook_targets.check(url)
        hook_id, secret = f"wh-{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(24)
        self.db.execute(
            "INSERT INTO cadre_webhooks (id, tenant, url, secret, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (hook_id, tenant, url, secret, time.time()),
        )
        return self.get(tenant, hook_id), secret

    def get(self, tenant: str, hook_id: str) -> Webhook:
        rows = self.db.query(
            "SELECT * FROM cadre_webhooks WHERE id = ? AND tenant = ?", (hook_id, tenant)
        )
        if not rows:
            raise NotFoundError(f"no webhook {hook_id!r}")
        return _hook(rows[0])

    def all(self, tenant: str) -> list[Webhook]:
        rows = self.db.query(
            "SELECT * FROM cadre_webhooks WHERE tenant = ? ORDER BY created_at", (tenant,)
        )
        return [_hook(r) for r in rows]

    def delete(self, tenant: str, hook_id: str) -> None:
        self.get(tenant, hook_id)
        self.db.execute("DELETE FROM cadre_webhooks WHERE id = ?", (hook_id,))

    def deliveries(self, tenant: str, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = (
            f"SELECT {SHOWN} FROM cadre_webhook_deliveries d JOIN cadre_webhooks w "
            "ON w.id = d.webhook_id WHERE w.tenant = ?"
        )
        params: list[Any] = [tenant]
        if run_id:
            sql, params = sql + " AND d.run_id = ?", [*params, run_id]
        return self.db.query(sql + " ORDER BY d.created_at", params)

    # -- delivering ------------------------------------------------------------------------

    def notify(self, run: RunRecord, store: RunStore) -> list[str]:
        """Record the event this run's status calls for (if any) for each of its tenant's
        webhooks, and wake this process's deliverer; returns the new delivery ids."""
        if run.status == "awaiting_review":
            event = "run.awaiting_review"
        elif run.status in FINISHED:
            event = "run.finished"
        else:
            return []
        body = webhook_event(event, run, store).model_dump_json()
        return self._record_event(run, event, run.status, body)

    def notify_overdue(self, review: ReviewRecord, store: RunStore) -> list[str]:
        """Record a ``review.overdue`` event for each of the review's tenant's webhooks."""
        run = store.run(review.run_id)
        body = webhook_event("review.overdue", run, store, review).model_dump_json()
        return self._record_event(run, "review.overdue", review.id, body)

    def _record_event(self, run: RunRecord, event: str, status: str, body: str) -> list[str]:
        made = []
        now = time.time()
        for hook in self.all(run.tenant):
            delivery_id = f"dl-{uuid.uuid4().hex[:10]}"
            if self.db.execute(
                "INSERT INTO cadre_webhook_deliveries (id, webhook_id, run_id, event, status, "
                "body, state, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
                (delivery_id, hook.id, run.id, event, status, body, now, now),
            ):
                made.append(delivery_id)
        if made and self.background:
            _wake(self.db.url)
        return made

    def next_due(self) -> float | None:
        """When the next pending delivery may be tried (None: nothing is pending)."""
        rows = self.db.query(
            "SELECT MIN(CASE WHEN COALESCE(claimed_until, 0) > COALESCE(next_attempt_at, 0) "
            "THEN claimed_until ELSE COALESCE(next_attempt_at, 0) END) AS due "
            "FROM cadre_webhook_deliveries WHERE state = 'pending'"
        )
        due = rows[0]["due"] if rows else None
        return None if due is None else float(due)

    def deliver_due(self, now: float | None = None, limit: int = 20) -> int:
        """Claim the pending deliveries due at ``now`` (another deliverer's live claim is left
        alone) and make one attempt at each, all at once (a slow receiver holds up no other);
        returns how many were attempted."""
        now = time.time() if now is None else now
        due = self.db.query(
            "SELECT id FROM cadre_webhook_deliveries WHERE state = 'pending' "
            "AND COALESCE(next_attempt_at, 0) <= ? AND COALESCE(claimed_until, 0) < ? "
            "ORDER BY next_attempt_at LIMIT ?",
            (now, now, limit),
        )
        claimed = [
            row["id"]
            for row in due
            if self.db.execute(
                "UPDATE cadre_webhook_deliveries SET claimed_until = ? WHERE id = ? "
                "AND state = 'pending' AND COALESCE(claimed_until, 0) < ?",
                (now + LEASE_S, row["id"], now),
            )
        ]
        posts = [post for post in map(self._prepare, claimed) if post is not None]
        if posts:
            for post, code in zip(posts, asyncio.run(_send_all(posts)), strict=True):
                self._settle(post, code, now)
        return len(claimed)

    def _prepare(self, delivery_id: str) -> _Post | None:
        """The request for one claimed delivery, or None when it failed without one (its
        webhook deleted, or its target no longer allowed)."""
        rows = self.db.query(
            "SELECT d.*, w.url, w.secret FROM cadre_webhook_deliveries d "
            "JOIN cadre_webhooks w ON w.id = d.webhook_id WHERE d.id = ?",
            (delivery_id,),
        )
        if not rows:  # its webhook was deleted
            self._record(delivery_id, "failed", None, "the webhook was deleted", None, None)
            return None
        row = rows[0]
        attempts = int(row["attempts"]) + 1
        try:
            target = webhook_targets.check(row["url"])
        except InputError:
            error = "refused: the target is not a public address (see the webhook's URL)"
            self._record(delivery_id, "failed", attempts, error, None, None)
            return None
        body = row["body"].encode()
        signature = hmac.new(row["secret"].encode(), body, hashlib.sha256).hexdigest()
        headers = {
            **target.headers,
            "content-type": "application/json",
            "x-cadre-event": row["event"],
            "x-cadre-delivery": delivery_id,
            "x-cadre-signature": f"sha256={signature}",
        }
        return _Post(delivery_id, attempts, target, body, headers)

    def _settle(self, post: _Post, code: int | None, now: float) -> None:
        """Record how one attempt went: delivered on a 2xx, else retried later or failed."""
        if code is not None and 200 <= code < 300:
            self._record(post.delivery_id, "delivered", post.attempts, None, code, None)
            return
        error = NO_ANSWER if code is None else f"HTTP {code}"
        if post.attempts >= ATTEMPTS:
            self._record(post.delivery_id, "failed", post.attempts, error, code, None)
            return
        retry_at = now + BACKOFF_S[post.attempts - 1]
        self._record(post.delivery_id, "pending", post.attempts, error, code, retry_at)

    def _record(
        self,
        delivery_id: str,
        state: str,
        attempts: int | None,
        error: str | None,
        code: int | None,
        retry_at: float | None,
    ) -> None:
        self.db.execute(
            "UPDATE cadre_webhook_deliveries SET state = ?, attempts = COALESCE(?, attempts), "
            "last_error = ?, response_code = ?, next_attempt_at = ?, claimed_until = NULL "
            "WHERE id = ?",
            (state, attempts, error, code, retry_at, delivery_id),
        )


# -- the deliverer -------------------------------------------------------------------------------

_deliverers: dict[str, _Deliverer] = {}
_deliverers_lock = threading.Lock()


def _wake(database_url: str) -> None:
    """Make sure this process has a deliverer for the database, and that it looks now."""
    with _deliverers_lock:
        deliverer = _deliverers.get(database_url)
        if deliverer is None or not deliverer.is_alive():
            deliverer = _deliverers[database_url] = _Deliverer(database_url)
            deliverer.start()
        deliverer.wake.set()


class _Deliverer(threading.Thread):
    """Sends a database's due deliveries while any are pending, then ends (the next recorded
    delivery starts another). A daemon: what it has not sent stays pending in the database."""

    def __init__(self, database_url: str) -> None:
        super().__init__(name="cadre-webhooks", daemon=True)
        self.database_url = database_url
        self.wake = threading.Event()

    def run(self) -> None:
        db = Database(self.database_url)
        try:
            hooks = Webhooks(db, background=False)
            while True:
                self.wake.clear()
                try:
                    hooks.deliver_due()
                    due = hooks.next_due()
                except Exception as err:  # a database hiccup: look again after a pause
                    log.warning("webhook deliveries: %s (trying again)", err)
                    due = time.time() + 1.0
                if due is None:
                    with _deliverers_lock:
                        if not self.wake.is_set():
                            del _deliverers[self.database_url]
                            return
                    continue
                self.wake.wait(timeout=min(max(0.0, due - time.time()), POLL_S))
        finally:
            with _deliverers_lock:
                if _deliverers.get(self.database_url) is self:
                    del _deliverers[self.database_url]
            db.close()


def _hook(row: dict[str, Any]) -> Webhook:
    return Webhook(row["id"], row["tenant"], row["url"], row["created_at"])


class Escalator(threading.Thread):
    """Finds the reviews that waited past their node's ``escalate_after`` and sends
    ``review.overdue`` for each, once (:meth:`RunStore.mark_overdue` picks one process). It
    sleeps until the next review falls due, at most ``poll_s``: a review queued meanwhile with a
    shorter wait is noticed within ``poll_s``. Runs in the API process until ``stop``."""

    def __init__(self, database_url: str, poll_s: float = POLL_S) -> None:
        super().__init__(name="cadre-escalator", daemon=True)
        self.database_url = database_url
        self.poll_s = poll_s
        self.stopped = threading.Event()

    def sweep(self, store: RunStore, hooks: Webhooks) -> float | None:
        """Send what is overdue now; returns when the next pending review falls due."""
        for review in store.mark_overdue():
            hooks.notify_overdue(review, store)
        return store.next_due()

    def run(self) -> None:
        db = Database(self.database_url)
        try:
            store, hooks = RunStore(db), Webhooks(db)
            while not self.stopped.is_set():
                try:
                    due = self.sweep(store, hooks)
                except Exception as err:  # a database hiccup: look again after a pause
                    log.warning("overdue reviews: %s (trying again)", err)
                    due = None
                wait = self.poll_s if due is None else min(self.poll_s, due - time.time())
                self.stopped.wait(max(0.05, wait))
        finally:
            db.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
