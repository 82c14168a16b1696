"""Webhooks: a tenant hears when one of its runs needs review or finishes.

A tenant registers a URL (admin key) and gets a signing secret back once. Each event is a JSON
POST with ``X-Cadre-Event`` and ``X-Cadre-Signature: sha256=HMAC(secret, body)``, so the receiver
can check it came from us. Every delivery is recorded first (``cadre_webhook_deliveries``), then
tried up to ``ATTEMPTS`` times with a growing pause; what happened stays in the record.

Events: ``run.awaiting_review`` and ``run.finished`` (succeeded, failed or cancelled). The same
event for the same run and status is delivered once, however many processes notice it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from orchestrator.errors import InputError, NotFoundError
from orchestrator.storage.database import Database
from orchestrator.runs.store import FINISHED, RunRecord, RunStore

ATTEMPTS = 3
TIMEOUT_S = 5.0

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cadre_webhooks (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cadre_webhook_deliveries (
        id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, run_id TEXT NOT NULL,
        event TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
        state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
        response_code INTEGER, created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (webhook_id, run_id, event, status))""",
)


@dataclass(frozen=True)
class Webhook:
    id: str
    tenant: str
    url: str
    created_at: float


class Webhooks:
    """Registered webhooks and their deliveries, in the run database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        for statement in SCHEMA:
            self.db.execute(statement)

    def register(self, tenant: str, url: str) -> tuple[Webhook, str]:
        """A new webhook for the tenant; returns it and its signing secret (shown once)."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InputError(f"webhook url {url!r}: give an absolute http:// or https:// URL")
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
            "SELECT d.* FROM cadre_webhook_deliveries d JOIN cadre_webhooks w "
            "ON w.id = d.webhook_id WHERE w.tenant = ?"
        )
        params: list[Any] = [tenant]
        if run_id:
            sql, params = sql + " AND d.run_id = ?", [*params, run_id]
        return self.db.query(sql + " ORDER BY d.created_at", params)

    # -- delivering ------------------------------------------------------------------------

    def notify(self, run: RunRecord, store: RunStore, *, wait: bool = False) -> list[str]:
        """Record and send the event this run's status calls for (if any) to each of its
        tenant's webhooks. Sends on a background thread unless ``wait``; returns delivery ids."""
        if run.status == "awaiting_review":
            event = "run.awaiting_review"
        elif run.status in FINISHED:
            event = "run.finished"
        else:
            return []
        body = json.dumps(
            {
                "event": event,
                "run": {
                    "id": run.id,
                    "workflow": run.workflow,
                    "status": run.status,
                    "output": run.output,
                    "error": run.error,
                },
                "reviews": [{"id": r.id, "node": r.node} for r in store.reviews("pending", run.id)],
                "at": time.time(),
            }
        )
        made = []
        for hook in self.all(run.tenant):
            delivery_id = f"dl-{uuid.uuid4().hex[:10]}"
            if self.db.execute(
                "INSERT INTO cadre_webhook_deliveries (id, webhook_id, run_id, event, status, "
                "body, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) "
                "ON CONFLICT DO NOTHING",
                (delivery_id, hook.id, run.id, event, run.status, body, time.time()),
            ):
                made.append(delivery_id)
        for delivery_id in made:
            if wait:
                self.deliver(delivery_id)
            else:
                threading.Thread(target=self.deliver, args=(delivery_id,), daemon=True).start()
        return made

    def deliver(self, delivery_id: str) -> str:
        """POST one delivery, retrying; returns its final state (delivered or failed)."""
        import httpx

        row = self.db.query(
            "SELECT d.*, w.url, w.secret FROM cadre_webhook_deliveries d "
            "JOIN cadre_webhooks w ON w.id = d.webhook_id WHERE d.id = ?",
            (delivery_id,),
        )[0]
        body = row["body"].encode()
        signature = hmac.new(row["secret"].encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "x-cadre-event": row["event"],
            "x-cadre-delivery": delivery_id,
            "x-cadre-signature": f"sha256={signature}",
        }
        for attempt in range(1, ATTEMPTS + 1):
            error, code = None, None
            try:
                response = httpx.post(row["url"], content=body, headers=headers, timeout=TIMEOUT_S)
                code = response.status_code
                if response.is_success:
                    self._record(delivery_id, "delivered", attempt, None, code)
                    return "delivered"
                error = f"HTTP {code}"
            except httpx.HTTPError as err:
                error = f"{type(err).__name__}: {err}"
            self._record(delivery_id, "pending", attempt, error, code)
            if attempt < ATTEMPTS:
                time.sleep(0.5 * 2 ** (attempt - 1))
        self.db.execute(
            "UPDATE cadre_webhook_deliveries SET state = 'failed' WHERE id = ?", (delivery_id,)
        )
        return "failed"

    def _record(
        self, delivery_id: str, state: str, attempts: int, error: str | None, code: int | None
    ) -> None:
        self.db.execute(
            "UPDATE cadre_webhook_deliveries SET state = ?, attempts = ?, last_error = ?, "
            "response_code = ? WHERE id = ?",
            (state, attempts, error, code, delivery_id),
        )


def _hook(row: dict[str, Any]) -> Webhook:
    return Webhook(row["id"], row["tenant"], row["url"], row["created_at"])
