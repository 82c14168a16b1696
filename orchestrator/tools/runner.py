"""Calling a tool for a run: arguments checked, a timeout that stops the tool, and idempotency
for side effects.

Timeouts. The call gets a deadline (``ToolContext.deadline``). An ``isolated`` tool runs in a
child process that is killed there (:mod:`.isolation`; the timeout counts from when that process
is ready, so a helper's start-up is not the tool's time); any other runs on a daemon thread the
caller stops waiting for at the deadline, and that a tool which can stop itself does stop at
(``sql_query``'s SQLite progress handler, ``http_get``'s socket timeouts). A daemon thread never
holds the process at exit, so a run that timed out a tool still ends and its process exits.

Side effects (:mod:`.idempotency`). A side-effect tool's key is ``run:node:tool:arguments-hash``.
When LangGraph runs the node again (a resume after a crash re-runs the node that was in flight),
a recorded outcome is returned and the tool is not called a second time. A ``transactional``
tool commits the key with its effect; for any other, the key is reserved before the call and
the outcome recorded after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import CadreError, RunError, ToolTimeoutError
from orchestrator.storage.database import Database
from orchestrator.tools import idempotency, isolation
from orchestrator.tools.base import Tool, ToolContext

__all__ = ["DEFAULT_TIMEOUT_S", "call_tool", "idempotency_key"]

DEFAULT_TIMEOUT_S = 10.0


def idempotency_key(context: ToolContext, tool: Tool, args: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()
    return f"{context.run_id}:{context.node_id}:{tool.name}:{digest[:16]}"


async def call_tool(
    tool: Tool, raw_args: dict[str, Any], context: ToolContext, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Any:
    """Validate, call with a timeout, and (for side effects) call at most once per key."""
    args = tool.validate(raw_args)
    context = dataclasses.replace(context, deadline=time.monotonic() + timeout_s)
    if not tool.side_effect:
        return await _call(tool, args, context, timeout_s)
    key = idempotency_key(context, tool, args.model_dump())
    url = context.database_url
    if tool.transactional:  # the tool commits the key with its effect
        recorded = await asyncio.to_thread(_outcome, url, key)
        if recorded is not None:
            return _replayed(tool, key, recorded)
        return await _call(tool, args, dataclasses.replace(context, idempotency_key=key), timeout_s)
    if not await asyncio.to_thread(_with_db, url, idempotency.reserve, key):
        return _replayed(tool, key, await asyncio.to_thread(_outcome, url, key))
    try:
        result = await _call(tool, args, context, timeout_s)
    except ToolTimeoutError:
        raise  # it may have happened: the key stays reserved, a re-run will not repeat it
    except CadreError:
        await asyncio.to_thread(_with_db, url, idempotency.release, key)
        raise
    await asyncio.to_thread(_with_db, url, idempotency.complete, key, result)
    return result


def _replayed(tool: Tool, key: str, recorded: idempotency.Outcome | None) -> Any:
    """The recorded result of an earlier call of this node; an error when only the
    reservation was recorded (the effect may or may not have happened)."""
    if recorded is not None and recorded.state == idempotency.DONE:
        return recorded.result
    raise RunError(
        f"tool {tool.name!r} was called for this node before and its outcome was never "
        f"recorded (the process stopped or the call timed out), so it is not called again: "
        f"check whether it took effect (idempotency key {key})"
    )


async def _call(tool: Tool, args: BaseModel, context: ToolContext, timeout_s: float) -> Any:
    if tool.isolated:
        return await asyncio.to_thread(isolation.call, tool, args, context, timeout_s)
    try:
        return await asyncio.wait_for(_on_daemon_thread(tool.fn, args, context), timeout_s)
    except TimeoutError:
        raise ToolTimeoutError(
            f"tool {tool.name!r} did not answer within {timeout_s:g} s"
        ) from None


def _on_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """``fn(*args)`` on a thread of its own that never holds the process at exit (unlike
    ``asyncio.to_thread``'s pool, which the interpreter joins): a tool that overruns its
    timeout is abandoned, not waited for."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, context.run(fn, *args))
        except BaseException as err:  # handed to the awaiting coroutine
            outcome = (False, err)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(
        target=work, name=f"tool-{getattr(fn, '__name__', 'call')}", daemon=True
    ).start()
    return future


def _with_db(url: str | None, fn: Callable[..., Any], *args: Any) -> Any:
    db = Database(url)
    try:
        idempotency.ensure_table(db)
        return fn(db, *args)
    finally:
        db.close()


def _outcome(url: str | None, key: str) -> idempotency.Outcome | None:
    outcome: idempotency.Outcome | None = _with_db(url, idempotency.outcome, key)
    return outcome
