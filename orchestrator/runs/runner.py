"""Start, resume, review and cancel runs: the glue between the graph, the checkpointer, the run
store and the run queue.

A run's id is its LangGraph thread id. One driver at a time holds a run: a lease in the run
database (:mod:`orchestrator.runs.queue`), which the driver renews every tick while it drives and
gives up when the run ends or waits for review. A driver that dies stops renewing, and any other
driver may then take the run and continue it from its last checkpoint; a dead owner on this
machine is replaced at once. Review decisions are recorded first (exactly one wins) and then
applied by whichever driver holds the run, all decided reviews of a run in one resume.

One Runner drives many runs at once on one event loop (a run worker's, or ``cadre run --inputs``).
Every database call leaves the loop (``asyncio.to_thread``): the checkpointer's connection may
hold a SQLite write transaction that only the loop can commit, and a blocked loop would wait for
itself. Per step, the driver only appends to an in-memory list: finished-node events are written
in batches, and cancellation arrives with the lease renewal, one query a tick for all runs held.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from langgraph.errors import GraphRecursionError
from langgraph.types import Command
from opentelemetry import trace

from orchestrator import config, telemetry
from orchestrator.config import DEFAULT_TENANT
from orchestrator.errors import (
    CadreError,
    InputError,
    NotFoundError,
    RunError,
    clip,
    schema_misfit,
    unfit_json,
)
from orchestrator.runs.budget import token_budget
from orchestrator.runs.queue import DEFAULT_LEASE_S, Renewal, RunQueue
from orchestrator.runs.reviews import record_decision
from orchestrator.runs.spans import cancel_traced, review_span, run_span
from orchestrator.runs.store import (
    FINISHED,
    EventKind,
    ReviewRecord,
    RunRecord,
    RunStore,
    new_owner,
)
from orchestrator.specialists.asking import Asker
from orchestrator.storage.database import Database, database_trouble, open_checkpointer
from orchestrator.telemetry import gen_ai
from orchestrator.workflow.catalog import Catalog
from orchestrator.workflow.graph import compile_workflow
from orchestrator.workflow.nodes.base import DriverStopped
from orchestrator.workflow.nodes.memory import approvers, memory_namespace
from orchestrator.workflow.spec import BUILT_IN_KEYS, WorkflowSpec
from orchestrator.workflow.state import INTERNAL_KEYS, TOKEN, add_usage
from orchestrator.workflow.templates import lookup

T = TypeVar("T")
CHECKPOINT_WRITE = "cadre.checkpoint.write"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One step of a run as it happens: a node finished (or a review is waiting)."""

    run_id: str
    node: str
    elapsed_s: float
    keys: tuple[str, ...]
    usage: dict[str, dict[str, int]]
    tool_error: dict[str, Any] | None = None
    """The node's tool failed (its error went into state, and to ``on_error`` if named)."""


MAX_STEPS = 1000
"""The most graph steps one drive of a run may take (a step runs every node that is due at
once, a map's branches included): a loop that never exits fails the run here."""


def check_input(spec: WorkflowSpec, data: Any) -> dict[str, Any]:
    """The run input, or InputError naming the field that does not fit the input schema."""
    if not isinstance(data, dict):
        raise InputError(f"workflow {spec.name!r}: the input must be a JSON object")
    for key in data:
        if key in BUILT_IN_KEYS or str(key).startswith("_"):
            raise InputError(
                f"workflow {spec.name!r}: input key {key!r} is one Cadre keeps for itself (a "
                "reviewer's reason, a tool's error, or a name starting with '_'); a run cannot "
                "set it"
            )
    fault = unfit_json(data)
    if fault is not None:
        where, why = fault
        raise InputError(f"workflow {spec.name!r}: {clip(where or 'input', 200)}: {why}")
    misfit = schema_misfit(spec.input_schema, data)
    if misfit is not None:
        raise InputError(f"workflow {spec.name!r}: {misfit[0] or 'input'}: {misfit[1]}")
    return data


class Runner:
    """Drives runs of the catalog's workflows against the run database.

    Use as an async context manager: it opens the database and the checkpointer, keeps the
    leases of the runs it drives, and (unless given one) a host pool that it shuts down on exit.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        database_url: str | None = None,
        asker: Asker | None = None,
        tenant: str = DEFAULT_TENANT,
        store: Any = None,
        on_progress: Callable[[Progress], None] | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        tick_s: float = 0.25,
    ) -> None:
        self.catalog = catalog
        self.database_url = database_url
        self._asker = asker
        self._owns_pool = asker is None
        self.on_progress = on_progress or (lambda _: None)
        self._graphs: dict[str, Any] = {}
        self.tenant = tenant
        self._memory = store
        self.owner = new_owner()
        """This driver's name on the leases it holds."""
        self.lease_s = lease_s
        self.tick_s = tick_s
        """How often the driver writes its events and looks for cancelled runs (one read)."""
        self._stops: dict[str, asyncio.Event] = {}
        self._valid: dict[str, float] = {}
        """Per run held: until when (monotonic) its lease surely holds, by this process's own
        clock; past it, the run is not touched again before a renewal says it is still ours."""
        """The runs this driver holds, each with the signal to stop driving it (cancelled, or
        its lease lost)."""
        self._events: list[tuple[str, float, EventKind, str, dict[str, Any]]] = []
        """Finished nodes (and streamed text) not yet written: a tick's worth, written in one
        statement."""
        self._flushing: asyncio.Future[None] | None = None
        """The batch of finished nodes being written, if one is."""

    async def __aenter__(self) -> Runner:
        telemetry.setup()
        self.db = Database(self.database_url)
        self.store = RunStore(self.db)
        self.budget = token_budget(self.db)  # workflow and tenant token budgets, per call
        self.queue = RunQueue(self.db, self.lease_s)
        self._checkpointer_cm = open_checkpointer(self.db.url)
        self.checkpointer = await self._checkpointer_cm.__aenter__()
        instrument_checkpointer(self.checkpointer, guard=self._guard_writes)
        if self._memory is None:
            from orchestrator.memory.store import SqlStore

            self._memory = SqlStore(self.db)  # the embedding model loads on first use only
        self._keeper = asyncio.create_task(self._keep_leases())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper
        try:
            await self._flush_events()
            for run_id in list(self._stops):  # interrupted mid-run: let any other driver take it
                await self._io(self.queue.release, run_id, self.owner)
        except Exception as failed:  # the database went away: the leases run out by themselves
            log.warning("could not hand runs back (%s); their leases run out instead", failed)
        await self._checkpointer_cm.__aexit__(kind, err, tb)
        self.db.close()
        if self._owns_pool and self._asker is not None:
            self._asker.shutdown()  # type: ignore[attr-defined]

    @property
    def asker(self) -> Asker:
        if self._asker is None:
            from orchestrator.hosting.pool import HostPool

            self._asker = HostPool(self.catalog)
        return self._asker

    def graph(self, workflow: str) -> Any:
        if workflow not in self._graphs:
            spec = self.catalog.workflow(workflow)
            from orchestrator.memory.corpus import Corpora

            corpora = Corpora(self.catalog.root / "corpora", self.db)
            self._graphs[workflow] = compile_workflow(
                spec,
                self.catalog,
                self.asker,
                self.checkpointer,
                self._memory,
                corpora,
                budget=self.budget,
                guard=self._guard,
            )
        return self._graphs[workflow]

    @staticmethod
    async def _io(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A database call, off the event loop (see the module docstring)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- leases ----------------------------------------------------------------------------

    def _hold(self, run_id: str) -> None:
        self._stops.setdefault(run_id, asyncio.Event())
        self._valid[run_id] = time.monotonic() + self.lease_s

    async def _let_go(self, run_id: str) -> None:
        self._stops.pop(run_id, None)
        self._valid.pop(run_id, None)
        await self._record(self.queue.release, run_id, self.owner)  # after its last nodes

    async def _acquire(self, run_id: str) -> bool:
        if await self._io(self.queue.acquire, run_id, self.owner):
            self._hold(run_id)
            return True
        return False

    async def claim(self, limit: int) -> list[str]:
        """Lease up to ``limit`` runs that have work waiting (see :mod:`.queue`)."""
        # A run of ours whose lease lapsed (the loop was blocked past it) comes back renewed;
        # it is being driven already.
        claimed = [
            r for r in await self._io(self.queue.claim, self.owner, limit) if r not in self._stops
        ]
        for run_id in claimed:
            self._hold(run_id)
        return claimed

    async def _keep_leases(self) -> None:
        """Every tick: write the finished-node events and signal the runs that were cancelled
        or whose lease another driver took; every third of a lease, renew all leases held."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self._flush_events()
                if not self._stops:
                    continue
                asked = time.monotonic()
                due = asked - renewed >= self.lease_s / 3
                renewal = await self._io(self.queue.renew, self.owner, extend=due)
                renewed = asked if due else renewed
            except Exception as err:  # a database hiccup: the next tick tries again
                log.warning("lease renewal failed (retrying next tick): %s", err)
                continue
            self._renewed(renewal, asked if due else None)

    def _renewed(self, renewal: Renewal, extended_at: float | None) -> None:
        """What a renewal said: the runs still held (their leases extended from
        ``extended_at``, if it extended them) and those cancelled or held by another driver
        now, whose drives are told to stop."""
        for run_id, stop in list(self._stops.items()):
            if run_id not in renewal.held:
                self._valid.pop(run_id, None)
            elif extended_at is not None:
                self._valid[run_id] = extended_at + self.lease_s
            if run_id in renewal.cancelled or run_id not in renewal.held:
                stop.set()

    async def _guard(self, run_id: str) -> None:
        """Before a model or tool call of a run this driver holds: not if the run was cancelled
        (read from the run's row, one indexed statement) or its lease went elsewhere
        (DriverStopped). A lease that by this process's clock may
        have run out (the process stood still: a pause, a swap storm, a frozen VM) is renewed
        first; if another driver took the run meanwhile, this one stops instead of calling
        again what the other has called."""
        stop = self._stops.get(run_id)
        if stop is None:
            return  # not a run this driver holds a lease on
        if not stop.is_set() and time.monotonic() < self._valid.get(run_id, 0.0):
            # The lease is sound; a cancel is read now, not at the next tick: a call (a
            # side effect, a model's tokens) must not start after the API said "cancelled".
            status = (await self._io(self.store.statuses, [run_id])).get(run_id)
            if status != "cancelled":
                return
            stop.set()
        else:
            await self._confirm(run_id, stop)
        if stop.is_set():
            raise DriverStopped(f"run {run_id} was cancelled, or another driver holds it now")

    async def _guard_writes(self, run_id: str) -> None:
        """Before a checkpoint write: only while this driver holds the run's lease (a write
        after another driver took the run would fork its thread's history). A cancelled run's
        step in flight is still written."""
        stop = self._stops.get(run_id)
        if stop is None or time.monotonic() < self._valid.get(run_id, 0.0):
            return
        await self._confirm(run_id, stop)
        if run_id not in self._valid:
            raise DriverStopped(f"run {run_id}: another driver holds it now; nothing written")

    async def _confirm(self, run_id: str, stop: asyncio.Event) -> None:
        """Renew this driver's leases now, to learn whether it still holds ``run_id``."""
        if not stop.is_set() or run_id in self._valid:
            asked = time.monotonic()
            self._renewed(await self._io(self.queue.renew, self.owner, extend=True), asked)

    def _token(self, run_id: str, chunk: Any) -> None:
        """A piece of a streaming node's text: added to that node's ``token`` event not yet
        written, if there is one, so a tick writes one event per node, not one per token."""
        if not isinstance(chunk, dict) or TOKEN not in chunk:
            return
        node, piece = str(chunk.get("node", "")), str(chunk[TOKEN])
        last = self._events[-1] if self._events else None
        if last is not None and last[0] == run_id and last[2] == "token" and last[3] == node:
            last[4]["text"] += piece
            return
        self._events.append((run_id, time.time(), "token", node, {"text": piece}))

    async def _flush_events(self) -> None:
        """Write the finished nodes of every run held (one statement)."""
        events, self._events = self._events, []
        if not events:
            return
        self._flushing = asyncio.ensure_future(self._io(self.store.add_events, events))
        await self._flushing

    async def _record(self, write: Callable[..., T], run_id: str, *args: Any, **kwargs: Any) -> T:
        """Write a status change or review of a run, after the run's finished nodes: its log
        is then in the order things happened. Only this run waits (for a batch in flight that
        may hold its earlier nodes); other runs' writes go on beside it."""
        mine = [e for e in self._events if e[0] == run_id]
        if mine:
            self._events = [e for e in self._events if e[0] != run_id]
        if self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)

        def both() -> T:
            self.store.add_events(mine)
            return write(run_id, *args, **kwargs)

        return await self._io(both)

    # -- the verbs -------------------------------------------------------------------------

    async def start(
        self,
        workflow: str,
        data: Any,
        on_created: Callable[[RunRecord], None] | None = None,
    ) -> RunRecord:
        """Validate the input, create the run and drive it until it ends or waits for review;
        ``on_created`` hears of the run as soon as it is recorded (its id, before any node)."""
        spec = self.catalog.workflow(workflow)
        check_input(spec, data)
        record, _ = await self._io(
            self.store.create_run,
            spec.name,
            data,
            tenant=self.tenant,
            driver=self.owner,
            lease_s=self.lease_s,
        )
        if on_created is not None:
            on_created(record)
        self._hold(record.id)
        return await self._continue(record.id)

    def submit(
        self,
        workflow: str,
        data: Any,
        *,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """Validate the input and queue a run for a worker to claim; with an
        ``idempotency_key`` the tenant used before, the first run comes back (and False)."""
        spec = self.catalog.workflow(workflow)
        check_input(spec, data)
        return self.store.create_run(
            spec.name, data, tenant=tenant, idempotency_key=idempotency_key, queued=True
        )

    async def drive(self, run_id: str) -> RunRecord:
        """Take one run and drive it as far as it goes: from its start, from its last
        checkpoint, or on with its recorded decisions. A run another driver holds is left to
        it; a finished one, or one waiting for a person, comes back as it is."""
        held = run_id in self._stops  # claimed by this driver: its lease is already ours
        if not held and not await self._acquire(run_id):
            return await self._io(self.store.run, run_id)
        return await self._continue(run_id)

    async def _continue(self, run_id: str) -> RunRecord:
        """Drive a run this driver holds, whatever it was doing, then let it go."""
        try:
            record = await self._io(self.store.run, run_id)
            ended: str | None = None
            if record.status == "queued":
                trace_context = telemetry.run_trace(record.trace_context)
                record = dataclasses.replace(record, trace_context=trace_context)
                async with self._segment(record):
                    await self._record(self._start, run_id, trace_context)
                    ended = await self._drive(record, record.input)
            elif record.status == "running":  # its driver died: on from the last checkpoint
                config = {"configurable": {"thread_id": run_id}}
                started = (await self.graph(record.workflow).aget_state(config)).values
                if "traceparent" not in record.trace_context:
                    carrier = telemetry.run_trace(record.trace_context)
                    record = dataclasses.replace(record, trace_context=carrier)
                    await self._io(self.store.set_trace_context, run_id, carrier)
                async with self._segment(record, resumed=bool(started)):
                    ended = await self._drive(record, None if started else record.input)
            # A run that succeeded has no decisions to apply, and never will.
            await self._hand_back(run_id, decisions=ended != "succeeded")
        finally:
            if run_id in self._stops:
                await self._let_go(run_id)
        return await self._io(self.store.run, run_id)

    async def apply(self, run_id: str) -> RunRecord:
        """Apply the review decisions recorded for a run (by a reviewer elsewhere) and drive it
        on, unless another driver holds it: that one applies them when it is done."""
        return await self.drive(run_id)

    async def resume(self, run_id: str) -> RunRecord:
        """Continue a run whose process died or that failed, from its last checkpoint; apply
        any review decisions waiting to be applied."""
        record = await self._io(self.store.run, run_id)
        if record.status in ("succeeded", "cancelled"):
            raise InputError(f"run {run_id} is {record.status}; there is nothing to resume")
        self._drivable(record)
        if not await self._acquire(run_id):
            raise InputError(
                f"run {run_id} is being driven by {record.owner}; wait for it or cancel it"
            )
        decided = await self._io(self.store.reviews, "decided", run_id)
        if record.status == "awaiting_review" and not decided:
            await self._let_go(run_id)
            pending = await self._io(self.store.reviews, "pending", run_id)
            ids = ", ".join(r.id for r in pending)
            raise InputError(
                f"run {run_id} is waiting for review {ids}; decide it with `cadre review`"
            )
        if record.status == "failed" and not decided:
            # The failed attempt wrote the trace's root; this one writes its own, under it.
            carrier = telemetry.next_root(record.trace_context)
            await self._record(self.store.set_status, run_id, "running", trace_context=carrier)
        return await self._continue(run_id)

    async def decide(
        self,
        review_id: str,
        decision: str,
        by: str,
        reason: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> tuple[ReviewRecord, RunRecord]:
        """Record a reviewer's decision, then drive the run on unless another driver holds
        it (that one applies the decision when it is done)."""
        review = await self._io(self.store.review, review_id)
        self._drivable(await self._io(self.store.run, review.run_id))
        recorded = await self._io(
            record_decision, self.store, self.catalog, review_id, decision, by, reason, changes
        )
        if recorded.status == "pending":  # one approval of several: the run waits for the rest
            return recorded, await self._io(self.store.run, recorded.run_id)
        run = await self.drive(recorded.run_id)
        return await self._io(self.store.review, review_id), run

    def _drivable(self, record: RunRecord) -> None:
        """NotFoundError, before anything is written, when this runner's catalog lacks the
        run's workflow: a decision recorded here could not be applied here, and the run would
        be left running with nothing driving it."""
        if record.workflow not in self.catalog.workflows:
            known = ", ".join(sorted(self.catalog.workflows)) or "none"
            raise NotFoundError(
                f"run {record.id} is of workflow {record.workflow!r}, which is not among the "
                f"workflows loaded here ({known}); nothing was recorded. Load the catalog and "
                "workflows the run was started with (--catalog, --graphs)"
            )

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run; a driver holding it stops after its current step (this one at once,
        another within a tick)."""
        record = cancel_traced(self.store, run_id)
        if run_id in self._stops:
            self._stops[run_id].set()
        return record

    # -- spans -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _segment(self, record: RunRecord, resumed: bool = False) -> AsyncIterator[None]:
        """One stretch of a run in this driver, an ``invoke_workflow`` span under the run's
        root (``cadre.run``, written when the run ends: see :func:`run_span`), so every
        stretch, in whatever process, is in the run's one trace."""
        attributes = {
            gen_ai.OPERATION_NAME: gen_ai.INVOKE_WORKFLOW,
            gen_ai.WORKFLOW_NAME: record.workflow,
            gen_ai.CONVERSATION_ID: record.id,
            "cadre.resumed": resumed,
        }
        now: RunRecord | None = None
        try:
            with telemetry.span(
                f"invoke_workflow {record.workflow}", attributes, parent=record.trace_context
            ) as span:
                try:
                    yield
                finally:
                    now = await self._io(self.store.run, record.id)
                    span.set_attribute("cadre.run.status", now.status)
        finally:  # a failed run too: the trace's root is written whenever the run ends
            if now is not None and now.status in FINISHED and now.status != "cancelled":
                run_span(now)  # a cancelled run's is the canceller's

    # -- driving ---------------------------------------------------------------------------

    def _start(self, run_id: str, trace_context: dict[str, str]) -> None:
        """A queued run starts: its status, and the trace its spans join (one statement)."""
        self.store.set_status(run_id, "running", trace_context=trace_context)

    async def _hand_back(self, run_id: str, decisions: bool = True) -> None:
        """Apply every decision recorded while this driver held the run, then let go. A
        decision that arrives just as we let go makes the run claimable again: whichever driver
        then takes it (its decider, a worker, or us again) applies it."""
        while True:
            try:
                if decisions:
                    await self._apply_decisions(run_id)
            finally:
                await self._let_go(run_id)
            if not decisions or not await self._io(self.store.reviews, "decided", run_id):
                return
            if not await self._acquire(run_id):
                return

    async def _apply_decisions(self, run_id: str) -> None:
        while decided := await self._io(self.store.reviews, "decided", run_id):
            if self._stops[run_id].is_set():
                return
            resume = {r.interrupt_id: _resume_value(r) for r in decided}
            await self._io(self.store.mark_applied, [r.id for r in decided])
            await self._record(self.store.set_status, run_id, "running")
            record = await self._io(self.store.run, run_id)
            for review in decided:
                review_span(review, record)
            async with self._segment(record, resumed=True):
                await self._drive(record, Command(resume=resume))

    async def _drive(self, record: RunRecord, data: Any) -> str | None:
        """Drive the graph on from ``data`` as far as it goes; the status it ended in (None
        when it was stopped)."""
        run_id, workflow = record.id, record.workflow
        graph = self.graph(workflow)
        config = {
            "configurable": {
                "thread_id": run_id,
                "tenant": record.tenant,
                "database_url": self.db.url,
            },
            "recursion_limit": MAX_STEPS,
        }
        stop = self._stops[run_id]
        started = time.perf_counter()
        try:
            try:
                # durability="sync": each step's checkpoint is written before the next step starts,
                # so a crash loses at most the step in flight and no write is pending at a chunk.
                stream = graph.astream(
                    data, config, stream_mode=["updates", "custom"], durability="sync"
                )
                async for mode, chunk in stream:
                    if mode == "custom":
                        self._token(run_id, chunk)
                        continue
                    if chunk.get("__metadata__", {}).get("cached"):
                        continue  # replayed from the checkpoint, not run again
                    # A step finished while another driver took the run is not logged (its
                    # checkpoint is not written either): that driver does the step again.
                    await self._guard_writes(run_id)
                    for node, update in chunk.items():
                        if node.startswith("__"):
                            continue
                        update = update if isinstance(update, dict) else {}
                        step = Progress(
                            run_id,
                            node,
                            time.perf_counter() - started,
                            tuple(
                                k
                                for k, v in update.items()
                                if k not in INTERNAL_KEYS and not (k == "tool_error" and v is None)
                            ),
                            update.get("_usage") or {},
                            update.get("tool_error") or None,
                        )
                        detail = {"keys": list(step.keys), "usage": step.usage}
                        if update.get("tool_error"):  # kept with the step: the next tool resets it
                            detail["tool_error"] = update["tool_error"]
                        self._events.append((run_id, time.time(), "node", node, detail))
                        self.on_progress(step)
                    if stop.is_set():  # cancelled, or the lease went to another driver
                        await stream.aclose()
                        await self._keep_usage(graph, config, run_id)
                        return None
            except DriverStopped:  # cancelled, or another driver holds the run: not a failure
                await self._keep_usage(graph, config, run_id)
                return None
            except GraphRecursionError:
                raise RunError(
                    f"workflow {workflow!r} took {MAX_STEPS} steps without reaching end: a "
                    "loop whose way out never fires (check its branch's conditions; a loop "
                    "of specialist calls can also be stopped sooner by a token `budget`)"
                ) from None
        except Exception as err:
            if database_trouble(err):  # nothing wrong with the run: it stays where it was
                raise RunError(
                    f"run {run_id} stopped: the run database could not be written "
                    f"({clip(str(err), 200)}); its finished steps are kept, and "
                    f"`cadre runs resume {run_id}` goes on with it (a worker does, once its "
                    "lease runs out)"
                ) from None
            if isinstance(err, CadreError):
                usage = await self._usage(graph, config, err)
                await self._record(
                    self.store.set_status, run_id, "failed", error=err.message, usage=usage
                )
                raise
            # A bug: recorded as the run's error, and raised as it is.
            node = getattr(err, "cadre_node", None)
            message = f"{type(err).__name__}: {err}" + (f" (in node {node!r})" if node else "")
            usage = await self._usage(graph, config, err)
            await self._record(self.store.set_status, run_id, "failed", error=message, usage=usage)
            raise
        snapshot = await graph.aget_state(config)
        usage = snapshot.values.get("_usage", {})
        tools = snapshot.values.get("_tools", {})
        if snapshot.interrupts:
            for intr in snapshot.interrupts:
                payload = {**intr.value, "workflow": workflow}
                await self._record(
                    self.store.add_review, run_id, intr.id, intr.value["node"], payload
                )
            await self._record(
                self.store.set_status, run_id, "awaiting_review", usage=usage, tools=tools
            )
            return "awaiting_review"
        if not snapshot.next:
            output = self._output(workflow, snapshot.values)
            await self._record(
                self.store.set_status,
                run_id,
                "succeeded",
                output=output,
                usage=usage,
                tools=tools,
            )
            if self.catalog.workflow(workflow).remember_runs:
                await self._remember_run(record, output, snapshot.values.get("_approvals", {}))
            return "succeeded"
        return None

    async def _remember_run(
        self, record: RunRecord, output: dict[str, Any], approvals: dict[str, Any]
    ) -> None:
        """Episodic memory: a summary of the finished run, searchable by later runs, with who
        approved it (as a memory write records them)."""
        summary = (
            f"{record.workflow} run {record.id}: input "
            f"{json.dumps(record.input, ensure_ascii=False)[:600]}; "
            f"output {json.dumps(output, ensure_ascii=False)[:900]}"
        )
        namespace = memory_namespace(
            record.tenant, "workflow", record.workflow, record.id, "episodic"
        )
        provenance = {
            "run": record.id,
            "workflow": record.workflow,
            "approved_by": approvers(approvals),
        }
        value = {"text": summary, "provenance": provenance}
        await self._memory.aput(namespace, record.id, value)

    async def _keep_usage(self, graph: Any, config: dict[str, Any], run_id: str) -> None:
        """A run cancelled while this driver drove it keeps the tokens its calls took: they
        count in its record, and so against its tenant's daily budget. (A run another driver
        took is that driver's to record.)"""
        try:
            values = (await graph.aget_state(config)).values
        except Exception:  # a nicety on a stopping path; the cancel stands either way
            return
        await self._record(
            self.store.cancelled_usage, run_id, values.get("_usage", {}), values.get("_tools", {})
        )

    async def _usage(self, graph: Any, config: dict[str, Any], err: Exception) -> dict[str, Any]:
        """A failed run's usage: its state's, and the failing call's if it was answered (an
        answer that did not fit its schema still took its tokens)."""
        try:
            usage = dict((await graph.aget_state(config)).values.get("_usage", {}))
        except Exception:  # the usage is a nicety on a failing path; never mask the failure
            usage = {}
        return add_usage(usage, getattr(err, "cadre_usage", None))

    def _output(self, workflow: str, values: dict[str, Any]) -> dict[str, Any]:
        spec = self.catalog.workflow(workflow)
        keys = spec.output or tuple(k for k in values if k not in INTERNAL_KEYS)
        return {key: lookup(values, key, None) for key in keys}


def instrument_checkpointer(
    saver: Any, guard: Callable[[str], Awaitable[None]] | None = None
) -> None:
    """Trace the saver's writes (reads stay untraced): by default each write is a
    ``cadre.checkpoint.write`` event, with its duration, on the span current at the time (a
    step's span, or the run's), so checkpoints do not crowd a trace; with
    ``CADRE_TRACE_CHECKPOINTS=spans`` each write is a span of its own. ``guard`` is awaited
    with the run id before each write (a driver's check that it still holds the run)."""
    as_spans = config.trace_checkpoints() == "spans"

    def traced(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def write(run_config: Any, *args: Any, **kwargs: Any) -> Any:
            thread = run_config.get("configurable", {}).get("thread_id", "")
            if guard is not None:
                await guard(thread)
            attributes = {"cadre.checkpoint.op": name, gen_ai.CONVERSATION_ID: thread}
            if as_spans:
                with telemetry.span(CHECKPOINT_WRITE, attributes):
                    return await method(run_config, *args, **kwargs)
            started = time.perf_counter()
            try:
                return await method(run_config, *args, **kwargs)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                current = trace.get_current_span()
                if current.is_recording():
                    current.add_event(
                        CHECKPOINT_WRITE,
                        {"cadre.checkpoint.op": name, "cadre.checkpoint.ms": elapsed_ms},
                    )

        return write

    for name in ("aput", "aput_writes"):
        setattr(saver, name, traced(name, getattr(saver, name)))


def _resume_value(review: ReviewRecord) -> dict[str, Any]:
    approvers = [a["by"] for a in review.approvals]
    by = [*approvers, review.decided_by] if approvers else review.decided_by
    value: dict[str, Any] = {"decision": review.decision, "by": by}
    if review.reason:
        value["reason"] = review.reason
    if review.changes:
        value["update"] = review.changes.get("update")
    return value
