"""Calling a tool for a run: arguments checked, a timeout, and idempotency for side effects.

A side-effect tool's result is stored under ``run:node:arguments-hash`` in the run database before
the node returns; when LangGraph runs the node again (a resume after a crash re-runs the node that
was in flight) the stored result is returned and the tool is not called a second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from orchestrator.errors import RunError
from orchestrator.tools.base import Tool, ToolContext
from orchestrator.storage.database import Database

DEFAULT_TIMEOUT_S = 10.0


class ToolTimeoutError(RunError):
    """A tool did not answer within its timeout."""


def idempotency_key(context: ToolContext, tool: Tool, args: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()
    return f"{context.run_id}:{context.node_id}:{tool.name}:{digest[:16]}"


async def call_tool(
    tool: Tool, raw_args: dict[str, Any], context: ToolContext, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Any:
    """Validate, call with a timeout, and (for side effects) call at most once per key."""
    args = tool.validate(raw_args)
    key = idempotency_key(context, tool, args.model_dump()) if tool.side_effect else None
    if key is not None:
        done = await asyncio.to_thread(_recorded, context.database_url, key)
        if done is not None:
            return done
    try:
        result = await asyncio.wait_for(asyncio.to_thread(tool.fn, args, context), timeout_s)
    except TimeoutError:
        raise ToolTimeoutError(
            f"tool {tool.name!r} did not answer within {timeout_s:g} s"
        ) from None
    if key is not None:
        await asyncio.to_thread(_record, context.database_url, key, result)
    return result


def _table(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS cadre_tool_calls (key TEXT PRIMARY KEY, result TEXT NOT NULL, "
        "at DOUBLE PRECISION NOT NULL)"
    )


def _recorded(url: str | None, key: str) -> Any:
    db = Database(url)
    try:
        _table(db)
        rows = db.query("SELECT result FROM cadre_tool_calls WHERE key = ?", (key,))
        return json.loads(rows[0]["result"]) if rows else None
    finally:
        db.close()


def _record(url: str | None, key: str, result: Any) -> None:
    db = Database(url)
    try:
        _table(db)
        db.execute(
            "INSERT INTO cadre_tool_calls (key, result, at) VALUES (?, ?, ?)",
            (key, json.dumps(result, default=str), time.time()),
        )
    finally:
        db.close()
