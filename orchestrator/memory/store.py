"""A persistent, searchable LangGraph ``BaseStore`` on the run database (SQLite or Postgres).

Why not LangGraph's ``SqliteStore``/``PostgresStore``: their vector search needs the sqlite-vec
extension or pgvector; the Python here cannot load SQLite extensions, and a user's Postgres may not
have pgvector. So items live in one plain table (the value as JSON, its embedding as float32 bytes)
and search ranks the candidates under a namespace prefix by cosine similarity in NumPy. That is
exact (no approximate index) and fast enough for the tens of thousands of records a team's memory
holds; ``bench/bench_memory.py`` measures it.

Namespaces are tuples (``("tenant", "acme", "global", "semantic")``); a search only ever sees
items under the prefix it names, which is how tenants are kept apart. Items may expire (TTL, in
minutes, as LangGraph's store API has it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from orchestrator.errors import InputError
from orchestrator.memory.embeddings import Embedder, default_embedder, from_blob, to_blob
from orchestrator.storage.database import Database

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cadre_store (
        prefix TEXT NOT NULL, key TEXT NOT NULL, namespace TEXT NOT NULL, value TEXT NOT NULL,
        embedding {blob}, created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,
        PRIMARY KEY (prefix, key))""",
)
SEP = "\x1f"  # joins namespace parts; a part may hold anything but this


def _prefix(namespace: tuple[str, ...]) -> str:
    for part in namespace:
        if not part or SEP in part:
            raise InputError(f"namespace part {part!r} must be non-empty text")
    return SEP.join(namespace) + SEP


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class SqlStore(BaseStore):
    """LangGraph store on Cadre's run database; see the module docstring."""

    supports_ttl = True

    def __init__(
        self,
        db: Database,
        embedder: Embedder | None = None,
        index_fields: tuple[str, ...] = ("text",),
    ) -> None:
        self.db = db
        self.embedder = embedder or default_embedder()
        self.index_fields = index_fields
        blob = "BYTEA" if db.postgres else "BLOB"
        for statement in SCHEMA:
            db.execute(statement.format(blob=blob))

    # -- BaseStore ---------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._namespaces(op))
            else:
                raise TypeError(f"unknown store operation {op!r}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        # Off the event loop: the database calls block, and the checkpointer shares the file.
        return await asyncio.to_thread(self.batch, list(ops))

    # -- operations --------------------------------------------------------------------------

    def _get(self, op: GetOp) -> Item | None:
        rows = self.db.query(
            "SELECT * FROM cadre_store WHERE prefix = ? AND key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (_prefix(op.namespace), op.key, time.time()),
        )
        return self._item(rows[0]) if rows else None

    def _put(self, op: PutOp) -> None:
        prefix = _prefix(op.namespace)
        if op.value is None:
            self.db.execute(
                "DELETE FROM cadre_store WHERE prefix = ? AND key = ?", (prefix, op.key)
            )
            return
        now = time.time()
        fields = self.index_fields if op.index is None else (op.index or ())
        text = " ".join(str(op.value[f]) for f in fields if op.value.get(f) is not None)
        embedding = to_blob(self.embedder.embed([text])[0]) if text else None
        expires = now + op.ttl * 60 if op.ttl else None
        existing = self.db.query(
            "SELECT created_at FROM cadre_store WHERE prefix = ? AND key = ?", (prefix, op.key)
        )
        created = existing[0]["created_at"] if existing else now
        self.db.execute("DELETE FROM cadre_store WHERE prefix = ? AND key = ?", (prefix, op.key))
        self.db.execute(
            "INSERT INTO cadre_store (prefix, key, namespace, value, embedding, created_at, "
            "updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                prefix,
                op.key,
                json.dumps(list(op.namespace)),
                json.dumps(op.value),
                embedding,
                created,
                now,
                expires,
            ),
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        rows = self.db.query(
            "SELECT * FROM cadre_store WHERE prefix LIKE ? ESCAPE '\\' "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (_like(op.namespace_prefix), time.time()),
        )
        rows = [r for r in rows if _matches(json.loads(r["value"]), op.filter)]
        scores: list[float | None]
        if op.query:
            query = self.embedder.embed([op.query])[0]
            with_vectors = [r for r in rows if r["embedding"] is not None]
            matrix = (
                np.stack([from_blob(r["embedding"]) for r in with_vectors])
                if with_vectors
                else np.zeros((0, self.embedder.dims), dtype=np.float32)
            )
            similarity = matrix @ query
            order = np.argsort(-similarity)
            rows = [with_vectors[i] for i in order]
            scores = [float(similarity[i]) for i in order]
        else:
            rows.sort(key=lambda r: r["updated_at"], reverse=True)
            scores = [None] * len(rows)
        window = slice(op.offset, op.offset + op.limit)
        return [
            SearchItem(
                namespace=tuple(json.loads(r["namespace"])),
                key=r["key"],
                value=json.loads(r["value"]),
                created_at=_when(r["created_at"]),
                updated_at=_when(r["updated_at"]),
                score=score,
            )
            for r, score in zip(rows[window], scores[window], strict=True)
        ]

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        rows = self.db.query(
            "SELECT DISTINCT namespace FROM cadre_store WHERE expires_at IS NULL OR expires_at > ?",
            (time.time(),),
        )
        found = {tuple(json.loads(r["namespace"])) for r in rows}
        for condition in op.match_conditions or ():
            path = tuple(condition.path)
            if condition.match_type == "prefix":
                found = {ns for ns in found if _fits(ns[: len(path)], path)}
            else:
                found = {ns for ns in found if _fits(ns[-len(path) :], path)}
        if op.max_depth is not None:
            found = {ns[: op.max_depth] for ns in found}
        return sorted(found)[op.offset : op.offset + op.limit]

    def put_many(self, namespace: tuple[str, ...], items: dict[str, dict[str, Any]]) -> None:
        """Put many items at once, embedding their texts in one batch (much faster than puts)."""
        prefix, now = _prefix(namespace), time.time()
        texts = [" ".join(str(v.get(f, "")) for f in self.index_fields) for v in items.values()]
        vectors = self.embedder.embed(texts)
        for (key, value), vector in zip(items.items(), vectors, strict=True):
            self.db.execute("DELETE FROM cadre_store WHERE prefix = ? AND key = ?", (prefix, key))
            self.db.execute(
                "INSERT INTO cadre_store (prefix, key, namespace, value, embedding, created_at, "
                "updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    prefix,
                    key,
                    json.dumps(list(namespace)),
                    json.dumps(value),
                    to_blob(vector),
                    now,
                    now,
                ),
            )

    def sweep(self) -> int:
        """Delete expired items; returns how many."""
        return self.db.execute(
            "DELETE FROM cadre_store WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (time.time(),),
        )

    @staticmethod
    def _item(row: dict[str, Any]) -> Item:
        return Item(
            namespace=tuple(json.loads(row["namespace"])),
            key=row["key"],
            value=json.loads(row["value"]),
            created_at=_when(row["created_at"]),
            updated_at=_when(row["updated_at"]),
        )


def _like(prefix: tuple[str, ...]) -> str:
    base = _prefix(prefix) if prefix else ""
    return base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _fits(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    return len(parts) == len(pattern) and all(
        p == "*" or p == q for p, q in zip(pattern, parts, strict=True)
    )


def _matches(value: dict[str, Any], conditions: dict[str, Any] | None) -> bool:
    return all(value.get(k) == v for k, v in (conditions or {}).items())
