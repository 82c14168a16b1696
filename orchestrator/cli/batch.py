"""``cadre run WORKFLOW --inputs FILE.jsonl``: many runs of one workflow at once, in one process.

One Runner drives them all on one event loop, at most ``--concurrency`` at a time, so the model
hosts see that many calls at once and can batch them. The inputs file is read a line at a time as
slots free up, and each result is written the moment its run stops: memory holds about
``concurrency`` inputs and results whatever the file's length. This is what an operator submits
as a Ray job for 10,000 inputs.

Each result is one JSON line: ``line`` (its line in the inputs file), ``run_id``, ``status`` and,
by status, ``output`` (succeeded), ``reviews`` (awaiting_review: the review ids) or ``error``
(failed, invalid). Results come in the order runs stop, not in file order. A line that is not
JSON or does not fit the workflow's input schema is checked as it is read, gets an ``invalid``
result and creates no run; the lines after it go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.cli.common import err
from orchestrator.cli.inputs import InputLine, check, count_lines, input_lines, open_input
from orchestrator.errors import CadreError, InputError, RunError, clip

DEFAULT_CONCURRENCY = 8
LOG_EVERY_S = 10.0
"""Without a terminal (a Ray job's log), a progress line this often."""


def run_many(
    loaded: Any,
    workflow: str,
    inputs: Path,
    concurrency: int,
    output: Path | None,
    asker: Any = None,
) -> Counter[str]:
    """Run ``workflow`` once per line of ``inputs``; write a result line per input to
    ``output`` (standard output when None); the count of results by status. ``asker``: who
    answers the specialists (default: the Ray host pool)."""
    spec = loaded.workflow(workflow)
    if output is not None and output.exists() and output.resolve() == inputs.resolve():
        raise InputError(f"--output {output} is the inputs file; write the results elsewhere")
    source = open_input(inputs)  # a missing or unreadable file is refused before anything starts
    # Results printed to a terminal go above the progress bar (through it); anywhere else, they
    # go straight to their file or pipe.
    through_bar = output is None and sys.stdout.isatty()
    reporter = _Reporter(spec.name, count_lines(inputs), through_bar)
    with source, _Sink(output) as sink, reporter:

        def emit(result: dict[str, Any]) -> None:
            sink.write(result)
            reporter.advance(result["status"])

        lines = input_lines(source, str(inputs))
        running: dict[int, str] = {}  # line number -> run id, while its run is driven
        try:
            return asyncio.run(_run_all(loaded, spec, lines, concurrency, emit, running, asker))
        except KeyboardInterrupt:
            if running:  # recorded runs stay, and any driver may take them on
                left = ", ".join(running.values())
                err.print(
                    f"interrupted: {len(running)} runs were left where they were ({left}); "
                    "`cadre runs resume RUN` goes on with one, and `cadre serve` takes them all"
                )
            raise


async def _run_all(
    loaded: Any,
    spec: Any,
    lines: Iterable[InputLine],
    concurrency: int,
    emit: Callable[[dict[str, Any]], None],
    running: dict[int, str],
    asker: Any = None,
) -> Counter[str]:
    from orchestrator.runs.runner import Runner

    counts: Counter[str] = Counter()
    slots = asyncio.Semaphore(concurrency)

    def finish(result: dict[str, Any]) -> None:
        counts[result["status"]] += 1
        emit(result)

    async with Runner(loaded, asker=asker) as runner:

        async def one(line: InputLine) -> None:
            interrupted = False
            try:
                finish(await _run_one(runner, spec.name, line, running))
            except asyncio.CancelledError:
                interrupted = True  # Ctrl-C: its run stays listed, to be named as left
                raise
            finally:
                if not interrupted:
                    running.pop(line.number, None)
                slots.release()

        try:
            await _drive(lines, spec, slots, finish, one)
        except* CadreError as failed:  # e.g. the results could not be written: one message
            raise failed.exceptions[0] from None
    return counts


async def _drive(
    lines: Iterable[InputLine],
    spec: Any,
    slots: asyncio.Semaphore,
    finish: Callable[[dict[str, Any]], None],
    one: Callable[[InputLine], Any],
) -> None:
    """Check each line as it is read and start a run for each valid one when a slot frees."""
    async with asyncio.TaskGroup() as group:
        for line in lines:
            problem = line.error
            if problem is None:
                try:
                    check(spec, line.data)
                except InputError as error:
                    problem = error.message
            if problem is not None:
                finish({"line": line.number, "run_id": None, "status": "invalid", "error": problem})
                await asyncio.sleep(0)  # a long run of bad lines does not stall the runs
                continue
            await slots.acquire()  # read the next line only when a slot is free
            group.create_task(one(line))


async def _run_one(
    runner: Any, workflow: str, line: InputLine, running: dict[int, str]
) -> dict[str, Any]:
    """One input's run, as its result line (``running`` holds its id while it is driven)."""
    try:
        record = await runner.start(
            workflow, line.data, on_created=lambda r: running.__setitem__(line.number, r.id)
        )
    except Exception as error:  # the run failed; the runner recorded it as failed
        # A bug (not a CadreError) fails its own input's line, not the other inputs' runs.
        message = (
            error.message if isinstance(error, CadreError) else f"{type(error).__name__}: {error}"
        )
        run_id = running.get(line.number)  # None: refused before it was recorded
        return {"line": line.number, "run_id": run_id, "status": "failed", "error": clip(message)}
    result: dict[str, Any] = {"line": line.number, "run_id": record.id, "status": record.status}
    if record.status == "succeeded":
        result["output"] = record.output
    elif record.status == "awaiting_review":
        pending = await asyncio.to_thread(runner.store.reviews, "pending", record.id)
        result["reviews"] = [review.id for review in pending]
    elif record.error:
        result["error"] = clip(record.error)
    return result


class _Sink:
    """Where result lines go: a file, or standard output; each line flushed as written."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.file: IO[str] | None = None

    def __enter__(self) -> _Sink:
        if self.path is not None:
            try:
                self.file = self.path.open("w", encoding="utf-8")
            except OSError as error:
                raise InputError(
                    f"--output {self.path}: cannot write it ({error.strerror or error})"
                ) from None
        return self

    def write(self, result: dict[str, Any]) -> None:
        stream = self.file or sys.stdout  # looked up each time: a live progress bar wraps it
        try:
            stream.write(json.dumps(result) + "\n")
            stream.flush()
        except OSError as error:  # a closed pipe (`| head -1`), a full disk
            if isinstance(error, BrokenPipeError):  # nothing more can go to it, at exit either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            where = str(self.path) if self.path else "standard output"
            raise RunError(
                f"results could not be written to {where} ({error.strerror or error}); the runs "
                "still being driven were left where they were: `cadre runs list --status "
                "running` shows them"
            ) from None

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):  # what could not be written was said already
                self.file.close()


class _Reporter:
    """Progress on standard error: a rich bar on a terminal, else a line every
    :data:`LOG_EVERY_S` seconds (a Ray job's log); a summary line at the end either way."""

    def __init__(self, workflow: str, total: int | None, through_bar: bool) -> None:
        self.workflow = workflow
        self.total = total
        self.through_bar = through_bar
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self.logged = self.started
        self.bar: Progress | None = None

    def __enter__(self) -> _Reporter:
        if err.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                redirect_stdout=self.through_bar,
            )
            self.task = self.bar.add_task(self._tally(), total=self.total)
            self.bar.start()
        return self

    def advance(self, status: str) -> None:
        self.counts[status] += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=self._tally())
        elif time.monotonic() - self.logged >= LOG_EVERY_S:
            self.logged = time.monotonic()
            err.print(self._line(), soft_wrap=True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        if kind is None:
            err.print(self._line(), soft_wrap=True)

    def _tally(self) -> str:
        shown = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        return f"{self.workflow}: {shown or 'starting'}"

    def _line(self) -> str:
        done = sum(self.counts.values())
        of = f"/{self.total}" if self.total is not None else ""
        elapsed = time.monotonic() - self.started
        return f"{self._tally()} ({done}{of} inputs, {elapsed:.1f} s)"
