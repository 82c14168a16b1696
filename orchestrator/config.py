"""Every ``CADRE_*`` setting and the ``.cadre/`` paths, read in one place.

A setting is read when it is asked for, not at import, so a test or a Ray job's runtime
environment can change it. Each reader says its variable and its default.

| Variable                      | Default                     | Read by                         |
|-------------------------------|-----------------------------|---------------------------------|
| ``CADRE_CATALOG``             | ``agents``                  | the catalog                     |
| ``CADRE_GRAPHS``              | ``graphs`` beside the catalog | the catalog                   |
| ``CADRE_MODELS_DIR``          | ``.cadre/models``           | model preparation, engines      |
| ``CADRE_ADAPTERS_DIR``        | ``.cadre/adapters``         | the adapter registry            |
| ``CADRE_DATABASE_URL``        | ``sqlite:///.cadre/cadre.db`` | every store                   |
| ``CADRE_TRACE_FILE``          | ``.cadre/traces.jsonl``     | telemetry, ``cadre trace``      |
| ``CADRE_CAPTURE_CONTENT``     | off                         | telemetry (prompt/answer text)  |
| ``CADRE_OTEL_FLUSH_TIMEOUT_S``| 2                           | telemetry (flush at exit)       |
| ``CADRE_TRACE_CHECKPOINTS``   | ``events``                  | the runner                      |
| ``CADRE_WEBHOOK_ALLOW``       | nothing                     | webhook targets                 |
| ``CADRE_HTTP_ALLOWLIST``      | nothing                     | the ``http_get`` tool           |
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path
from typing import Literal

STATE_DIR = ".cadre"
"""Where Cadre keeps what it makes in the working directory: models, adapters, the SQLite
database, traces and eval reports."""

CATALOG_ENV = "CADRE_CATALOG"
GRAPHS_ENV = "CADRE_GRAPHS"
MODELS_ENV = "CADRE_MODELS_DIR"
ADAPTERS_ENV = "CADRE_ADAPTERS_DIR"
DATABASE_ENV = "CADRE_DATABASE_URL"
TRACE_FILE_ENV = "CADRE_TRACE_FILE"
CONTENT_ENV = "CADRE_CAPTURE_CONTENT"
FLUSH_ENV = "CADRE_OTEL_FLUSH_TIMEOUT_S"
TRACE_CHECKPOINTS_ENV = "CADRE_TRACE_CHECKPOINTS"
WEBHOOK_ALLOW_ENV = "CADRE_WEBHOOK_ALLOW"
HTTP_ALLOWLIST_ENV = "CADRE_HTTP_ALLOWLIST"

DEFAULT_SQLITE = f"{STATE_DIR}/cadre.db"
DEFAULT_TRACE_FILE = f"{STATE_DIR}/traces.jsonl"

DEFAULT_TENANT = "default"
"""The tenant of runs made without one (the CLI, and API keys made without ``--tenant``)."""

LEASE_S = 15.0
"""How long a driver's claim on a run holds without renewal: the longest a dead driver's runs
wait before another driver takes them over. Drivers renew every ``LEASE_S / 3`` at most."""

RUNS_PER_WORKER = 64
"""Runs one run worker drives at once on its event loop."""

POLL_S = 1.0
"""How often an idle worker looks for claimable runs when no wake-up reaches it."""


def catalog_root() -> Path:
    """The catalog folder: ``$CADRE_CATALOG``, else ``./agents``."""
    return Path(os.environ.get(CATALOG_ENV) or "agents")


def graphs_root(catalog: Path) -> Path:
    """The workflow folder: ``$CADRE_GRAPHS``, else the ``graphs/`` folder beside the catalog."""
    return Path(os.environ.get(GRAPHS_ENV) or catalog.resolve().parent / "graphs")


def models_dir() -> Path:
    """Where prepared models live: ``$CADRE_MODELS_DIR``, else ``.cadre/models``."""
    return Path(os.environ.get(MODELS_ENV) or f"{STATE_DIR}/models")


def adapters_dir() -> Path:
    """Where adapters live: ``$CADRE_ADAPTERS_DIR``, else ``.cadre/adapters``."""
    return Path(os.environ.get(ADAPTERS_ENV) or f"{STATE_DIR}/adapters")


def evals_dir() -> Path:
    """Where ``cadre eval`` writes its reports: ``.cadre/evals``."""
    return Path(STATE_DIR) / "evals"


def database_url() -> str:
    """``$CADRE_DATABASE_URL``, else the SQLite file under ``.cadre/`` in the working directory."""
    return os.environ.get(DATABASE_ENV) or f"sqlite:///{DEFAULT_SQLITE}"


def trace_file() -> Path:
    """The local span file: ``$CADRE_TRACE_FILE``, else ``.cadre/traces.jsonl``."""
    return Path(os.environ.get(TRACE_FILE_ENV) or DEFAULT_TRACE_FILE)


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")

MAX_FLUSH_S = 300.0
DEFAULT_FLUSH_S = 2.0


def capture_content() -> bool:
    """``$CADRE_CAPTURE_CONTENT`` (1, true, yes or on): record prompt and answer text in spans."""
    return os.environ.get(CONTENT_ENV, "").strip().lower() in _YES


def flush_timeout_s() -> float:
    """``$CADRE_OTEL_FLUSH_TIMEOUT_S``: the longest a flush of telemetry waits (default 2 s;
    a value ``problems`` refuses reads as the default, so export never fails a run)."""
    seconds = _seconds(os.environ.get(FLUSH_ENV, ""))
    return DEFAULT_FLUSH_S if seconds is None else seconds


def _seconds(text: str) -> float | None:
    """``text`` as seconds from 0 to MAX_FLUSH_S, or None (not set, or not such a number)."""
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_FLUSH_S else None


def trace_checkpoints() -> Literal["events", "spans"]:
    """``$CADRE_TRACE_CHECKPOINTS``: checkpoint writes as events on the step's span (the
    default), or as spans of their own (``spans``)."""
    value = os.environ.get(TRACE_CHECKPOINTS_ENV, "").strip().lower()
    return "spans" if value == "spans" else "events"


def problems() -> list[str]:
    """What is wrong with the ``CADRE_*`` variables set, one line each naming the variable:
    a command checks them before it does anything, so a typo is not quietly read as a
    default (or found only after a run, at its last flush)."""
    found = []

    def get(name: str) -> str:
        return os.environ.get(name, "").strip()

    def shown(name: str) -> str:
        return f"{name}={os.environ.get(name, '')[:80]!r}"

    if get(FLUSH_ENV) and _seconds(get(FLUSH_ENV)) is None:
        found.append(f"{shown(FLUSH_ENV)}: give seconds from 0 to {MAX_FLUSH_S:g}, such as 2")
    if get(CONTENT_ENV).lower() not in (*_YES, *_NO):
        found.append(f"{shown(CONTENT_ENV)}: give 1 or 0 (true/false, yes/no, on/off)")
    if get(TRACE_CHECKPOINTS_ENV).lower() not in ("", "events", "spans"):
        found.append(f"{shown(TRACE_CHECKPOINTS_ENV)}: give events (the default) or spans")
    for name in (CATALOG_ENV, GRAPHS_ENV, MODELS_ENV, ADAPTERS_ENV):
        if get(name) and Path(get(name)).exists() and not Path(get(name)).is_dir():
            found.append(f"{shown(name)}: that is a file; give a folder")
    if get(TRACE_FILE_ENV) and Path(get(TRACE_FILE_ENV)).is_dir():
        found.append(f"{shown(TRACE_FILE_ENV)}: that is a folder; give a file path")
    for item in webhook_allow():
        if "/" in item:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                found.append(f"{WEBHOOK_ALLOW_ENV}: {item[:80]!r} is not a network (a CIDR)")
    for item in http_allowlist():
        if "/" in item or (":" in item and not _address(item)):
            found.append(
                f"{HTTP_ALLOWLIST_ENV}: {item[:80]!r}: give bare host names, such as "
                "api.example.com (no scheme, port or path)"
            )
    return found


def webhook_allow() -> list[str]:
    """``$CADRE_WEBHOOK_ALLOW``: host names and CIDRs webhooks may target though private."""
    return _listed(WEBHOOK_ALLOW_ENV)


def http_allowlist() -> list[str]:
    """``$CADRE_HTTP_ALLOWLIST``: the hosts the ``http_get`` tool may fetch, lower-cased."""
    return [host.lower() for host in _listed(HTTP_ALLOWLIST_ENV)]


def _listed(variable: str) -> list[str]:
    """A comma-separated variable's items, stripped, the empty ones left out."""
    return [item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()]


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
