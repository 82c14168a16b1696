"""Running a tool in a child process that is killed at its timeout.

A Python thread cannot be stopped, and a tool that holds the interpreter in one long C call (a big
integer power) blocks even the event loop's timers, so a thread timeout never fires. An isolated
tool (``Tool.isolated``) runs instead in a helper process (``python -m
orchestrator.tools.isolation``) that takes one call at a time as a JSON line on its stdin and
answers with one on its stdout. The caller waits on the pipe until the call's deadline and kills
the helper when it passes. Idle helpers are kept for the next call, so a call costs a pipe round
trip, not a process start. Each helper also sets its own CPU-time limit before every call: one
whose parent died mid-call cannot spin on for more than the call's timeout either.
"""

from __future__ import annotations

import atexit
import importlib
import json
import math
import os
import resource
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator import errors
from orchestrator.errors import CadreError, RunError, ToolTimeoutError
from orchestrator.tools.base import Tool, ToolContext

MAX_IDLE = 4
"""Idle helpers kept per process (concurrent isolated calls start more; the rest exit)."""
STARTUP_S = 60.0
"""The longest a new helper may take to start (import Python and the tools)."""

_idle: list[_Helper] = []
_lock = threading.Lock()


def call(tool: Tool, args: BaseModel, context: ToolContext, timeout_s: float) -> Any:
    """Call ``tool`` in a helper process; blocks until it answers or its deadline passes (then
    the helper is killed and ToolTimeoutError raised)."""
    fn, args_model = _reference(tool.fn), _reference(tool.args)
    helper = _take()
    # The timeout is the tool's: it starts once a helper is ready (a new one takes a moment).
    deadline = time.monotonic() + timeout_s
    request = {
        "fn": fn,
        "args_model": args_model,
        "args": args.model_dump(mode="json"),
        "context": {
            "catalog_root": str(context.catalog_root),
            "database_url": context.database_url,
            "run_id": context.run_id,
            "node_id": context.node_id,
            "deadline": deadline,
            "idempotency_key": context.idempotency_key,
        },
        "cpu_s": timeout_s,
    }
    try:
        answer = helper.ask(json.dumps(request).encode() + b"\n", deadline)
    except TimeoutError:
        helper.kill()
        raise ToolTimeoutError(
            f"tool {tool.name!r} did not answer within {timeout_s:g} s (stopped)"
        ) from None
    except (OSError, ValueError) as err:
        helper.kill()
        raise RunError(f"tool {tool.name!r}: its process ended without an answer ({err})") from None
    _give_back(helper)
    if answer["ok"]:
        return answer["result"]
    raise _error(answer["error"], answer["message"])


def _reference(obj: Any) -> str:
    """``module:qualname`` of a module-level function or class (what a helper imports)."""
    qualname = getattr(obj, "__qualname__", "")
    if not qualname or "<" in qualname:
        raise TypeError(f"an isolated tool needs module-level functions and classes, not {obj!r}")
    return f"{obj.__module__}:{qualname}"


def _resolve(reference: str) -> Any:
    module, _, qualname = reference.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _error(kind: str, message: str) -> CadreError:
    """The helper's error as the same typed error (one taking just a message), else RunError."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, CadreError):
        try:
            return cls(message)
        except TypeError:
            pass
    return RunError(message)


class _Helper:
    """One helper process and the end of its pipes."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.tools.isolation"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._buffer = b""
        try:
            self._answer(time.monotonic() + STARTUP_S)  # {"ready": true}
        except (TimeoutError, OSError, ValueError) as err:
            self.kill()
            raise RunError(f"the isolated tool process did not start ({err!r})") from None

    def ask(self, request: bytes, deadline: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(request)
        self.proc.stdin.flush()
        return self._answer(deadline)

    def _answer(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise OSError("end of output")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return dict(json.loads(line))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Let an idle helper end (it exits when its stdin closes)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.kill()


def _take() -> _Helper:
    with _lock:
        while _idle:
            helper = _idle.pop()
            if helper.proc.poll() is None:
                return helper
    return _Helper()


def _give_back(helper: _Helper) -> None:
    with _lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(helper)
            return
    helper.close()


@atexit.register
def _close_idle() -> None:
    with _lock:
        helpers, _idle[:] = list(_idle), []
    for helper in helpers:
        helper.close()


# -- the helper process ------------------------------------------------------------------------


def _serve() -> None:
    """Say it is ready, then answer calls from stdin until it closes."""
    sys.stdout.buffer.write(b'{"ready": true}\n')
    sys.stdout.buffer.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        _limit_cpu(float(request["cpu_s"]))
        try:
            fn, model = _resolve(request["fn"]), _resolve(request["args_model"])
            raw = request["context"]
            context = ToolContext(**{**raw, "catalog_root": Path(raw["catalog_root"])})
            answer: dict[str, Any] = {
                "ok": True,
                "result": fn(model.model_validate(request["args"]), context),
            }
        except CadreError as err:
            answer = {"ok": False, "error": type(err).__name__, "message": err.message}
        except Exception as err:  # reported to the caller as the tool's failure
            answer = {"ok": False, "error": "RunError", "message": f"{type(err).__name__}: {err}"}
        sys.stdout.buffer.write(json.dumps(answer, default=str).encode() + b"\n")
        sys.stdout.buffer.flush()


def _limit_cpu(seconds: float) -> None:
    """The kernel ends this process (SIGXCPU) once this call used ``seconds`` of CPU and 1 more."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


if __name__ == "__main__":
    _serve()
