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


def capture_content() -> bool:
    """``$CADRE_CAPTURE_CONTENT`` (1, true or yes): record prompt and answer text in spans."""
    return os.environ.get(CONTENT_ENV, "").lower() in ("1", "true", "yes")


def flush_timeout_s() -> float:
    """``$CADRE_OTEL_FLUSH_TIMEOUT_S``: the longest a flush of telemetry waits (default 2 s)."""
    return float(os.environ.get(FLUSH_ENV) or "2")


def trace_checkpoints() -> Literal["events", "spans"]:
    """``$CADRE_TRACE_CHECKPOINTS``: checkpoint writes as events on the step's span (the
    default), or as spans of their own (``spans``)."""
    return "spans" if os.environ.get(TRACE_CHECKPOINTS_ENV, "").lower() == "spans" else "events"


def webhook_allow() -> list[str]:
    """``$CADRE_WEBHOOK_ALLOW``: host names and CIDRs webhooks may target though private."""
    return _listed(WEBHOOK_ALLOW_ENV)


def http_allowlist() -> list[str]:
    """``$CADRE_HTTP_ALLOWLIST``: the hosts the ``http_get`` tool may fetch, lower-cased."""
    return [host.lower() for host in _listed(HTTP_ALLOWLIST_ENV)]


def _listed(variable: str) -> list[str]:
    """A comma-separated variable's items, stripped, the empty ones left out."""
    return [item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()]
