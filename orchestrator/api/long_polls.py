"""Held long polls (``GET /v1/runs/{id}?wait_s=``): one reader for all of an API process's.

Each held request waits on a future; one task reads the statuses of every run being waited on in
one query per tick, and settles the futures of the runs that stopped moving. A thousand clients
holding long polls cost one indexed read per tick, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

MOVING = ("queued", "running", "deciding")
"""Statuses a long poll waits through (``deciding``: a run waiting for review whose reviews are
all decided, until a driver applies the decision; see ``RunStore.statuses``)."""
CHUNK = 500
"""Run ids per query (under every database's bound on parameters)."""


class LongPolls:
    """Waits until runs stop moving, for many waiters at once, reading with ``statuses``."""

    def __init__(
        self, statuses: Callable[[list[str]], dict[str, str]], poll_s: float = 0.05
    ) -> None:
        self._statuses = statuses
        """Run id to status for the ids given (the ids not found are left out)."""
        self.poll_s = poll_s
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None

    async def wait(self, run_id: str, timeout_s: float) -> None:
        """Return when the run is no longer queued or running, or after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (a test client's): start afresh on it
            self._loop, self._waiters, self._reader = loop, {}, None
        settled: asyncio.Future[None] = loop.create_future()
        self._waiters.setdefault(run_id, set()).add(settled)
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read())
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(settled, timeout_s)
        finally:
            waiting = self._waiters.get(run_id)
            if waiting is not None:
                waiting.discard(settled)
                if not waiting:
                    del self._waiters[run_id]

    async def _read(self) -> None:
        """Every tick, while anyone waits: one read, and the settled runs' waiters released."""
        while self._waiters:
            await asyncio.sleep(self.poll_s)
            ids = list(self._waiters)
            try:
                found = await asyncio.to_thread(self._read_all, ids)
            except Exception as err:  # a database hiccup: the next tick reads again
                log.warning("long polls: reading run statuses failed: %s", err)
                continue
            for run_id in ids:
                if found.get(run_id, "gone") not in MOVING:
                    for waiter in self._waiters.pop(run_id, ()):
                        if not waiter.done():
                            waiter.set_result(None)

    def _read_all(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), CHUNK):
            found |= self._statuses(ids[start : start + CHUNK])
        return found
