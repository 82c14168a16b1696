"""A run's live event stream: what ``GET /v1/runs/{id}/stream`` sends and ``cadre runs watch``
prints, both read from the run database by :func:`pending`.

The events are the run's log (see :meth:`RunStore.log`), one per entry, each with the entry's
``seq`` as its id: ``token`` (text a streaming node's specialist generated since the last
one, for nodes with ``stream: true``), ``node`` (a node finished: keys written, tokens, time,
tool error), ``status``
(a status change), ``awaiting_review`` (a review was queued), ``approval`` (one approval of a
review that needs several, with what it edited), ``decision`` (a review was decided),
``claim`` and ``release`` (a reviewer took a review, until when, or gave it up).
After the last entry of a finished run comes ``end`` (the final status, with the output or the
error), whose id is that last entry's: resuming after it sends ``end`` again and nothing else.

Ids increase in the order entries are written and never change, so a client that resumes after
the last id it got misses nothing and gets nothing twice. A driver records a run's nodes a tick
after they finish, and always before the run's next status change or review, so the log is in
the order things happened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.runs.store import FINISHED, LogEntry, RunStore

EventName = Literal[
    "node",
    "token",
    "status",
    "awaiting_review",
    "approval",
    "decision",
    "claim",
    "release",
    "end",
]
POLL_S = 0.25
"""How often a follower reads the log again (one indexed query)."""


@dataclass(frozen=True)
class RunEvent:
    """One event of a run's stream."""

    id: int
    event: EventName
    data: dict[str, Any]

    def sse(self) -> str:
        """The event as Server-Sent Events text."""
        return f"id: {self.id}\nevent: {self.event}\ndata: {json.dumps(self.data)}\n\n"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, **self.data}


def _event(run_id: str, entry: LogEntry) -> RunEvent:
    data: dict[str, Any] = {"run_id": run_id, "at": entry.at}
    if entry.kind != "status":
        data["node"] = entry.node
    return RunEvent(entry.seq, entry.kind, {**data, **entry.detail})


def pending(store: RunStore, run_id: str, after: int = 0) -> list[RunEvent]:
    """The run's events after id ``after`` that can be sent now (one indexed query; one more
    for ``end``), ``end`` last once the run has finished."""
    page = store.log(run_id, after)
    events = [_event(run_id, entry) for entry in page.entries]
    settled = page.logged_status in (None, page.status)
    if page.status in FINISHED and not page.held and settled and page.complete:
        record = store.run(run_id)
        # the id of the event before it: the log's last, not a client's id past the log
        last = page.entries[-1].seq if page.entries else min(after, page.last)
        ended = {"run_id": run_id, "status": record.status, "output": record.output}
        events.append(RunEvent(last, "end", {**ended, "error": record.error}))
    return events


def watch(
    store: RunStore,
    run_id: str,
    after: int = 0,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[RunEvent]:
    """Every event of the run after id ``after`` as it happens, until ``end``."""
    while True:
        events = pending(store, run_id, after)
        for event in events:
            yield event
            if event.event == "end":
                return
            after = event.id
        sleep(poll_s)
