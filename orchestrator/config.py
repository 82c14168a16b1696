"""Settings read in one place: defaults of the run queue and its workers.

(More of the ``CADRE_*`` settings move here as their rooms are reached; see DESIGN.md.)
"""

from __future__ import annotations

import os
from typing import Literal

DEFAULT_TENANT = "default"
"""The tenant of runs made without one (the CLI, and API keys made without ``--tenant``)."""

LEASE_S = 15.0
"""How long a driver's claim on a run holds without renewal: the longest a dead driver's runs
wait before another driver takes them over. Drivers renew every ``LEASE_S / 3`` at most."""

RUNS_PER_WORKER = 64
"""Runs one run worker drives at once on its event loop."""

POLL_S = 1.0
"""How often an idle worker looks for claimable runs when no wake-up reaches it."""


def trace_checkpoints() -> Literal["events", "spans"]:
    """``CADRE_TRACE_CHECKPOINTS``: checkpoint writes as events on the step's span (the
    default), or as spans of their own (``spans``)."""
    return "spans" if os.environ.get("CADRE_TRACE_CHECKPOINTS", "").lower() == "spans" else "events"
