"""Runs as Ray jobs on a real local two-node cluster: a head node with the job server, and a worker
node that alone offers the custom resource model hosts require, so placement is real. A run is
submitted both ways (``cadre submit`` and ``ray job submit -- cadre run``); both succeed and their
model host ran on the worker node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
from tests.conftest import ROOT, _free_port
from tests.workflow.fixtures import scripted_workflow_catalog

pytestmark = pytest.mark.ray
BIN = ROOT / ".venv" / "bin"
RESOURCE = "cadre_model_host"


@dataclass
class Cluster:
    address: str  # the job server
    gcs: str
    env: dict[str, str]

    def ray(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "ray"), *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    port, dashboard = _free_port(), _free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "RAY_ADDRESS": "",
    }
    env.pop("RAY_ADDRESS")
    common = ["--block", "--disable-usage-stats"]
    # Each node's dashboard agent (which runs submitted jobs) on a port of its own: the default
    # one (52365) is taken by any other Ray instance on this machine, such as the test session's.
    agent = [f"--dashboard-agent-listen-port={_free_port()}"]
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", *agent, *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    started = [head]
    try:  # whatever fails from here on, the nodes are ended
        _wait(lambda: httpx.get(f"{address}/api/version", timeout=2).status_code == 200, "head")
        worker = subprocess.Popen(
            [str(BIN / "ray"), "start", f"--address=127.0.0.1:{port}", "--num-cpus=1",
             f"--resources={json.dumps({RESOURCE: 1})}",
             f"--dashboard-agent-listen-port={_free_port()}", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        started.append(worker)
        built = Cluster(address, f"127.0.0.1:{port}", env)
        _wait(lambda: len(_nodes(built)) == 2, "worker node")
        yield built
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        _kill_leftovers(port)


def _kill_leftovers(port: int) -> None:
    """End every process of this cluster (raylets, GCS, workers, agents) and no other: they all
    name its GCS port. `ray stop` would end the test session's own Ray instance too."""
    import psutil

    ours = (f"--gcs_server_port={port}",)
    mine = []
    for process in psutil.process_iter(["cmdline"]):
        args = process.info["cmdline"] or []
        if any(
            a in ours or (a.startswith("--gcs-address=") and a.endswith(f":{port}")) for a in args
        ):
            mine.append(process)
    for process in mine:
        process.kill()
    psutil.wait_procs(mine, timeout=30)


def _wait(ready: object, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the {what} did not come up in {timeout_s} s")


def _nodes(cluster: Cluster) -> list[dict[str, object]]:
    out = cluster.ray("list", "nodes", "--address", cluster.address, "--format", "json", "--detail")
    listed = json.loads(out) if out.lstrip().startswith("[") else []  # or "No resource ..."
    return [n for n in listed if n["state"] == "ALIVE"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder whose model hosts need the worker node's resource."""
    root = scripted_workflow_catalog(tmp_path)
    (model_file,) = (root / "models").glob("*.yaml")
    model = yaml.safe_load(model_file.read_text())
    model["hosting"] = {"num_cpus": 0, "resources": {RESOURCE: 1}}
    model_file.write_text(yaml.safe_dump(model))
    return tmp_path


def test_a_run_submitted_both_ways_runs_on_the_cluster(cluster: Cluster, project: Path) -> None:
    db_url = f"sqlite:///{project / 'runs.db'}"
    env = {**cluster.env, "CADRE_DATABASE_URL": db_url}
    claim = json.dumps({"claim": "rework: a cracked window"})

    ours = subprocess.run(
        [str(BIN / "cadre"), "submit", "claim", "--input", claim, "--address", cluster.address,
         "--follow"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert "succeeded" in ours.stdout and "SUCCEEDED" in ours.stdout

    runtime_env = json.dumps(
        {
            "env_vars": {
                "CADRE_CATALOG": "agents",
                "CADRE_GRAPHS": "graphs",
                "CADRE_DATABASE_URL": db_url,
            }
        }
    )
    theirs = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cluster.address, "--working-dir", ".",
         "--runtime-env-json", runtime_env, "--", "cadre", "run", "claim", "--input", claim],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert "succeeded" in theirs.stdout

    runs = RunStore(Database(db_url)).runs()
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert all(r.output and r.output["decision"] == {"decision": "pay"} for r in runs)

    # Placement was real: every model host ran on the node offering the resource.
    (worker,) = [n for n in _nodes(cluster) if RESOURCE in n["resources_total"]]  # type: ignore[operator]
    hosts = json.loads(
        cluster.ray("list", "actors", "--address", cluster.address, "--format", "json",
                    "--detail", "--filter", "class_name=ModelHost")
    )  # fmt: skip
    assert len(hosts) == 2  # one per job (a job's hosts end with its driver)
    assert {h["node_id"] for h in hosts} == {worker["node_id"]}


TAKEOVER = """
import json, os, sys, time, uuid
import psutil
import ray
from orchestrator.cli.serve import run_driver
from orchestrator.hosting.workers import RunWorkers
from orchestrator.runs.store import FINISHED, RunStore
from orchestrator.runs.worker import serve_in_thread
from orchestrator.storage.database import Database

root, url, resource, hold = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ray.init(address="auto", namespace="cadre", log_to_driver=False)
store = RunStore(Database(url))
runs = [r.id for r in store.runs(limit=100)]

def workers(prefix, resources):
    driver = run_driver(f"{root}/agents", f"{root}/graphs", url, lease_s=3.0)
    return RunWorkers(driver, serve_in_thread, 1, prefix=prefix,
                      options={"resources": resources})

def node_of(pool):
    return pool.stats()[0]["node_id"]

def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True

def wait(check, what):
    deadline = time.monotonic() + 120
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)

tag = uuid.uuid4().hex[:6]  # detached actors outlive this script: names of their own
far = workers(f"far-{tag}", {resource: 0.01})
head = None
try:
    far.wake()
    # Every call is held (the hold file) until the far worker's process is gone and the head's
    # worker started: however loaded the machine, no run can finish on the far worker. (Under
    # load, a CI run saw the killed worker's process drive its runs for 12 s after Ray had
    # reported it dead.)
    wait(lambda: all(store.run(r).status == "running" for r in runs), "runs started far")
    (far_stats,) = far.stats()
    ray.kill(far.handles[0], no_restart=True)
    wait(lambda: gone(far_stats["pid"]), "the far worker's process ended")
    head = workers(f"head-{tag}", {"node:__internal_head__": 0.01})
    os.remove(hold)
    wait(lambda: all(store.run(r).status in FINISHED for r in runs), "runs finished on the head")
    # A run's record says succeeded a moment before its worker counts it driven.
    wait(lambda: head.stats()[0]["active"] == 0, "the head's worker settled")
    print(json.dumps({
        "far_node": far_stats["node_id"],
        "head_node": node_of(head),
        "statuses": [store.run(r).status for r in runs],
        "head_driven": head.stats()[0]["driven"],
    }))
finally:
    if os.path.exists(hold):
        os.remove(hold)
    for pool in (far, head):
        if pool is not None:
            pool.shutdown()
"""


def test_a_dead_worker_s_runs_on_the_second_node_are_taken_over_on_the_head(
    cluster: Cluster, tmp_path: Path, database_url: str
) -> None:
    from tests.runs.test_worker import steps_catalog

    # Calls are held until the far worker is killed: with timing alone (steps of 1 s, then 3 s),
    # CI runs on a loaded 2-core machine saw the far worker finish all four runs first.
    hold = tmp_path / "hold"
    hold.touch()
    steps_catalog(tmp_path, delay_s=0.5, hold_while=hold)
    store = RunStore(Database(database_url))
    for i in range(4):
        store.create_run("steps", {"text": f"far {i}"}, queued=True)
    script = tmp_path / "takeover.py"
    script.write_text(TAKEOVER)
    done = subprocess.run(
        [str(BIN / "python"), str(script), str(tmp_path), database_url, RESOURCE, str(hold)],
        cwd=ROOT, env={**cluster.env, "RAY_ADDRESS": cluster.gcs},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["far_node"] and result["head_node"]
    assert result["far_node"] != result["head_node"]
    assert result["statuses"] == ["succeeded"] * 4
    assert result["head_driven"] == 4, "the head's worker took over every run"


def test_a_database_password_never_goes_into_a_job_s_environment() -> None:
    """Ray's dashboard shows each job's env_vars: a URL with a password stays out (the job
    reads the cluster's own CADRE_DATABASE_URL, set from a secret)."""
    from orchestrator.hosting.jobs import job_env

    for secret in (
        "postgresql://cadre:s3cret@db:5432/cadre",
        "postgresql://db/cadre?user=cadre&password=s3cret",
    ):
        env = job_env("agents", "graphs", secret)
        assert "CADRE_DATABASE_URL" not in env and "s3cret" not in str(env)
    plain = "postgresql://cadre@db:5432/cadre"
    assert job_env("agents", "graphs", plain)["CADRE_DATABASE_URL"] == plain
    assert job_env("a", "g", "sqlite:////srv/cadre.db")["CADRE_DATABASE_URL"].startswith("sqlite")
