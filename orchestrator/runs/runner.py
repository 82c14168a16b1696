"""Start, resume, review and cancel runs: the glue between the graph, the checkpointer and the
run store.

A run's id is its LangGraph thread id. One process at a time drives a run (it *owns* it in the
store); a dead owner on this machine is replaced, so a run whose process was killed can be resumed
from any other. Review decisions are recorded first (exactly one wins) and then applied by
whichever process owns the run, all decided reviews of a run in one resume.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import jsonschema
from langgraph.types import Command

from orchestrator import telemetry
from orchestrator.catalog import Catalog
from orchestrator.errors import CadreError, ConflictError, InputError, RunError
from orchestrator.storage.database import Database, open_checkpointer
from orchestrator.workflow.graph import (
    INTERNAL_KEYS,
    Asker,
    compile_workflow,
    memory_namespace,
)
from orchestrator.workflow.spec import WorkflowSpec
from orchestrator.runs.store import (
    DEFAULT_TENANT,
    FINISHED,
    ReviewRecord,
    RunRecord,
    RunStore,
    not_pending,
)
from orchestrator.workflow.templates import lookup


@dataclass(frozen=True)
class Progress:
    """One step of a run as it happens: a node finished (or a review is waiting)."""

    run_id: str
    node: str
    elapsed_s: float
    keys: tuple[str, ...]
    usage: dict[str, dict[str, int]]


def check_input(spec: WorkflowSpec, data: Any) -> dict[str, Any]:
    """The run input, or InputError naming the field that does not fit the input schema."""
    if not isinstance(data, dict):
        raise InputError(f"workflow {spec.name!r}: the input must be a JSON object")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(spec.input_schema).iter_errors(data)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "input"
        raise InputError(f"workflow {spec.name!r}: {where}: {error.message}")
    return data


def edit_update(review: ReviewRecord, changes: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """Turn ``--set path=value`` changes into the state update a review resumes with, checked
    against the state schema (review gates) or the specialist's schema (map items)."""
    payload = review.payload
    values = copy.deepcopy(payload.get("values", {}))
    if payload["kind"] == "map_item":
        answer = values["answer"]
        for path, value in changes.items():
            if path.split(".")[0] not in payload["editable"]:
                raise InputError(
                    f"review {review.id}: {path!r} is not a field of the answer "
                    f"(editable: {', '.join(payload['editable'])})"
                )
            _set_path(answer, path, value)
        schema = catalog.specialist(payload["specialist"]).output_schema
        _validate(review.id, "answer", answer, schema)
        return {"answer": answer}
    workflow = catalog.workflow(payload["workflow"])
    schemas = workflow.state_schemas()
    for path, value in changes.items():
        root = path.split(".")[0]
        if root not in {key.split(".")[0] for key in payload["editable"]}:
            raise InputError(
                f"review {review.id}: {path!r} may not be edited here "
                f"(editable: {', '.join(payload['editable'])})"
            )
        if "." in path:
            _set_path(values.setdefault(root, {}), path.split(".", 1)[1], value)
        else:
            values[root] = value
    for root, value in values.items():
        _validate(review.id, root, value, schemas.get(root, {}))
    return {root: values[root] for root in {p.split(".")[0] for p in changes}}


def _set_path(target: Any, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(parts[-1])] = value
    else:
        target[parts[-1]] = value


def _validate(review_id: str, key: str, value: Any, schema: dict[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join([key, *(str(p) for p in error.absolute_path)])
        raise InputError(
            f"review {review_id}: the edit does not fit the state schema at {where}: "
            f"{error.message}"
        )


def record_decision(
    store: RunStore,
    catalog: Catalog,
    review_id: str,
    decision: str,
    by: str,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> ReviewRecord:
    """Check and record a reviewer's decision (applying it is the run driver's job). Of two
    racing decisions exactly one is recorded; the other gets ConflictError."""
    review = store.review(review_id)
    if review.status != "pending":
        raise not_pending(review)
    run = store.run(review.run_id)
    if run.status in FINISHED:
        raise ConflictError(f"review {review_id}: its run {run.id} is already {run.status}")
    if decision not in ("approve", "reject", "edit"):
        raise InputError(f"decision {decision!r}: choose approve, reject or edit")
    if decision == "reject" and not (reason or "").strip():
        raise InputError("a rejection needs a reason (--reason): it is sent back for rework")
    if decision == "edit" and not changes:
        raise InputError("an edit needs at least one --set key=value")
    update = edit_update(review, changes or {}, catalog) if decision == "edit" else None
    return store.decide(
        review_id, decision, by, reason, {"set": changes, "update": update} if update else None
    )


class Runner:
    """Drives runs of the catalog's workflows against the run database.

    Use as an async context manager: it opens the database and the checkpointer, and (unless
    given one) a host pool that it shuts down on exit.
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
    ) -> None:
        self.catalog = catalog
        self.database_url = database_url
        self._asker = asker
        self._owns_pool = asker is None
        self.on_progress = on_progress or (lambda _: None)
        self._graphs: dict[str, Any] = {}
        self.tenant = tenant
        self._memory = store

    async def __aenter__(self) -> Runner:
        telemetry.setup()
        self.db = Database(self.database_url)
        self.store = RunStore(self.db)
        self._checkpointer_cm = open_checkpointer(self.db.url)
        self.checkpointer = await self._checkpointer_cm.__aenter__()
        instrument_checkpointer(self.checkpointer)
        if self._memory is None:
            from orchestrator.memory.store import SqlStore

            self._memory = SqlStore(self.db)  # the embedding model loads on first use only
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
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
                spec, self.catalog, self.asker, self.checkpointer, self._memory, corpora
            )
        return self._graphs[workflow]

    # -- the four verbs --------------------------------------------------------------------

    async def start(self, workflow: str, data: Any) -> RunRecord:
        """Validate the input, create the run and drive it until it ends or waits for review."""
        spec = self.catalog.workflow(workflow)
        check_input(spec, data)
        record, _ = self.store.create_run(spec.name, data, tenant=self.tenant)
        try:
            with self._segment(record):
                self.store.set_trace_context(record.id, telemetry.inject())
                await self._drive(record.id, spec.name, data)
        except BaseException:
            self.store.release(record.id)
            raise
        await self._hand_back(record.id)
        return self.store.run(record.id)

    def submit(
        self,
        workflow: str,
        data: Any,
        *,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """Validate the input and queue a run for a worker to :meth:`drive`; with an
        ``idempotency_key`` the tenant used before, the first run comes back (and False)."""
        spec = self.catalog.workflow(workflow)
        check_input(spec, data)
        return self.store.create_run(
            spec.name, data, tenant=tenant, idempotency_key=idempotency_key, queued=True
        )

    async def drive(self, run_id: str) -> RunRecord:
        """Drive a queued run from its start until it ends or waits for review. A run someone
        else already took is left to them; one that is no longer queued is resumed."""
        record = self.store.run(run_id)
        if record.status != "queued":
            if record.status in FINISHED or record.status == "awaiting_review":
                return record
            return await self.resume(run_id)
        if not self.store.acquire(run_id):
            return self.store.run(run_id)
        try:
            self.store.set_status(run_id, "running")
            with self._segment(record):
                self.store.set_trace_context(run_id, telemetry.inject())
                await self._drive(run_id, record.workflow, record.input)
        except BaseException:
            self.store.release(run_id)
            raise
        await self._hand_back(run_id)
        return self.store.run(run_id)

    async def apply(self, run_id: str) -> RunRecord:
        """Apply the review decisions recorded for a run (by a reviewer elsewhere) and drive it
        on, unless another process is driving it: that one applies them when it is done."""
        if self.store.acquire(run_id):
            await self._hand_back(run_id)
        return self.store.run(run_id)

    async def resume(self, run_id: str) -> RunRecord:
        """Continue a run whose process died or that failed, from its last checkpoint; apply
        any review decisions waiting to be applied."""
        record = self.store.run(run_id)
        if record.status == "queued":  # no worker took it: drive it from its start
            return await self.drive(run_id)
        if record.status in ("succeeded", "cancelled"):
            raise InputError(f"run {run_id} is {record.status}; there is nothing to resume")
        if not self.store.acquire(run_id):
            raise InputError(
                f"run {run_id} is being driven by {record.owner}; wait for it or cancel it"
            )
        try:
            if record.status == "awaiting_review" and not self.store.reviews("decided", run_id):
                pending = self.store.reviews("pending", run_id)
                ids = ", ".join(r.id for r in pending)
                raise InputError(
                    f"run {run_id} is waiting for review {ids}; decide it with `cadre review`"
                )
            if not self.store.reviews("decided", run_id):
                self.store.set_status(run_id, "running")
                with self._segment(record, resumed=True):
                    await self._drive(run_id, record.workflow, None)
        except BaseException:
            self.store.release(run_id)
            raise
        await self._hand_back(run_id)
        return self.store.run(run_id)

    async def decide(
        self,
        review_id: str,
        decision: str,
        by: str,
        reason: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> tuple[ReviewRecord, RunRecord]:
        """Record a reviewer's decision, then resume the run if no other process is driving it."""
        recorded = record_decision(
            self.store, self.catalog, review_id, decision, by, reason, changes
        )
        if not self.store.acquire(recorded.run_id):
            return recorded, self.store.run(recorded.run_id)  # the owner applies it when done
        await self._hand_back(recorded.run_id)
        return self.store.review(review_id), self.store.run(recorded.run_id)

    def _review_span(self, review: ReviewRecord, run: RunRecord) -> None:
        """``cadre.review``: from the interrupt to the decision, in the run's trace."""
        attributes: dict[str, Any] = {
            "gen_ai.conversation.id": run.id,
            "gen_ai.workflow.name": run.workflow,
            "cadre.node": review.node,
            "cadre.review.id": review.id,
            "cadre.review.decision": review.decision or "",
            "cadre.review.reviewer": review.decided_by or "",
            "cadre.review.wait_s": (review.decided_at or review.created_at) - review.created_at,
        }
        if review.reason:
            attributes["cadre.review.reason"] = review.reason
        span = telemetry.tracer().start_span(
            "cadre.review",
            context=telemetry.extract(run.trace_context),
            attributes=attributes,
            start_time=int(review.created_at * 1e9),
        )
        span.end(end_time=int((review.decided_at or time.time()) * 1e9))

    @contextmanager
    def _segment(self, record: RunRecord, resumed: bool = False) -> Iterator[None]:
        """One stretch of a run in this process, an ``invoke_workflow`` span; a resumed
        stretch joins the trace of the run's first one."""
        attributes = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": record.workflow,
            "gen_ai.conversation.id": record.id,
            "cadre.resumed": resumed,
        }
        parent = record.trace_context if resumed else None
        with telemetry.span(
            f"invoke_workflow {record.workflow}", attributes, parent=parent
        ) as span:
            try:
                yield
            finally:
                span.set_attribute("cadre.run.status", self.store.run(record.id).status)

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run; a process driving it stops after its current step."""
        return self.store.cancel(run_id)

    # -- driving ---------------------------------------------------------------------------

    async def _hand_back(self, run_id: str) -> None:
        """Apply every decision recorded while this process owned the run, then let go. A
        decision that arrives just as we let go is applied by whichever process then takes the
        run: its decider, or us again."""
        while True:
            try:
                await self._apply_decisions(run_id)
            finally:
                self.store.release(run_id)
            if not self.store.reviews("decided", run_id) or not self.store.acquire(run_id):
                return

    async def _apply_decisions(self, run_id: str) -> RunRecord:
        while decided := self.store.reviews("decided", run_id):
            resume = {r.interrupt_id: _resume_value(r) for r in decided}
            self.store.mark_applied([r.id for r in decided])
            self.store.set_status(run_id, "running")
            record = self.store.run(run_id)
            for review in decided:
                self._review_span(review, record)
            with self._segment(record, resumed=True):
                await self._drive(run_id, record.workflow, Command(resume=resume))
        return self.store.run(run_id)

    async def _drive(self, run_id: str, workflow: str, data: Any) -> None:
        graph = self.graph(workflow)
        config = {
            "configurable": {
                "thread_id": run_id,
                "tenant": (await asyncio.to_thread(self.store.run, run_id)).tenant,
                "database_url": self.db.url,
            }
        }
        started = time.perf_counter()
        try:
            # durability="sync": each step's checkpoint is written before the next step starts,
            # so a crash loses at most the step in flight and no write is pending at a chunk.
            stream = graph.astream(data, config, stream_mode="updates", durability="sync")
            async for chunk in stream:
                if chunk.get("__metadata__", {}).get("cached"):
                    continue  # replayed from the checkpoint, not run again
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
                    )
                    # Off the event loop: the checkpointer's aiosqlite connection may be holding
                    # a write transaction that only the loop can commit.
                    detail = {"keys": list(step.keys), "usage": step.usage}
                    await asyncio.to_thread(self.store.add_event, run_id, node, detail)
                    self.on_progress(step)
                if (await asyncio.to_thread(self.store.run, run_id)).status == "cancelled":
                    await stream.aclose()
                    await self._settle()
                    return
        except CadreError as err:
            await self._settle()
            self.store.set_status(
                run_id, "failed", error=err.message, usage=await self._usage(graph, config)
            )
            raise
        except Exception as err:
            await self._settle()
            message = f"{type(err).__name__}: {err}"
            self.store.set_status(
                run_id, "failed", error=message, usage=await self._usage(graph, config)
            )
            raise RunError(f"run {run_id} failed: {message}") from err
        snapshot = await graph.aget_state(config)
        usage = snapshot.values.get("_usage", {})
        tools = snapshot.values.get("_tools", {})
        if snapshot.interrupts:
            for intr in snapshot.interrupts:
                payload = {**intr.value, "workflow": workflow}
                self.store.add_review(run_id, intr.id, intr.value["node"], payload)
            self.store.set_status(run_id, "awaiting_review", usage=usage, tools=tools)
        elif not snapshot.next:
            output = self._output(workflow, snapshot.values)
            self.store.set_status(run_id, "succeeded", output=output, usage=usage, tools=tools)
            if self.catalog.workflow(workflow).remember_runs:
                await self._remember_run(run_id, workflow, output)

    async def _remember_run(self, run_id: str, workflow: str, output: dict[str, Any]) -> None:
        """Episodic memory: a summary of the finished run, searchable by later runs."""
        record = self.store.run(run_id)
        summary = (
            f"{workflow} run {run_id}: input {json.dumps(record.input)[:600]}; "
            f"output {json.dumps(output)[:900]}"
        )
        namespace = memory_namespace(record.tenant, "workflow", workflow, run_id, "episodic")
        value = {"text": summary, "provenance": {"run": run_id, "workflow": workflow}}
        await self._memory.aput(namespace, run_id, value)

    async def _settle(self) -> None:
        """After a run stopped mid-step (cancelled, failed), roll back any checkpoint write the
        stop cut short: an open SQLite transaction would lock the database for everyone."""
        conn = getattr(self.checkpointer, "conn", None)
        if conn is not None and getattr(conn, "in_transaction", False):
            rollback = conn.rollback()
            if asyncio.iscoroutine(rollback):
                await rollback

    async def _usage(self, graph: Any, config: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict((await graph.aget_state(config)).values.get("_usage", {}))
        except Exception:  # the usage is a nicety on a failing path; never mask the failure
            return {}

    def _output(self, workflow: str, values: dict[str, Any]) -> dict[str, Any]:
        spec = self.catalog.workflow(workflow)
        keys = spec.output or tuple(k for k in values if k not in INTERNAL_KEYS)
        return {key: lookup(values, key, None) for key in keys}


def instrument_checkpointer(saver: Any) -> None:
    """Wrap the saver's writes in ``cadre.checkpoint.write`` spans (reads stay untraced)."""

    def traced(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def write(config: Any, *args: Any, **kwargs: Any) -> Any:
            thread = config.get("configurable", {}).get("thread_id", "")
            attributes = {"cadre.checkpoint.op": name, "gen_ai.conversation.id": thread}
            with telemetry.span("cadre.checkpoint.write", attributes):
                return await method(config, *args, **kwargs)

        return write

    for name in ("aput", "aput_writes"):
        setattr(saver, name, traced(name, getattr(saver, name)))


def _resume_value(review: ReviewRecord) -> dict[str, Any]:
    value: dict[str, Any] = {"decision": review.decision, "by": review.decided_by}
    if review.reason:
        value["reason"] = review.reason
    if review.changes:
        value["update"] = review.changes.get("update")
    return value
