"""Runs as Ray jobs: an operator hands a run to a Ray cluster through its job server.

The job's working directory is the operator's project folder (the catalog and workflows travel
with it); its entrypoint is ``python -m orchestrator run WORKFLOW --input JSON``, so the cluster's
Python needs Cadre installed (the container image has it). The run database must be one the
cluster can reach: Postgres on a real cluster, or an absolute SQLite path on a one-machine
cluster.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import config
from orchestrator.errors import InputError, UserError

EXCLUDES = [".git", ".venv", ".venv-*", ".cadre", "__pycache__", "*.pyc"]
"""Never shipped with a job: environments, local state and caches."""


def job_env(catalog: str, graphs: str, database_url: str) -> dict[str, str]:
    """The job's environment variables, which Ray's dashboard shows to anyone who can reach it.

    The database URL goes in only when it carries no password. One with a password stays out:
    the job then reads the cluster's own ``CADRE_DATABASE_URL``, which the deployment sets on
    every node from a secret (deploy/kuberay/secret.yaml), or a password file (``PGPASSFILE``).
    """
    env = {config.CATALOG_ENV: catalog, config.GRAPHS_ENV: graphs}
    if not has_password(database_url):
        env[config.DATABASE_ENV] = database_url
    return env


def has_password(url: str) -> bool:
    """Whether a database URL carries a password (``scheme://user:password@host/db``, or a
    ``password=`` parameter)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    try:
        inline = parts.password
    except ValueError:  # an unparseable port: treat the URL as secret
        return True
    return bool(inline) or "password" in parse_qs(parts.query)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    address: str


def submit_run(
    address: str,
    workflow: str,
    data: Any,
    working_dir: Path,
    catalog: Path,
    graphs: Path,
    database_url: str,
) -> Submitted:
    """Submit ``cadre run`` as a Ray job; returns at once."""
    from ray.job_submission import JobSubmissionClient

    working_dir = working_dir.resolve()
    paths = {}
    for name, path in (("catalog", catalog), ("graphs", graphs)):
        try:
            paths[name] = str(path.resolve().relative_to(working_dir))
        except ValueError:
            raise InputError(
                f"the {name} folder {path} is not inside the job's working directory "
                f"{working_dir}; run `cadre submit` from the project folder"
            ) from None
    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UserError(f"cannot reach the Ray job server at {address}: {err}") from None
    run_input = shlex.quote(json.dumps(data))
    entrypoint = f"python -m orchestrator run {shlex.quote(workflow)} --input {run_input}"
    job_id = _retrying(
        lambda: client.submit_job(
            entrypoint=entrypoint,
            submission_id=f"cadre-{workflow}-{uuid.uuid4().hex[:8]}",
            runtime_env={
                "working_dir": str(working_dir),
                "excludes": EXCLUDES,
                "env_vars": job_env(paths["catalog"], paths["graphs"], database_url),
            },
            metadata={"cadre.workflow": workflow},
        )
    )
    return Submitted(job_id, address)


def _retrying(submit: Callable[[], str], timeout_s: float = 120) -> str:
    """Submit, waiting while a cluster that just started has no job agent ready yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return submit()
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise UserError(f"the Ray job server refused the run: {err}") from None
            time.sleep(1)


def follow(submitted: Submitted, write: Callable[[str], Any]) -> str:
    """Stream the job's log to ``write`` until it ends; returns its final status."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(submitted.address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(submitted.job_id):
            write(lines)

    asyncio.run(tail())
    for _ in range(100):  # the log ends a moment before the status is final
        status = client.get_job_status(submitted.job_id)
        if status.is_terminal():
            return str(status.value)
        time.sleep(0.1)
    return str(client.get_job_status(submitted.job_id).value)
