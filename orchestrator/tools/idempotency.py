"""Idempotency keys of side-effect tool calls, in the run database (``cadre_tool_calls``).

LangGraph re-runs a node from its top when a run resumes after a crash, so a side-effect tool
must know whether its effect already happened. Two cases:

- the effect is a write to the run database (``notify``'s outbox row): the tool commits the key
  with the effect in one transaction (:func:`claim` inside :func:`transaction`), so both happen or
  neither does;
- the effect is elsewhere (an external call): the key is *reserved* before the call and the
  outcome recorded after it (:func:`reserve`, :func:`complete`); a tool that raises has not done
  its effect and releases the key (:func:`release`). A key still reserved when the node runs again
  means the process died (or the call overran its timeout) between the two: whether the effect
  happened is unknown, so the call is not repeated and the node fails saying so.

A key is ``run:node:tool:arguments-hash``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.storage import schema

if TYPE_CHECKING:  # the callers open the database; importing it here would load LangGraph
    from orchestrator.storage.database import Database

DONE, RESERVED = "done", "reserved"


@dataclass(frozen=True)
class Outcome:
    """What is recorded under a key: ``done`` with the tool's result, or ``reserved``."""

    state: str
    result: Any
    at: float


def ensure_table(db: Database) -> None:
    """Create ``cadre_tool_calls`` (and add ``state`` to a table from before reservations)."""
    schema.create(db, schema.TOOL_CALLS)


@contextmanager
def transaction(db: Database) -> Iterator[None]:
    """One transaction on ``db`` (a connection of the caller's own: nothing else may use it
    meanwhile). On SQLite it takes the write lock at once, so two writers queue, not deadlock."""
    db.execute("BEGIN" if db.postgres else "BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def outcome(db: Database, key: str) -> Outcome | None:
    """What is recorded under ``key``, if anything."""
    rows = db.query("SELECT state, result, at FROM cadre_tool_calls WHERE key = ?", (key,))
    if not rows:
        return None
    row = rows[0]
    return Outcome(row["state"], json.loads(row["result"]), row["at"])


def claim(db: Database, key: str, result: Any) -> bool:
    """Record ``key`` as done with ``result``; False if it was recorded already. Call it inside
    the transaction that makes the effect, before the effect."""
    return _insert(db, key, DONE, result)


def reserve(db: Database, key: str) -> bool:
    """Reserve ``key`` before an external call; False if it is reserved or done already."""
    return _insert(db, key, RESERVED, None)


def complete(db: Database, key: str, result: Any) -> None:
    """Record the outcome of the call ``key`` was reserved for."""
    db.execute(
        "UPDATE cadre_tool_calls SET state = ?, result = ?, at = ? WHERE key = ?",
        (DONE, json.dumps(result, default=str), time.time(), key),
    )


def release(db: Database, key: str) -> None:
    """Drop a reservation whose call failed (so a later run of the node may try again)."""
    db.execute("DELETE FROM cadre_tool_calls WHERE key = ? AND state = ?", (key, RESERVED))


def _insert(db: Database, key: str, state: str, result: Any) -> bool:
    return bool(
        db.execute(
            "INSERT INTO cadre_tool_calls (key, result, at, state) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (key, json.dumps(result, default=str), time.time(), state),
        )
    )
