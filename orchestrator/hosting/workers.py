"""Run workers: Ray actors that drive runs, so an API process never runs one in a request.

An API process records a run as ``queued`` and hands its id to a worker; the worker drives it
until it ends or waits for review, records the outcome and tells the tenant's webhooks. A review
decision is recorded by the API and handed to a worker the same way (``apply``).

Workers are named, detached actors (``cadre-runs-N`` in the ``cadre`` namespace): every API
process on the cluster finds the same ones, and they outlive an API restart. Each drives one run
at a time (one event loop sharing a SQLite database with its checkpointer must not block on a
write lock another of its own runs holds), so parallelism is the number of workers. Model calls
go to the shared model hosts, as they do from the CLI. A worker that dies is restarted by Ray; a
run it was driving is picked up again by ``cadre runs resume`` or by the next API start, which
hands every run still queued to a worker.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any

import ray

from orchestrator import telemetry
from orchestrator.errors import CadreError
from orchestrator.hosting.runtime import NAMESPACE, ensure_ray


class RunWorker:
    """Drives runs of one catalog against one run database. Created through RunWorkers."""

    def __init__(
        self,
        catalog_root: str,
        graphs_root: str | None,
        database_url: str,
        telemetry_config: telemetry.TelemetryConfig | None,
    ) -> None:
        from orchestrator.catalog import load_catalog

        telemetry.setup(telemetry_config, schedule_delay_ms=500)
        self.catalog = load_catalog(catalog_root, graphs_root)
        self.database_url = database_url
        self._runner: Any = None
        self.driven = 0

    async def _get_runner(self) -> Any:
        if self._runner is None:
            from orchestrator.api.webhooks import Webhooks
            from orchestrator.runs.runner import Runner

            self._runner = await Runner(self.catalog, database_url=self.database_url).__aenter__()
            self._webhooks = Webhooks(self._runner.db)
        return self._runner

    async def drive(self, run_id: str) -> str:
        """Drive a queued run; returns its status afterwards."""
        return await self._work(run_id, "drive")

    async def apply(self, run_id: str) -> str:
        """Apply the review decisions recorded for a run and drive it on."""
        return await self._work(run_id, "apply")

    async def _work(self, run_id: str, verb: str) -> str:
        runner = await self._get_runner()
        with contextlib.suppress(CadreError):  # a failure is in the run's record and webhook
            await getattr(runner, verb)(run_id)
        self.driven += 1
        record = runner.store.run(run_id)
        self._webhooks.notify(record, runner.store)
        telemetry.flush()
        return str(record.status)

    async def stats(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "driven": self.driven}


RemoteRunWorker = ray.remote(max_restarts=-1, max_task_retries=0)(RunWorker)


class RunWorkers:
    """The workers an API process hands runs to (started if they do not exist yet)."""

    def __init__(
        self,
        catalog_root: Path,
        graphs_root: Path | None,
        database_url: str,
        count: int = 2,
        prefix: str = "cadre-runs",
    ) -> None:
        ensure_ray()
        config = telemetry.setup()
        self.names = [f"{prefix}-{i}" for i in range(count)]
        self.handles: list[Any] = [
            RemoteRunWorker.options(  # type: ignore[attr-defined]
                name=name,
                namespace=NAMESPACE,
                get_if_exists=True,
                lifetime="detached",
                num_cpus=0,
                max_concurrency=1,
            ).remote(
                str(catalog_root), str(graphs_root) if graphs_root else None, database_url, config
            )
            for name in self.names
        ]
        self._turn = itertools.count()

    def hand(self, run_id: str, verb: str = "drive") -> ray.ObjectRef:
        """Give a run to the next worker in turn; returns at once (the ref says when it ends)."""
        handle = self.handles[next(self._turn) % len(self.handles)]
        return getattr(handle, verb).remote(run_id)

    def stats(self) -> list[dict[str, Any]]:
        return ray.get([h.stats.remote() for h in self.handles], timeout=30)

    def shutdown(self) -> None:
        """End the workers (they are detached: they outlive this process unless ended)."""
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
