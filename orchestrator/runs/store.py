"""Run, review and event records, beside LangGraph's checkpoints in the same database.

A run's *state* lives in the checkpointer; this store keeps what people and tools ask about a run:
its status, input and output, tokens used, who is driving it, its reviews and their decisions, and
a log of the nodes it finished. Every status change is a single conditional UPDATE, so two
processes racing for the same review or the same run get exactly one winner.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, NewType

from orchestrator.config import DEFAULT_TENANT
from orchestrator.errors import ApprovalsChanged, ConflictError, NotFoundError, clip
from orchestrator.storage import schema
from orchestrator.storage.database import Database

RunId = NewType("RunId", str)
ReviewId = NewType("ReviewId", str)
RunStatus = Literal["queued", "running", "awaiting_review", "succeeded", "failed", "cancelled"]
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class RunRecord:
    """What the store knows about one run."""

    id: RunId
    workflow: str
    status: RunStatus
    tenant: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    usage: dict[str, dict[str, float]]
    """Per specialist: calls, input/output tokens, model and host queue time (s)."""
    tools: dict[str, dict[str, float]]
    """Per tool: calls and time (s)."""
    trace_context: dict[str, str]
    """W3C headers of the run's root span: later segments of the run join its trace."""
    input_tokens: int
    output_tokens: int
    owner: str | None
    """The driver holding the run's lease (``host:pid:tag``), or None."""
    lease_until: float | None
    """When the owner's lease runs out unless renewed; then any worker may claim the run."""
    created_at: float
    updated_at: float
    finished_at: float | None


@dataclass(frozen=True)
class ReviewRecord:
    """One review gate of a run, and its decision once taken."""

    id: ReviewId
    run_id: RunId
    interrupt_id: str
    node: str
    payload: dict[str, Any]
    status: Literal["pending", "decided", "applied", "cancelled"]
    decision: str | None
    reason: str | None
    changes: dict[str, Any] | None
    decided_by: str | None
    decided_at: float | None
    created_at: float
    claimed_by: str | None = None
    """The reviewer working on it, while ``claimed_until`` is ahead: others cannot decide."""
    claimed_until: float | None = None
    approvals: tuple[dict[str, Any], ...] = ()
    """Approvals so far of a review that needs several: ``{"by", "at", "changes"}`` each."""
    due_at: float | None = None
    """When it becomes overdue (its node's ``escalate_after``), or None."""
    overdue_at: float | None = None
    """When it was found overdue and the ``review.overdue`` event was sent."""

    def holder(self, now: float | None = None) -> str | None:
        """Who holds the review now (a claim that ran out holds nothing)."""
        now = time.time() if now is None else now
        live = self.claimed_by and (self.claimed_until or 0) > now
        return self.claimed_by if live else None


def this_process() -> str:
    """Owner tag of the current process: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_owner() -> str:
    """An owner tag for one driver (``host:pid:tag``): two drivers in one process differ."""
    return f"{this_process()}:{uuid.uuid4().hex[:6]}"


def owner_alive(owner: str) -> bool:
    """False only for an owner that certainly died: a process of this machine that is gone.
    Another machine's owner is alive until its lease runs out."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":")[0]
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def merge_changes(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Edits (path to value) in the order they apply, a later edit winning over an earlier
    one: an earlier edit of the same path, or of a path inside it, is dropped (a later
    ``fields`` replaces an earlier ``fields.amount``), and the later edits come last (a later
    ``fields.amount`` applies after an earlier whole ``fields``)."""
    kept = {
        path: value
        for path, value in earlier.items()
        if not any(path == p or path.startswith(p + ".") for p in later)
    }
    return {**kept, **later}


def overlapping(changes: dict[str, Any]) -> tuple[str, str] | None:
    """Two paths of one decision where one is, or holds, the other (``fields`` and
    ``fields.amount``): which should win is not said, so such a decision is refused."""
    paths = sorted(changes)
    for shorter, longer in zip(paths, paths[1:], strict=False):
        if longer.startswith(shorter + "."):
            return shorter, longer
    return None


def pending_changes(review: ReviewRecord) -> dict[str, Any]:
    """The edits a review's approvals so far made, merged as the last approval merges them
    (a later approval's edit wins, see :func:`merge_changes`)."""
    merged: dict[str, Any] = {}
    for approval in review.approvals:
        merged = merge_changes(merged, approval.get("changes") or {})
    return merged


def edited_by(review: ReviewRecord) -> list[str]:
    """Who edited: the approvers whose approval was an edit, and a decider who edited."""
    recorded = (review.changes or {}).get("edits")
    if recorded is not None:
        return [str(e["by"]) for e in recorded]
    who = [str(a["by"]) for a in review.approvals if a.get("changes")]
    if review.decision == "edit" and review.decided_by and not review.approvals:
        who.append(review.decided_by)
    return who


def _held(review_id: str, who: str, until: float | None = None) -> dict[str, Any]:
    """A claim's or release's log entry."""
    return {"review_id": review_id, "by": who, **({"until": until} if until else {})}


def not_pending(review: ReviewRecord) -> ConflictError:
    """The error for deciding a review that is no longer waiting for a decision."""
    if review.status == "cancelled":
        return ConflictError(f"review {review.id} was cancelled with its run; nothing to decide")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(review.decided_at or 0))
    return ConflictError(
        f"review {review.id} was already decided: {review.decision} by {review.decided_by} "
        f"at {when}"
    )


FREE_FOR = "(claimed_by IS NULL OR claimed_by = ? OR claimed_until < ?)"
"""The condition that a review is free for a reviewer: nobody else holds a live claim on it."""

RUN_OPEN = (
    "NOT EXISTS (SELECT 1 FROM cadre_runs r WHERE r.id = cadre_reviews.run_id "
    "AND r.status IN ('succeeded', 'failed', 'cancelled'))"
)
"""The condition that a review's run has not ended: a decision racing a cancel is recorded
only if it lands first (the cancel then cancels it, decided and not applied), never after."""

SAME_APPROVALS = "COALESCE(approvals, '') = ?"
"""The condition that a review's approvals are still those a decision was made from."""


def _canonical(data: Any) -> str:
    """JSON data as one text, so that equal means the same JSON (Python has 1 == 1.0 == True)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _approvals(review: ReviewRecord) -> str:
    """A review's approvals as the column holds them ('' for none), for SAME_APPROVALS."""
    return json.dumps(list(review.approvals)) if review.approvals else ""


def held_elsewhere(review: ReviewRecord, who: str, now: float) -> ConflictError:
    """The error for acting on a review another reviewer holds."""
    until = time.strftime("%H:%M:%S UTC", time.gmtime(review.claimed_until or now))
    return ConflictError(
        f"review {review.id} is claimed by {review.claimed_by} until {until}; {who} may "
        f"decide it once {review.claimed_by} releases it or the claim runs out"
    )


def check_new_approver(review: ReviewRecord, who: str) -> None:
    """A review that needs several approvals needs them from different reviewers."""
    if any(a["by"] == who for a in review.approvals):
        raise ConflictError(
            f"review {review.id}: {who} has already approved it; the next approval must come "
            "from a different reviewer"
        )


def refused(review: ReviewRecord, who: str, now: float) -> ConflictError:
    """Why ``who``'s conditional write to a review changed nothing."""
    return held_elsewhere(review, who, now) if review.status == "pending" else not_pending(review)


EventKind = Literal[
    "node", "token", "status", "awaiting_review", "decision", "approval", "claim", "release"
]


@dataclass(frozen=True)
class LogEntry:
    """One row of a run's event log: a finished node, a status change, a review."""

    seq: int
    """The entry's place in the log: increasing in the order entries are written."""
    at: float
    kind: EventKind
    node: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class LogPage:
    """A run's log after some ``seq``, and the run as it was when the page was read."""

    entries: list[LogEntry]
    complete: bool
    """Every entry after the one asked for is here (else ask again after the last)."""
    status: RunStatus
    held: bool
    """A driver holds the run's lease: it may still write the nodes it finished last."""
    logged_status: str | None
    """The status of the log's last status entry (None in a log from before they were kept);
    it lags ``status`` for the moment between a status change and its entry."""
    last: int = 0
    """The ``seq`` of the log's last entry (0 when it has none)."""


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class RunStore:
    """Runs, reviews and events in the run database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.set_up("runs", self._create)

    def _create(self) -> None:
        schema.create(
            self.db, schema.RUNS, schema.REVIEWS, schema.RUN_EVENTS, upgrade=self._upgrade
        )

    def _upgrade(self) -> None:
        if "seq" not in self.db.columns("cadre_run_events"):
            self._number_events(schema.TYPES["postgres" if self.db.postgres else "sqlite"]["seq"])

    def _number_events(self, seq: str) -> None:
        """Give an event log from before ``seq`` its sequence, in the order it was written."""
        if self.db.postgres:  # existing rows are numbered as the column is added
            self.db.execute(f"ALTER TABLE cadre_run_events ADD COLUMN IF NOT EXISTS seq {seq}")
            return
        # SQLite cannot add a key column: copy the log into a new table, in one transaction
        # (BEGIN IMMEDIATE: a second process opening the database waits, then finds it done).
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if "seq" not in self.db.columns("cadre_run_events"):
                have = self.db.columns("cadre_run_events")
                kind = "kind" if "kind" in have else "'node'"
                self.db.execute("ALTER TABLE cadre_run_events RENAME TO cadre_run_events_old")
                self.db.execute("DROP INDEX IF EXISTS cadre_events_run")
                self.db.execute(schema.RUN_EVENTS.ddl(self.db))
                self.db.execute(
                    "INSERT INTO cadre_run_events (run_id, at, node, kind, detail) "
                    f"SELECT run_id, at, node, {kind}, detail FROM cadre_run_events_old "
                    "ORDER BY rowid"
                )
                self.db.execute("DROP TABLE cadre_run_events_old")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        workflow: str,
        input: dict[str, Any],
        *,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
        queued: bool = False,
        driver: str | None = None,
        lease_s: float = 0.0,
        trace_context: dict[str, str] | None = None,
    ) -> tuple[RunRecord, bool]:
        """A new run, leased to ``driver`` (or ``queued`` for a worker to claim). With an
        ``idempotency_key`` already used by the tenant, the first run comes back instead (and
        False); the same key with a different request is an InputError. ``trace_context``:
        what the run's trace starts from (the submitting request's span, to link to)."""
        run_id = RunId(f"run-{uuid.uuid4().hex[:12]}")
        now = time.time()
        status = "queued" if queued else "running"
        owner, lease_until = (None, None) if queued else (driver, now + lease_s)
        made = self.db.execute(
            "INSERT INTO cadre_runs (id, workflow, status, tenant, idempotency_key, input, usage, "
            "owner, lease_until, created_at, updated_at, trace_context) "
            "VALUES (?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                run_id,
                workflow,
                status,
                tenant,
                idempotency_key,
                json.dumps(input),
                owner,
                lease_until,
                now,
                now,
                json.dumps(trace_context) if trace_context else None,
            ),
        )
        if made:
            self._append([(run_id, now, "status", "", {"status": status})])
            return self.run(run_id), True
        first = self.replay(tenant, idempotency_key, workflow, input)
        assert first is not None, "only an idempotency key conflicts on insert"
        return first, False

    def replay(
        self, tenant: str, idempotency_key: str | None, workflow: str, input: dict[str, Any]
    ) -> RunRecord | None:
        """The run the tenant already started with this idempotency key, or None; the same
        key with a different request is a ConflictError."""
        if idempotency_key is None:
            return None
        rows = self.db.query(
            "SELECT id FROM cadre_runs WHERE tenant = ? AND idempotency_key = ?",
            (tenant, idempotency_key),
        )
        if not rows:
            return None
        first = self.run(rows[0]["id"])
        if first.workflow != workflow or _canonical(first.input) != _canonical(input):
            raise ConflictError(
                f"Idempotency-Key {idempotency_key!r} was already used for run {first.id} with "
                "a different workflow or input; use a new key for a new run"
            )
        return first

    def statuses(self, run_ids: list[str]) -> dict[str, str]:
        """The status of each of ``run_ids`` that exists (one query). A run waiting for review
        whose reviews are all decided reads ``deciding``: its decision waits for a driver to
        apply it, and it moves on without anyone acting."""
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        rows = self.db.query(
            "SELECT id, CASE WHEN status = 'awaiting_review' AND NOT EXISTS (SELECT 1 FROM "
            "cadre_reviews v WHERE v.run_id = cadre_runs.id AND v.status = 'pending') "
            f"THEN 'deciding' ELSE status END AS status FROM cadre_runs WHERE id IN ({marks})",
            run_ids,
        )
        return {row["id"]: row["status"] for row in rows}

    def run(self, run_id: str) -> RunRecord:
        rows = self.db.query("SELECT * FROM cadre_runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFoundError(f"no run {clip(run_id, 80)!r}; see `cadre runs list`")
        row = rows[0]
        return RunRecord(
            id=RunId(row["id"]),
            workflow=row["workflow"],
            status=row["status"],
            tenant=row["tenant"],
            input=json.loads(row["input"]),
            output=_loads(row["output"]),
            error=row["error"],
            usage=_loads(row["usage"]) or {},
            tools=_loads(row["tools"]) or {},
            trace_context=_loads(row["trace_context"]) or {},
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            owner=row["owner"],
            lease_until=row["lease_until"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            finished_at=row["finished_at"],
        )

    def runs(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        *,
        tenant: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first; ``before`` (created_at, id) continues a page from its last run."""
        sql, params = "SELECT id FROM cadre_runs WHERE 1 = 1", list[Any]()
        if status:
            sql, params = sql + " AND status = ?", [*params, status]
        if workflow:
            sql, params = sql + " AND workflow = ?", [*params, workflow]
        if tenant:
            sql, params = sql + " AND tenant = ?", [*params, tenant]
        if before:
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params += [before[0], before[0], before[1]]
        rows = self.db.query(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit))
        return [self.run(r["id"]) for r in rows]

    def queued_count(self, tenant: str) -> int:
        """How many of the tenant's runs wait for a worker to start them."""
        rows = self.db.query(
            "SELECT COUNT(*) AS n FROM cadre_runs WHERE status = 'queued' AND tenant = ?",
            (tenant,),
        )
        return int(rows[0]["n"])

    def queued_ahead(self, run: RunRecord) -> int:
        """How many of the tenant's queued runs were recorded before ``run``, and it: its
        place in the tenant's queue (an admission check that counts after inserting holds
        under concurrent submissions, where a count before inserting lets them all in)."""
        rows = self.db.query(
            "SELECT COUNT(*) AS n FROM cadre_runs WHERE status = 'queued' AND tenant = ? "
            "AND (created_at < ? OR (created_at = ? AND id <= ?))",
            (run.tenant, run.created_at, run.created_at, run.id),
        )
        return int(rows[0]["n"])

    def withdraw(self, run_id: str) -> bool:
        """Take back a run just recorded and not admitted after all, if no worker has started
        it yet (True); it leaves nothing behind, its idempotency key free again."""
        if not self.db.execute(
            "DELETE FROM cadre_runs WHERE id = ? AND status = 'queued' AND owner IS NULL",
            (run_id,),
        ):
            return False
        self.db.execute("DELETE FROM cadre_run_events WHERE run_id = ?", (run_id,))
        return True

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        usage: dict[str, dict[str, float]] | None = None,
        tools: dict[str, dict[str, float]] | None = None,
        trace_context: dict[str, str] | None = None,
    ) -> None:
        """Move a run to ``status``; a cancelled run stays cancelled."""
        now = time.time()
        sets = ["status = ?", "updated_at = ?", "error = ?"]
        params: list[Any] = [status, now, error]
        if trace_context is not None:
            sets.append("trace_context = ?")
            params.append(json.dumps(trace_context))
        if status in FINISHED:
            sets.append("finished_at = ?")
            params.append(now)
        if output is not None:
            sets.append("output = ?")
            params.append(json.dumps(output))
        if tools is not None:
            sets.append("tools = ?")
            params.append(json.dumps(tools))
        if usage is not None:
            sets += ["usage = ?", "input_tokens = ?", "output_tokens = ?"]
            params += _usage_columns(usage)
        changed = self.db.execute(
            f"UPDATE cadre_runs SET {', '.join(sets)} WHERE id = ? AND status <> 'cancelled'",
            (*params, run_id),
        )
        if changed:
            shown = {"status": status, **({"error": error} if error else {})}
            self._append([(run_id, now, "status", "", shown)])

    def cancelled_usage(
        self,
        run_id: str,
        usage: dict[str, dict[str, float]],
        tools: dict[str, dict[str, float]],
    ) -> None:
        """The usage of a run cancelled while it was driven, as its driver last checkpointed
        it (only if it is cancelled: a run another driver took is that one's to record)."""
        self.db.execute(
            "UPDATE cadre_runs SET usage = ?, input_tokens = ?, output_tokens = ?, tools = ? "
            "WHERE id = ? AND status = 'cancelled'",
            (*_usage_columns(usage), json.dumps(tools), run_id),
        )

    def set_trace_context(self, run_id: str, carrier: dict[str, str]) -> None:
        self.db.execute(
            "UPDATE cadre_runs SET trace_context = ? WHERE id = ?", (json.dumps(carrier), run_id)
        )

    def cancel(self, run_id: str) -> RunRecord:
        record = self.run(run_id)
        if record.status in FINISHED:
            raise ConflictError(f"run {run_id} already {record.status}; nothing to cancel")
        now = time.time()
        if self.db.execute(
            "UPDATE cadre_runs SET status = 'cancelled', updated_at = ?, finished_at = ? "
            "WHERE id = ? AND status NOT IN ('succeeded', 'failed', 'cancelled')",
            (now, now, run_id),
        ):
            self._append([(run_id, now, "status", "", {"status": "cancelled"})])
        self.db.execute(
            # Decided but not yet applied counts too: a cancelled run must not resume with it.
            "UPDATE cadre_reviews SET status = 'cancelled' "
            "WHERE run_id = ? AND status IN ('pending', 'decided')",
            (run_id,),
        )
        return self.run(run_id)

    # -- events ----------------------------------------------------------------------------
    #
    # One log per run in cadre_run_events, ordered by ``seq``: the nodes it finished (written
    # by its driver in batches, a tick after they happen, and always before the run's next
    # status change or review), its status changes and its reviews (written as they happen).
    # A stream sends the log in ``seq`` order and resumes after a ``seq``; on Postgres one
    # run's entries are written one transaction at a time (an advisory lock), so a ``seq`` is
    # never committed after a greater one of the same run.

    def _append(self, rows: list[tuple[str, float, str, str, dict[str, Any]]]) -> None:
        """Write log entries ``(run_id, at, kind, node, detail)``, in this order."""
        if not rows:
            return
        values = [(r, at, kind, node, json.dumps(detail)) for r, at, kind, node, detail in rows]
        if self.db.postgres:
            self.db.execute_many(
                "INSERT INTO cadre_run_events (run_id, at, kind, node, detail) "
                "SELECT ?, ?::double precision, ?, ?, ? "
                "FROM (SELECT pg_advisory_xact_lock(hashtext(?))) AS one_writer_per_run",
                [(*v, v[0]) for v in values],
            )
            return
        self.db.execute_many(
            "INSERT INTO cadre_run_events (run_id, at, kind, node, detail) VALUES (?, ?, ?, ?, ?)",
            values,
        )

    def add_events(self, events: list[tuple[str, float, EventKind, str, dict[str, Any]]]) -> None:
        """Record finished nodes and streamed text, ``(run_id, at, kind, node, detail)`` each,
        in one statement. A driver writes a run's nodes before that run's next status change
        or review (see :meth:`Runner._record <orchestrator.runs.runner.Runner._record>`)."""
        self._append(list(events))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The nodes the run finished, in order."""
        rows = self.db.query(
            "SELECT at, node, detail FROM cadre_run_events WHERE run_id = ? AND kind = 'node' "
            "ORDER BY at, seq",
            (run_id,),
        )
        return [{"at": r["at"], "node": r["node"], **json.loads(r["detail"])} for r in rows]

    def log(self, run_id: str, after: int = 0, limit: int = 500) -> LogPage:
        """The run's log after ``after`` (a ``seq``), up to ``limit`` entries, and the run's
        status and lease read with it (one indexed query). A run not found is NotFoundError."""
        rows = self.db.query(
            "SELECT r.status, r.owner, r.lease_until, (SELECT detail FROM cadre_run_events "
            "WHERE run_id = r.id AND kind = 'status' ORDER BY seq DESC LIMIT 1) AS logged, "
            "(SELECT MAX(seq) FROM cadre_run_events WHERE run_id = r.id) AS last_seq, "
            "e.seq, e.at, e.kind, e.node, e.detail "
            "FROM cadre_runs r LEFT JOIN (SELECT * FROM cadre_run_events WHERE run_id = ? "
            "AND seq > ? ORDER BY seq LIMIT ?) e ON e.run_id = r.id WHERE r.id = ? ORDER BY e.seq",
            (run_id, after, limit, run_id),
        )
        if not rows:
            raise NotFoundError(f"no run {clip(run_id, 80)!r}; see `cadre runs list`")
        run = rows[0]
        held = run["owner"] is not None and (run["lease_until"] or 0) >= time.time()
        entries = [
            LogEntry(r["seq"], r["at"], r["kind"], r["node"], json.loads(r["detail"] or "{}"))
            for r in rows
            if r["seq"] is not None
        ]
        logged = json.loads(run["logged"])["status"] if run["logged"] else None
        last = int(run["last_seq"] or 0)
        return LogPage(entries, len(entries) < limit, run["status"], held, logged, last)

    # -- reviews ---------------------------------------------------------------------------

    def add_review(
        self, run_id: str, interrupt_id: str, node: str, payload: dict[str, Any]
    ) -> None:
        """Queue a review for an interrupt; a second call for the same interrupt does nothing,
        unless its decision was marked applied: the run stopped at the same interrupt again, so
        the decision never reached it (its driver died before the resume was saved). It is
        then decided again, for the next driver to apply; the reviewer's decision is not lost."""
        exists = self.db.query(
            "SELECT id, status FROM cadre_reviews WHERE run_id = ? AND interrupt_id = ?",
            (run_id, interrupt_id),
        )
        if exists:
            if exists[0]["status"] == "applied":
                self.db.execute(
                    "UPDATE cadre_reviews SET status = 'decided' "
                    "WHERE id = ? AND status = 'applied'",
                    (exists[0]["id"],),
                )
            return
        review_id, now = f"rv-{uuid.uuid4().hex[:10]}", time.time()
        wait = payload.get("escalate_after_s")
        due_at = now + float(wait) if wait else None
        if self.db.execute(
            "INSERT INTO cadre_reviews (id, run_id, interrupt_id, node, payload, status, "
            "created_at, due_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
            (review_id, run_id, interrupt_id, node, json.dumps(payload), now, due_at),
        ):
            self._append([(run_id, now, "awaiting_review", node, {"review_id": review_id})])

    def review(self, review_id: str) -> ReviewRecord:
        rows = self.db.query("SELECT * FROM cadre_reviews WHERE id = ?", (review_id,))
        if not rows:
            raise NotFoundError(f"no review {clip(review_id, 80)!r}; see `cadre review list`")
        return self._review(rows[0])

    def reviews(
        self,
        status: str | None = "pending",
        run_id: str | None = None,
        *,
        tenant: str | None = None,
        workflow: str | None = None,
        older_than_s: float | None = None,
        limit: int | None = None,
        after: tuple[float, str] | None = None,
    ) -> list[ReviewRecord]:
        """Reviews, oldest first; filtered by their run's tenant and workflow, and by age; at
        most ``limit`` of them, those after ``after`` (a review's creation time and id)."""
        sql = "SELECT v.* FROM cadre_reviews v JOIN cadre_runs r ON r.id = v.run_id WHERE 1 = 1"
        params: list[Any] = []
        for column, value in (
            ("v.status", status),
            ("v.run_id", run_id),
            ("r.tenant", tenant),
            ("r.workflow", workflow),
        ):
            if value:
                sql, params = sql + f" AND {column} = ?", [*params, value]
        if older_than_s is not None:
            sql, params = sql + " AND v.created_at <= ?", [*params, time.time() - older_than_s]
        if after is not None:
            sql += " AND (v.created_at > ? OR (v.created_at = ? AND v.id > ?))"
            params = [*params, after[0], after[0], after[1]]
        sql += " ORDER BY v.created_at, v.id"
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        return [self._review(r) for r in self.db.query(sql, params)]

    def decide(
        self,
        review_id: str,
        decision: str,
        by: str,
        reason: str | None = None,
        changes: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
        seen: ReviewRecord | None = None,
    ) -> ReviewRecord:
        """Record a decision: of two racing decisions exactly one wins, the other gets
        ConflictError, as does a reviewer (``actor``, else ``by``) deciding a review another
        reviewer holds. With ``seen`` (the review as the decision was made from it), the
        decision is recorded only if the review's approvals are still those; else
        ApprovalsChanged."""
        now = time.time()
        sql = (
            "UPDATE cadre_reviews SET status = 'decided', decision = ?, reason = ?, changes = ?, "
            "decided_by = ?, decided_at = ?, claimed_by = NULL, claimed_until = NULL "
            "WHERE id = ? AND status = 'pending' AND " + FREE_FOR + " AND " + RUN_OPEN
        )
        params: list[Any] = [
            decision,
            reason,
            json.dumps(changes) if changes else None,
            by,
            now,
            review_id,
            actor or by,
            now,
        ]
        if seen is not None:
            sql, params = sql + " AND " + SAME_APPROVALS, [*params, _approvals(seen)]
        won = self.db.execute(sql, tuple(params))
        record = self.review(review_id)
        if not won:
            raise self._lost(record, actor or by, now)
        shown: dict[str, Any] = {
            "review_id": record.id,
            "decision": decision,
            "by": by,
            "reason": reason,
        }
        if changes and changes.get("set"):  # an edit: what it set, and who, for the audit trail
            shown["changes"] = changes["set"]
            if changes.get("edits"):
                shown["edited_by"] = [e["by"] for e in changes["edits"]]
        self._append([(record.run_id, record.decided_at or 0.0, "decision", record.node, shown)])
        return record

    def claim(self, review_id: str, who: str, hold_s: float) -> ReviewRecord:
        """Take a pending review for ``hold_s`` seconds: while the claim holds, only ``who``
        may decide it (claiming again renews it). A review another reviewer holds answers
        ConflictError naming them. A reviewer who has approved it already may not take it: the
        next approval is another reviewer's, whom the claim would keep out."""
        now = time.time()
        check_new_approver(self.review(review_id), who)
        won = self.db.execute(
            "UPDATE cadre_reviews SET claimed_by = ?, claimed_until = ? "
            "WHERE id = ? AND status = 'pending' AND " + FREE_FOR,
            (who, now + hold_s, review_id, who, now),
        )
        record = self.review(review_id)
        if not won:
            raise refused(record, who, now)
        # In the run's log, so pages and watchers showing the review learn who holds it.
        until = record.claimed_until or now
        self._append([(record.run_id, now, "claim", record.node, _held(record.id, who, until))])
        return record

    def release(self, review_id: str, who: str) -> ReviewRecord:
        """Give up ``who``'s claim on a review (nothing happens when nobody holds it); a
        claim another reviewer holds is theirs to release: ConflictError naming them."""
        released = self.db.execute(
            "UPDATE cadre_reviews SET claimed_by = NULL, claimed_until = NULL "
            "WHERE id = ? AND claimed_by = ?",
            (review_id, who),
        )
        record = self.review(review_id)
        now = time.time()
        if record.holder(now) not in (None, who):
            raise held_elsewhere(record, who, now)
        if released:
            self._append([(record.run_id, now, "release", record.node, _held(record.id, who))])
        return record

    def _lost(self, record: ReviewRecord, who: str, now: float) -> ConflictError:
        """Why ``who``'s conditional write to ``record`` (read again after it) changed nothing."""
        run = self.run(record.run_id)
        if record.status == "pending" and run.status in FINISHED:
            return ConflictError(f"review {record.id}: its run {run.id} is already {run.status}")
        if record.status == "pending" and record.holder(now) in (None, who):
            return ApprovalsChanged(
                f"review {record.id} gained another approval while {who} decided it"
            )
        return refused(record, who, now)

    def approve_partly(
        self, seen: ReviewRecord, who: str, changes: dict[str, Any] | None = None
    ) -> ReviewRecord:
        """Record one approval of a review that needs more than one, from a reviewer who has
        not approved it yet; the review stays pending. ``seen`` is the review as the approval
        was made from it: if another approval came in since, nothing is written and this
        raises ApprovalsChanged (the caller decides again: this one may now be the last)."""
        now = time.time()
        review_id, record = seen.id, seen
        if record.status != "pending":
            raise not_pending(record)
        check_new_approver(record, who)
        after = [*record.approvals, {"by": who, "at": now, "changes": changes}]
        won = self.db.execute(
            "UPDATE cadre_reviews SET approvals = ?, claimed_by = NULL, claimed_until = NULL "
            "WHERE id = ? AND status = 'pending' AND "
            + " AND ".join((SAME_APPROVALS, FREE_FOR, RUN_OPEN)),
            (json.dumps(after), review_id, _approvals(record), who, now),
        )
        if not won:
            raise self._lost(self.review(review_id), who, now)
        needed = int(record.payload.get("approvals", 1))
        shown = {"review_id": review_id, "by": who, "approvals": len(after), "needed": needed}
        if changes:  # an approval that edits: what it changed, seen by the next approvers
            shown["changes"] = changes
        self._append([(record.run_id, now, "approval", record.node, shown)])
        return self.review(review_id)

    def next_due(self) -> float | None:
        """When the next pending review not yet overdue falls due (None: none has a due time)."""
        rows = self.db.query(
            "SELECT MIN(due_at) AS due FROM cadre_reviews "
            "WHERE status = 'pending' AND overdue_at IS NULL"
        )
        due = rows[0]["due"] if rows else None
        return None if due is None else float(due)

    def mark_overdue(self, now: float | None = None) -> list[ReviewRecord]:
        """Mark the pending reviews whose ``due_at`` has passed as overdue and return them;
        each review is returned once, by whichever process marks it first."""
        now = time.time() if now is None else now
        due = self.db.query(
            "SELECT id FROM cadre_reviews WHERE status = 'pending' AND due_at <= ? "
            "AND overdue_at IS NULL",
            (now,),
        )
        marked = []
        for row in due:
            if self.db.execute(
                "UPDATE cadre_reviews SET overdue_at = ? WHERE id = ? AND overdue_at IS NULL",
                (now, row["id"]),
            ):
                marked.append(self.review(row["id"]))
        return marked

    def mark_applied(self, review_ids: list[str]) -> None:
        for review_id in review_ids:
            self.db.execute(
                "UPDATE cadre_reviews SET status = 'applied', applied_at = ? WHERE id = ?",
                (time.time(), review_id),
            )

    @staticmethod
    def _review(row: dict[str, Any]) -> ReviewRecord:
        return ReviewRecord(
            id=ReviewId(row["id"]),
            run_id=RunId(row["run_id"]),
            interrupt_id=row["interrupt_id"],
            node=row["node"],
            payload=json.loads(row["payload"]),
            status=row["status"],
            decision=row["decision"],
            reason=row["reason"],
            changes=_loads(row["changes"]),
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
            created_at=row["created_at"],
            claimed_by=row.get("claimed_by"),
            claimed_until=row.get("claimed_until"),
            approvals=tuple(_loads(row.get("approvals")) or ()),
            due_at=row.get("due_at"),
            overdue_at=row.get("overdue_at"),
        )


def _usage_columns(usage: dict[str, dict[str, float]]) -> list[Any]:
    """A usage's columns: the JSON, and its input and output tokens summed."""
    return [
        json.dumps(usage),
        sum(u.get("input_tokens", 0) for u in usage.values()),
        sum(u.get("output_tokens", 0) for u in usage.values()),
    ]
