"""A persistent, searchable LangGraph ``BaseStore`` on the run database (SQLite or Postgres).

Why not LangGraph's ``SqliteStore``/``PostgresStore``: their vector search needs the sqlite-vec
extension or pgvector; the Python here cannot load SQLite extensions, and a user's Postgres may not
have pgvector. So items live in one plain table (the value as JSON, its embedding as float32 bytes)
and search ranks the candidates under a namespace prefix by cosine similarity in NumPy. That is
exact (no approximate index) and fast enough for the tens of thousands of records a team's memory
holds; ``bench/bench_retrieval.py`` measures it (search over 10,000 records against a bare NumPy
scan).

Namespaces are tuples (``("tenant", "acme", "global", "semantic")``); a search only ever sees
items under the prefix it names, which is how tenants are kept apart. Items may expire (TTL, in
minutes, as LangGraph's store API has it); a read with ``refresh_ttl`` pushes the expiry out again.

It behaves as LangGraph's own stores do (``tests/memory/test_store_contract.py`` holds it to
that): a put is one upsert, so writers racing on a key never collide; filters take ``$eq``,
``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, dotted keys and nested dicts; an item with nothing to
embed still turns up in a query search, after the scored ones. One difference: an item's indexed
fields are embedded together, as one vector, where LangGraph keeps a vector per field.
"""

from __future__ import annotations

import asyncio
import json
import operator
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from orchestrator.storage import schema
from orchestrator.storage.database import Database

SEP = "\x1f"  # joins namespace parts; a part may hold anything but this

# One statement, so two writers of a key never both insert; the first put's created_at stays.
UPSERT = (
    "INSERT INTO cadre_store (prefix, key, namespace, value, embedding, created_at, updated_at, "
    "expires_at, ttl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (prefix, key) DO UPDATE SET "
    "namespace = excluded.namespace, value = excluded.value, embedding = excluded.embedding, "
    "updated_at = excluded.updated_at, expires_at = excluded.expires_at, ttl = excluded.ttl"
)
REFRESH = (
    "UPDATE cadre_store SET expires_at = ? + ttl * 60 "
    "WHERE prefix = ? AND key = ? AND ttl IS NOT NULL"
)
LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _prefix(namespace: tuple[str, ...]) -> str:
    for part in namespace:
        if not part or SEP in part:
            raise InputError(f"namespace part {part!r} must be non-empty text")
    return SEP.join(namespace) + SEP


def _under(namespace: tuple[str, ...]) -> tuple[str, list[Any]]:
    """SQL condition (and its parameters) for "prefix is under ``namespace``". Not LIKE: that
    ignores case on SQLite; ``=`` compares exactly on both backends."""
    if not namespace:
        return "1 = 1", []
    base = _prefix(namespace)
    return "substr(prefix, 1, ?) = ?", [len(base), base]


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class SqlStore(BaseStore):
    """LangGraph store on Cadre's run database; see the module docstring.

    ``index_fields`` are the paths embedded for search when a put names none (``"text"``,
    ``"content.text"``; a list along the path contributes each element; ``"$"`` is the whole
    value)."""

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
        schema.create(db, schema.STORE)

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
        now = time.time()
        rows = self.db.query(
            f"SELECT * FROM cadre_store WHERE prefix = ? AND key = ? AND {LIVE}",
            (_prefix(op.namespace), op.key, now),
        )
        if not rows:
            return None
        if op.refresh_ttl:
            self._refresh(rows, now)
        return self._item(rows[0])

    def _put(self, op: PutOp) -> None:
        prefix = _prefix(op.namespace)
        if op.value is None:
            self.db.execute(
                "DELETE FROM cadre_store WHERE prefix = ? AND key = ?", (prefix, op.key)
            )
            return
        fields = self.index_fields if op.index is None else (op.index or ())
        text = _index_text(op.value, fields)
        embedding = to_blob(self.embedder.embed([text])[0]) if text else None
        now = time.time()
        expires = None if op.ttl is None else now + op.ttl * 60
        self.db.execute(
            UPSERT,
            (
                prefix,
                op.key,
                json.dumps(list(op.namespace)),
                json.dumps(op.value),
                embedding,
                now,
                now,
                expires,
                op.ttl,
            ),
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        now = time.time()
        under, params = _under(op.namespace_prefix)
        rows = self.db.query(f"SELECT * FROM cadre_store WHERE {under} AND {LIVE}", (*params, now))
        rows = [r for r in rows if _matches(json.loads(r["value"]), op.filter)]
        rows.sort(key=lambda r: r["updated_at"], reverse=True)
        scores: list[float | None] = [None] * len(rows)
        if op.query:
            # Ranked by similarity; items with nothing embedded follow, unscored, newest first.
            embedded = [r for r in rows if r["embedding"] is not None]
            rest = [r for r in rows if r["embedding"] is None]
            similarity = (
                np.stack([from_blob(r["embedding"]) for r in embedded])
                @ self.embedder.embed([op.query])[0]
                if embedded
                else np.zeros(0, dtype=np.float32)
            )
            order = np.argsort(-similarity, kind="stable")
            rows = [embedded[i] for i in order] + rest
            scores = [float(similarity[i]) for i in order] + [None] * len(rest)
        window = slice(op.offset, op.offset + op.limit)
        rows, scores = rows[window], scores[window]
        if op.refresh_ttl:
            self._refresh(rows, now)
        return [
            SearchItem(
                namespace=tuple(json.loads(r["namespace"])),
                key=r["key"],
                value=json.loads(r["value"]),
                created_at=_when(r["created_at"]),
                updated_at=_when(r["updated_at"]),
                score=score,
            )
            for r, score in zip(rows, scores, strict=True)
        ]

    def _refresh(self, rows: Sequence[dict[str, Any]], now: float) -> None:
        """Push the expiry of the items just read (those with a TTL) to now + their TTL."""
        due = [(now, r["prefix"], r["key"]) for r in rows if r["ttl"] is not None]
        if due:
            self.db.execute_many(REFRESH, due)

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        # The leading wildcard-free part of a prefix condition narrows the rows in SQL.
        literal: tuple[str, ...] = ()
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix":
                path = tuple(condition.path)
                literal = path[: path.index("*")] if "*" in path else path
                break
        under, params = _under(literal)
        rows = self.db.query(
            f"SELECT DISTINCT namespace FROM cadre_store WHERE {under} AND {LIVE}",
            (*params, time.time()),
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
        texts = [_index_text(value, self.index_fields) for value in items.values()]
        vectors = iter(self.embedder.embed([t for t in texts if t]))
        rows = [
            (
                prefix,
                key,
                json.dumps(list(namespace)),
                json.dumps(value),
                to_blob(next(vectors)) if text else None,
                now,
                now,
                None,
                None,
            )
            for (key, value), text in zip(items.items(), texts, strict=True)
        ]
        self.db.execute_many(UPSERT, rows)

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


def _fits(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    return len(parts) == len(pattern) and all(
        p == "*" or p == q for p, q in zip(pattern, parts, strict=True)
    )


# -- what gets embedded ----------------------------------------------------------------------


def _index_text(value: Mapping[str, Any], fields: Iterable[str]) -> str:
    """The text embedded for an item: what its index paths lead to, joined."""
    return " ".join(text for field in fields for text in _texts_at(value, _path(field)))


def _path(field: str) -> list[str]:
    # LangGraph writes "tags[*]" for each element of a list; lists are walked element-wise here.
    return [] if field == "$" else field.replace("[*]", "").split(".")


def _texts_at(node: Any, path: list[str]) -> list[str]:
    if isinstance(node, list):
        return [text for element in node for text in _texts_at(element, path)]
    if not path:
        if node is None:
            return []
        return [node if isinstance(node, str) else json.dumps(node, sort_keys=True)]
    if not isinstance(node, Mapping):
        return []
    return _texts_at(node.get(path[0]), path[1:])


# -- filters ---------------------------------------------------------------------------------

ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
OPERATORS = ("$eq", "$ne", *ORDERINGS)


def _matches(value: dict[str, Any], conditions: dict[str, Any] | None) -> bool:
    """Whether a stored value passes a search filter. A key is a field name or a dotted path
    (``"author.name"``); a condition is a value (equal to it), a dict of operators
    (``{"$gte": 3}``), or a dict of sub-fields that must match (``{"author": {"name": "A"}}``)."""
    return all(
        _satisfies(_lookup(value, key), wanted) for key, wanted in (conditions or {}).items()
    )


def _lookup(value: dict[str, Any], key: str) -> Any:
    if key in value:
        return value[key]
    node: Any = value
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _satisfies(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_compare(actual, op, operand) for op, operand in wanted.items())
        return isinstance(actual, dict) and all(
            _satisfies(actual.get(k), v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(_satisfies(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _compare(actual: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(actual == operand)
    if op == "$ne":
        return bool(actual != operand)
    if op not in ORDERINGS:
        raise InputError(
            f"search filter: unknown operator {op!r}; use one of {', '.join(OPERATORS)}"
        )
    # Numbers order with numbers and text with text; anything else (a missing field) never matches.
    if (_number(actual) and _number(operand)) or (
        isinstance(actual, str) and isinstance(operand, str)
    ):
        return ORDERINGS[op](actual, operand)
    return False


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
