"""The host pool: starts ModelHost actors on demand and routes each call to the least-busy one.

One pool per driver process. For each model it keeps ``hosting.replicas`` named actors
(``MODEL-i`` in the ``cadre`` namespace, reused if they already exist), started the first time
a specialist on that model is called. "Least busy" is the replica with the fewest calls in flight
from this pool; ties rotate.

When a host dies mid-call, Ray restarts it (up to MAX_RESTARTS) and the pool retries the call,
at most ``max_retries`` times with a short backoff; a host that Ray gave up on is replaced by a
new actor. Errors raised by the engine itself (bad input, context overflow) are not retried: they
come back to the caller as the original typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError, RuntimeEnvSetupError

from orchestrator import telemetry
from orchestrator.catalog import SpecialistCatalog
from orchestrator.catalog.specs import ModelSpec
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.errors import CadreError, EngineError, HostUnavailableError
from orchestrator.hosting.host import RemoteModelHost
from orchestrator.hosting.runtime import NAMESPACE, ensure_ray
from orchestrator.specialists.asking import Asker


@dataclass
class Replica:
    """One host actor of a model, and how busy this pool keeps it."""

    name: str
    index: int
    handle: ray.actor.ActorHandle[Any]
    inflight: int = 0


class HostPool(Asker):
    """Routes specialist calls to model hosts; see the module docstring."""

    def __init__(
        self, catalog: SpecialistCatalog, *, max_retries: int = 2, retry_delay_s: float = 0.5
    ) -> None:
        self.catalog = catalog
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s
        self._replicas: dict[str, list[Replica]] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._turn = itertools.count()

    # -- hosts -----------------------------------------------------------------------------

    def replicas(self, model_name: str) -> list[Replica]:
        """The model's replicas, starting them if this pool has none yet."""
        if model_name not in self._replicas:
            model = self.catalog.model(model_name)
            ensure_ray()
            self._replicas[model_name] = [
                Replica(f"{model.name}-{i}", i, self._start(model, i))
                for i in range(model.hosting.replicas)
            ]
        return self._replicas[model_name]

    def _start(self, model: ModelSpec, index: int) -> ray.actor.ActorHandle[Any]:
        _check_placement(model)
        weights = self.catalog.weights_path(model)
        handle: ray.actor.ActorHandle[Any] = RemoteModelHost.options(  # type: ignore[assignment]
            name=f"{model.name}-{index}",
            namespace=NAMESPACE,
            get_if_exists=True,
            num_cpus=model.hosting.num_cpus,
            num_gpus=model.hosting.num_gpus,
            resources=dict(model.hosting.resources),
        ).remote(model, str(weights) if weights else None, index, telemetry.setup())
        return handle

    async def warm(self, model_name: str) -> None:
        """Start the model's hosts and wait until each has loaded its engine."""
        await asyncio.gather(*(self._stats(r) for r in self.replicas(model_name)))

    async def _started(self, model_name: str) -> None:
        """Before this pool's first call to a model: wait for its hosts in a
        ``cadre.host.start`` span, so loading a model is not an unexplained gap in the trace
        of the call that waited for it (hosts already up answer at once). Concurrent first
        calls wait together. A host that fails to start is left to the call's own retries."""
        ready = self._ready.get(model_name)
        loop = asyncio.get_running_loop()
        if ready is None or ready.get_loop() is not loop:
            ready = self._ready[model_name] = loop.create_future()
            try:
                with telemetry.span("cadre.host.start", {"cadre.model": model_name}):
                    await self.warm(model_name)
            except CadreError:
                pass  # recorded on the span; generate retries, then says what happened
            finally:
                ready.set_result(None)
        await ready

    async def _stats(self, replica: Replica) -> dict[str, int | str]:
        try:
            stats: dict[str, int | str] = await replica.handle.stats.remote()
            return stats
        except RuntimeEnvSetupError as err:
            raise _no_runtime_env(err, replica) from None
        except RayActorError as err:
            raise HostUnavailableError(
                f"host {replica.name} did not start: {_reason(err)}"
            ) from None

    def shutdown(self) -> None:
        """End every host this pool started, after they export their buffered spans."""
        handles = [r.handle for replicas in self._replicas.values() for r in replicas]
        if not handles:  # no model was called: there is no Ray to talk to, and none to start
            return
        # A dead or stuck host has nothing more to say.
        with contextlib.suppress(
            RayActorError, RuntimeEnvSetupError, ray.exceptions.GetTimeoutError
        ):
            ray.get([h.flush.remote() for h in handles], timeout=10)
        for handle in handles:
            ray.kill(handle, no_restart=True)
        self._replicas.clear()

    # -- calls -----------------------------------------------------------------------------

    def _least_busy(self, replicas: list[Replica]) -> Replica:
        start = next(self._turn) % len(replicas)
        rotated = replicas[start:] + replicas[:start]
        return min(rotated, key=lambda r: r.inflight)

    async def generate(
        self, model_name: str, request: GenerationRequest
    ) -> tuple[GenerationResult, int]:
        """One request on the model's least-busy host; returns the result and attempts taken."""
        await self._started(model_name)
        replicas = self.replicas(model_name)
        last: Exception | None = None
        for attempt in range(1, self.max_retries + 2):
            replica = self._least_busy(replicas)
            replica.inflight += 1
            try:
                (result,) = await replica.handle.generate.remote([request], telemetry.inject())
                return result, attempt
            except RayTaskError as err:  # the engine raised: its own typed error, no retry
                raise _engine_error(err, replica) from None
            except RuntimeEnvSetupError as err:  # Ray cannot make the host: retrying won't
                raise _no_runtime_env(err, replica) from None
            except RayActorError as err:
                last = err
                await asyncio.sleep(self.retry_delay_s * attempt)
                await self._recover(model_name, replica)
            finally:
                replica.inflight -= 1
        raise HostUnavailableError(
            f"model {model_name!r}: the host died {self.max_retries + 1} times serving this call "
            f"(last: {_reason(last)}); see the host logs under /tmp/ray/session_latest/logs"
        )

    async def stream(
        self, model_name: str, request: GenerationRequest
    ) -> AsyncIterator[str | GenerationResult]:
        """One request on the model's least-busy host, its text piece by piece as the host
        yields it, then its result. A host that dies before the first piece is retried as
        :meth:`generate` retries; one that dies mid-answer fails the call (what was sent
        cannot be taken back)."""
        await self._started(model_name)
        replica = self._least_busy(self.replicas(model_name))
        replica.inflight += 1
        sent = False
        try:
            pieces: Any = replica.handle.generate_stream.options(num_returns="streaming").remote(
                request, telemetry.inject()
            )
            async for ref in pieces:
                item = await ref
                sent = True
                yield item
            return
        except RayTaskError as err:
            raise _engine_error(err, replica) from None
        except RuntimeEnvSetupError as err:
            raise _no_runtime_env(err, replica) from None
        except RayActorError as err:
            if sent:
                raise HostUnavailableError(
                    f"model {model_name!r}: host {replica.name} died while answering "
                    f"({_reason(err)})"
                ) from None
            await self._recover(model_name, replica)
        finally:
            replica.inflight -= 1
        result, _ = await self.generate(model_name, request)  # the host died before answering
        if result.text:
            yield result.text
        yield result

    async def _recover(self, model_name: str, replica: Replica, timeout_s: float = 30.0) -> None:
        """After a host died: wait until Ray has restarted it, so the retry is not spent on the
        restart; if Ray gave up on it (MAX_RESTARTS used), start a new host in its place."""
        try:
            await asyncio.wait_for(replica.handle.stats.remote(), timeout_s)
        except ActorDiedError:
            replica.handle = self._start(self.catalog.model(model_name), replica.index)
        except (RayActorError, TimeoutError):
            pass  # still coming back: the retry will wait in Ray's queue or fail and count


def _engine_error(err: RayTaskError, replica: Replica) -> CadreError:
    """What the engine raised inside the host: its own typed error where it is one of ours."""
    cause = err.cause
    if isinstance(cause, CadreError):
        return cause
    return EngineError(f"host {replica.name} failed: {cause!r}")


def _no_runtime_env(err: RuntimeEnvSetupError, replica: Replica) -> HostUnavailableError:
    """Ray could not make the host's process (its runtime environment: a job's working_dir,
    pip packages): the error Ray reports last, not its traceback."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return HostUnavailableError(
        f"host {replica.name} could not start: Ray could not set up its runtime environment "
        f"({lines[-1][:300] if lines else 'no reason given'})"
    )


def _check_placement(model: ModelSpec) -> None:
    """Refuse, with the reason, a host that no node of this Ray cluster could ever place
    (Ray would otherwise keep the actor pending forever)."""
    hosting = model.hosting
    asks = {"CPU": hosting.num_cpus, "GPU": hosting.num_gpus, **hosting.resources}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    if any(all(node.get(k, 0) >= v for k, v in asks.items() if v) for node in nodes):
        return
    wanted = ", ".join(f"{k} {v:g}" for k, v in asks.items() if v)
    offered = "; ".join(
        ", ".join(f"{k} {v:g}" for k, v in sorted(node.items()) if _shown(k)) for node in nodes
    )
    raise HostUnavailableError(
        f"model {model.name!r}: no node of this Ray cluster has what one host asks for "
        f"(hosting: {wanted}); the nodes offer: {offered or 'nothing'}. Change the model's "
        "hosting or start a node with those resources (ray start --resources ...)."
    )


def _shown(resource: str) -> bool:
    return not resource.startswith("node:") and "memory" not in resource


def _reason(err: Exception | None) -> str:
    text = str(err or "unknown").strip().splitlines()
    return text[0] if text else "unknown"
