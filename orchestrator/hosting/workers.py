"""Run workers: Ray actors that each run a run driver, so an API process never runs one.

The run database is the queue (:mod:`orchestrator.runs.queue`): an API process only records a
run as ``queued`` (or a decision as ``decided``) and then wakes the workers; it never hands a run
to a particular worker, so a dead API process loses nothing. Each worker claims runs with a lease
and drives many of them at once on one event loop (:mod:`orchestrator.runs.worker`). A worker
that dies stops renewing its leases; when they run out, any other worker claims its runs and
continues them from their last checkpoint, with no command typed.

Workers are named, detached actors (``cadre-runs-N`` in the ``cadre`` namespace) spread over the
cluster's nodes: every API process finds the same ones, and they outlive an API restart. They ask
for no CPU (they mostly wait on model hosts and the database). What a worker runs is injected as
a driver factory (a picklable callable), so this module stays free of the layers above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from orchestrator import telemetry
from orchestrator.hosting.runtime import NAMESPACE, ensure_ray


class RunWorker:
    """One driver on its own event loop thread; the actor's methods wake it and report."""

    def __init__(
        self,
        make_driver: Callable[[], Any],
        serve_in_thread: Callable[[Any], Any],
        telemetry_config: telemetry.TelemetryConfig | None,
    ) -> None:
        telemetry.setup(telemetry_config, schedule_delay_ms=500)
        self.driver = make_driver()
        self.thread = serve_in_thread(self.driver)

    def wake(self) -> None:
        """Claim now: a run was recorded or a decision taken."""
        self.driver.wake()

    def stats(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            **asdict(self.driver.stats),
            "serving": self.thread.is_alive(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }


RemoteRunWorker = ray.remote(max_restarts=-1, max_task_retries=0)(RunWorker)


class RunWorkers:
    """The run workers of a cluster (started if they do not exist yet)."""

    def __init__(
        self,
        make_driver: Callable[[], Any],
        serve_in_thread: Callable[[Any], Any],
        count: int = 2,
        prefix: str = "cadre-runs",
        options: dict[str, Any] | None = None,
    ) -> None:
        """``make_driver`` builds a run driver inside each actor and ``serve_in_thread``
        starts it; ``options`` are extra Ray actor options (resources, scheduling strategy)."""
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
                max_concurrency=4,
                **({"scheduling_strategy": "SPREAD"} | (options or {})),
            ).remote(make_driver, serve_in_thread, config)
            for name in self.names
        ]

    def wake(self) -> None:
        """Tell every worker to claim now (fire and forget: a lost wake costs one poll)."""
        for handle in self.handles:
            handle.wake.remote()

    def stats(self) -> list[dict[str, Any]]:
        return ray.get([h.stats.remote() for h in self.handles], timeout=30)

    def shutdown(self) -> None:
        """End the workers (they are detached: they outlive this process unless ended)."""
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
