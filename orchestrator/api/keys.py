"""API keys: who is calling, for which tenant, in which role.

A key is ``cadre_<id>_<secret>``: the id finds the row, the secret (32 random bytes) proves it.
Only a SHA-256 hash of the secret is stored, and compared in constant time. A fast hash is
enough here because the secret is random and long, not a password a person chose; the plain key
is shown once, when it is created.

Roles: ``submitter`` submits and follows runs; ``reviewer`` reads runs and decides reviews;
``admin`` does both and manages webhooks. Every key belongs to exactly one tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal, get_args

from orchestrator.errors import InputError, NotFoundError, clip, person_name
from orchestrator.runs.budget import check_tenant
from orchestrator.storage import schema
from orchestrator.storage.database import Database

Role = Literal["submitter", "reviewer", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
PREFIX = "cadre_"


@dataclass(frozen=True)
class ApiKey:
    """A key's identity (never its secret)."""

    id: str
    tenant: str
    role: Role
    name: str
    created_at: float
    revoked_at: float | None

    @property
    def who(self) -> str:
        """How decisions made with this key are signed in the audit trail."""
        return f"{self.name} ({self.tenant}/{self.role}, key {self.id})"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """API keys in the run database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.set_up("keys", lambda: schema.create(db, schema.API_KEYS))

    def create(self, tenant: str, role: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key; returns it and the plain key string, which is not stored anywhere."""
        check_tenant(tenant)
        if name:
            person_name(name, "key name")
        if role not in ROLES:
            raise InputError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self.db.execute(
            "INSERT INTO cadre_api_keys (id, tenant, role, name, secret_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, tenant, role, name or f"{tenant}-{role}", _hash(secret), time.time()),
        )
        return self.get(key_id), f"{PREFIX}{key_id}_{secret}"

    def get(self, key_id: str) -> ApiKey:
        rows = self.db.query("SELECT * FROM cadre_api_keys WHERE id = ?", (key_id,))
        if not rows:
            raise NotFoundError(f"no API key {clip(key_id, 80)!r}; see `cadre keys list`")
        return _key(rows[0])

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key this token proves, or None (unknown, malformed, wrong or revoked)."""
        if not token.startswith(PREFIX):
            return None
        key_id, _, secret = token.removeprefix(PREFIX).partition("_")
        if not key_id or not secret:
            return None
        rows = self.db.query("SELECT * FROM cadre_api_keys WHERE id = ?", (key_id,))
        if not rows or rows[0]["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(rows[0]["secret_hash"], _hash(secret)):
            return None
        return _key(rows[0])

    def all(self, tenant: str | None = None) -> list[ApiKey]:
        sql, params = "SELECT * FROM cadre_api_keys", tuple[str, ...]()
        if tenant:
            sql, params = sql + " WHERE tenant = ?", (tenant,)
        return [_key(r) for r in self.db.query(sql + " ORDER BY created_at", params)]

    def revoke(self, key_id: str) -> ApiKey:
        self.get(key_id)
        self.db.execute(
            "UPDATE cadre_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return self.get(key_id)


def _key(row: dict[str, object]) -> ApiKey:
    return ApiKey(
        id=str(row["id"]),
        tenant=str(row["tenant"]),
        role=row["role"],  # type: ignore[arg-type]
        name=str(row["name"]),
        created_at=float(row["created_at"]),  # type: ignore[arg-type]
        revoked_at=row["revoked_at"],  # type: ignore[arg-type]
    )
