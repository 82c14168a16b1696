"""A run worker's loop: claim runs from the queue and drive many of them at once.

One :class:`RunDriver` holds one :class:`~orchestrator.runs.runner.Runner` (one checkpointer, one
run store, one event loop) and drives up to ``runs_at_once`` runs concurrently, so the model
engines see as many concurrent calls as there are runs waiting on them: that is what lets vLLM
batch. It claims when it has free slots, and sleeps otherwise until a run of its own finishes, a
:meth:`wake` arrives (the API records a run, then wakes every worker), or ``poll_s`` passes (a
wake lost with a dead API process, or a lease run out, is found by the next poll).

Nothing here knows about Ray: :mod:`orchestrator.hosting.workers` runs drivers inside Ray actors,
and tests run them in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import config
from orchestrator.errors import CadreError
from orchestrator.runs.queue import DEFAULT_LEASE_S
from orchestrator.runs.runner import Runner
from orchestrator.workflow.catalog import Catalog, load_catalog

DEFAULT_RUNS_AT_ONCE = config.RUNS_PER_WORKER
log = logging.getLogger(__name__)


@dataclass
class DriverStats:
    """What a driver has done so far."""

    pid: int = field(default_factory=os.getpid)
    owner: str = ""
    driven: int = 0
    """Runs taken and driven as far as they went."""
    active: int = 0
    """Runs being driven now."""
    most_at_once: int = 0
    """The most runs driven at the same time."""


class RunDriver:
    """Claims runs with leases and drives up to ``runs_at_once`` of them on one event loop."""

    def __init__(
        self,
        catalog: Catalog,
        database_url: str,
        *,
        runs_at_once: int = DEFAULT_RUNS_AT_ONCE,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = config.POLL_S,
        asker: Any = None,
        on_settled: Any = None,
    ) -> None:
        if runs_at_once < 1:
            raise ValueError("runs_at_once must be at least 1")
        self.catalog = catalog
        self.database_url = database_url
        self.runs_at_once = runs_at_once
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._asker = asker
        self._on_settled = on_settled
        """Called with (runner, run record) after each run is driven (webhooks)."""
        self.stats = DriverStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    @classmethod
    def from_paths(
        cls, catalog_root: str, graphs_root: str | None, database_url: str, **options: Any
    ) -> RunDriver:
        """A driver for a catalog on disk (what a Ray actor builds from plain arguments)."""
        return cls(load_catalog(Path(catalog_root), graphs_root), database_url, **options)

    def wake(self) -> None:
        """Claim now rather than at the next poll (thread-safe; a no-op before serving)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Finish serving: no new claims; runs in flight are let go for others to take."""
        self._stopping = True
        self.wake()

    async def serve(self) -> None:
        """Claim and drive runs until :meth:`stop`."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        active: set[asyncio.Task[None]] = set()
        async with Runner(
            self.catalog, database_url=self.database_url, asker=self._asker, lease_s=self.lease_s
        ) as runner:
            self.stats.owner = runner.owner
            try:
                while not self._stopping:
                    free = self.runs_at_once - len(active)
                    claimed = await runner.claim(free) if free else []
                    for run_id in claimed:
                        task = asyncio.create_task(self._drive(runner, run_id))
                        active.add(task)
                        task.add_done_callback(active.discard)
                    self.stats.active = len(active)
                    self.stats.most_at_once = max(self.stats.most_at_once, len(active))
                    if claimed and len(claimed) == free:
                        continue  # more may be waiting; claim again once a slot frees
                    await self._idle(active)
            finally:
                for task in active:
                    task.cancel()
                await asyncio.gather(*active, return_exceptions=True)

    async def _idle(self, active: set[asyncio.Task[None]]) -> None:
        """Until a wake, a run of ours finishes (a slot frees), or the poll interval passes."""
        assert self._wake is not None
        waits = [asyncio.ensure_future(self._wake.wait()), *active]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()
        self._wake.clear()

    async def _drive(self, runner: Runner, run_id: str) -> None:
        try:
            record = None
            try:
                record = await runner.drive(run_id)
            except CadreError:
                pass  # a failure is in the run's record
            except Exception:  # a bug: in the run's record too, and logged with its traceback
                log.exception("driving run %s", run_id)
            if record is None:
                record = await asyncio.to_thread(runner.store.run, run_id)
            if self._on_settled is not None:
                await asyncio.to_thread(self._on_settled, runner, record)
        except Exception:  # a bug driving one run must not end the worker's other runs
            log.exception("driving run %s", run_id)
        finally:
            self.stats.driven += 1
            self.stats.active -= 1


def serve_in_thread(driver: RunDriver) -> threading.Thread:
    """Run ``driver.serve()`` on an event loop of its own, in a daemon thread (a Ray actor's
    methods then stay free for :meth:`RunDriver.wake` and stats)."""
    thread = threading.Thread(
        target=asyncio.run, args=(driver.serve(),), name="cadre-run-driver", daemon=True
    )
    thread.start()
    return thread
