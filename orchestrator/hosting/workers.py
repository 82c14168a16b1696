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

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import ray

from orchestrator import telemetry
from orchestrator.hosting.runtime import NAMESPACE, ensure_ray

WAKE_GAP_S = 0.02
"""The least time between two rounds of wakes (see :meth:`RunWorkers.wake`)."""


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
            "pid": os.getpid(),
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
            RemoteRunWorker.options(
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
        self._wake_lock = threading.Lock()
        self._wake_timer: threading.Timer | None = None
        self._last_wake = 0.0

    def wake(self) -> None:
        """Tell every worker to claim now (fire and forget: a lost wake costs one poll).

        Wakes are coalesced: at most one round every ``WAKE_GAP_S``, and a wake asked for
        inside the gap is sent at its end; so a burst of submissions costs the workers a few
        claims, not one actor call each, and no submission waits more than the gap."""
        with self._wake_lock:
            if self._wake_timer is not None:
                return  # a round is already due: it covers this run too
            wait = self._last_wake + WAKE_GAP_S - time.monotonic()
            if wait > 0:
                self._wake_timer = threading.Timer(wait, self._wake_now)
                self._wake_timer.daemon = True
                self._wake_timer.start()
                return
        self._wake_now()

    def _wake_now(self) -> None:
        with self._wake_lock:
            self._wake_timer, self._last_wake = None, time.monotonic()
        for handle in self.handles:
            handle.wake.remote()

    def stats(self) -> list[dict[str, Any]]:
        return ray.get([h.stats.remote() for h in self.handles], timeout=30)

    def shutdown(self) -> None:
        """End the workers (they are detached: they outlive this process unless ended)."""
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
