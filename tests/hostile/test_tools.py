"""Hostile tool calls: each is refused, or stopped within its timeout plus 1 s, and a run that
meets one records the tool's error, goes on, and its process exits."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.errors import InputError, NotFoundError, RunError, ToolTimeoutError
from orchestrator.memory.corpus import Corpora
from orchestrator.storage.database import Database
from orchestrator.tools import ToolContext, registry
from orchestrator.tools.runner import call_tool
from tests.conftest import ROOT
from tests.hostile.slow_tools import ISOLATED_POWER
from tests.hostile.tool_flows import write_tool_catalog


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    root = tmp_path / "agents"
    shutil.copytree(ROOT / "agents" / "data", root / "data")
    (root / "corpora" / "policy").mkdir(parents=True)
    (root / "corpora" / "policy" / "cover.md").write_text("# Cover\n\nHail damage is covered.")
    return root


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        return fn(*args), time.monotonic() - started
    except Exception as err:  # the caller checks which
        return err, time.monotonic() - started


# -- corpus_search ----------------------------------------------------------------------------


@pytest.mark.parametrize("corpus", ["../../", "..", "/etc", "policy/../../data", ".", ""])
def test_corpus_search_refuses_names_outside_the_corpora(
    catalog_root: Path, tmp_path: Path, corpus: str
) -> None:
    context = ToolContext(catalog_root=catalog_root, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    error, elapsed = timed(
        registry()["corpus_search"], {"corpus": corpus, "query": "passwords"}, context
    )
    assert isinstance(error, InputError), error
    assert "leads outside it" in error.message and elapsed < 1


def test_a_corpus_symlinked_out_of_the_corpora_is_refused(
    catalog_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secrets"
    outside.mkdir()
    (outside / "keys.txt").write_text("the root password")
    (catalog_root / "corpora" / "loot").symlink_to(outside)
    (catalog_root / "corpora" / "etc").symlink_to("/etc")
    context = ToolContext(catalog_root=catalog_root, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    for corpus in ("loot", "etc"):
        with pytest.raises(InputError, match="leads outside it"):
            registry()["corpus_search"]({"corpus": corpus, "query": "password"}, context)
    with pytest.raises(NotFoundError, match="unknown corpus 'nothing'"):
        registry()["corpus_search"]({"corpus": "nothing", "query": "password"}, context)


class CountingEmbedder:
    """A stand-in embedding (letter counts): enough to index and rank without a model."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [[t.lower().count(c) + 1.0 for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]
        matrix = np.array(rows, dtype=np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_a_file_symlinked_into_a_corpus_from_outside_is_not_read(
    catalog_root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("the root password is hunter2")
    (catalog_root / "corpora" / "policy" / "leak.md").symlink_to(secret)
    corpora = Corpora(
        catalog_root / "corpora", Database(f"sqlite:///{tmp_path / 'r.db'}"), CountingEmbedder()
    )
    passages = corpora.search("policy", "password", k=5)
    assert [p.source for p in passages] == ["cover.md#0"]
    assert all("hunter2" not in p.text for p in passages)


# -- http_get ---------------------------------------------------------------------------------


class Server:
    """An HTTP server on 127.0.0.1 that answers every GET from ``answer(path)``."""

    def __init__(self, answer: Any) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Server]:
    """Where a redirect would take the tool: it must never be reached off the allowlist."""
    server = Server(lambda path: (200, {"Content-Type": "text/plain"}, b"internal secrets"))
    yield server
    server.close()


def redirector(location: str) -> Server:
    return Server(lambda path: (302, {"Location": location}, b""))


def test_http_get_refuses_a_redirect_to_a_host_off_the_allowlist(
    monkeypatch: pytest.MonkeyPatch, target: Server
) -> None:
    monkeypatch.setenv("CADRE_HTTP_ALLOWLIST", "127.0.0.1")
    hop = redirector(f"http://localhost:{target.port}/admin")
    try:
        error, elapsed = timed(
            registry()["http_get"], {"url": f"http://127.0.0.1:{hop.port}/start"}
        )
    finally:
        hop.close()
    assert isinstance(error, InputError), error
    assert "host 'localhost' (a redirect from 'http://127.0.0.1:" in error.message
    assert "is not in the allowlist (CADRE_HTTP_ALLOWLIST: 127.0.0.1)" in error.message
    assert target.paths == [] and elapsed < 1


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/"]
)
def test_http_get_refuses_a_redirect_off_http(
    monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    monkeypatch.setenv("CADRE_HTTP_ALLOWLIST", "127.0.0.1")
    hop = redirector(location)
    try:
        with pytest.raises(InputError, match="a redirect from .* is not an http"):
            registry()["http_get"]({"url": f"http://127.0.0.1:{hop.port}/"})
    finally:
        hop.close()


def test_http_get_follows_redirects_on_allowed_hosts_and_stops_a_loop(
    monkeypatch: pytest.MonkeyPatch, target: Server
) -> None:
    monkeypatch.setenv("CADRE_HTTP_ALLOWLIST", "127.0.0.1")
    hop = redirector(f"http://127.0.0.1:{target.port}/rates")
    loop = Server(lambda path: (302, {"Location": f"/again{path}"}, b""))
    try:
        fetched = registry()["http_get"]({"url": f"http://127.0.0.1:{hop.port}/"})
        error, elapsed = timed(registry()["http_get"], {"url": f"http://127.0.0.1:{loop.port}/"})
    finally:
        hop.close()
        loop.close()
    assert fetched["status"] == 200 and fetched["text"] == "internal secrets"
    assert target.paths == ["/rates"]
    assert isinstance(error, RunError) and "more than 5 redirects" in error.message
    assert len(loop.paths) == 6 and elapsed < 1


# -- the calculator ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, message",
    [
        ("((9**1000)**1000)**1000", "too large"),
        ("9**9**9**9", "too large"),
        ("2**4097", "too large"),
        ("(2**4000) * (2**4000)", "too large"),
        ("max(7**1500, 1) * 7**1500", "too large"),
        ("1 << 10**9", "only arithmetic"),
        ("'a' * 10**9", "only arithmetic"),
        ("[0] * 10**9", "only arithmetic"),
        ("(-8) ** 0.5", "not a real number"),
        ("1e308 * 10", "not a finite number"),
        ("2.0 ** 10000", "Numerical result out of range"),
        ("2" + "**2" * 40, "too large"),
        ("(" * 201 + "1" + ")" * 201, "cannot parse"),
    ],
)
def test_the_calculator_refuses_huge_work_at_once(expression: str, message: str) -> None:
    error, elapsed = timed(registry()["calculator"], {"expression": expression})
    assert isinstance(error, InputError), error
    assert message in error.message and elapsed < 0.5


def test_the_calculator_still_computes_large_exact_numbers() -> None:
    calc = registry()["calculator"]
    assert calc({"expression": "2**4095 // 2**4094"}) == 2
    assert calc({"expression": "(-1) ** (10**12) + 1 ** (10**12) + 0 ** (10**12)"}) == 2
    assert calc({"expression": "2 ** -2000"}) == 0.0
    assert calc({"expression": "round(123456, -3)"}) == 123000
    assert timed(calc, {"expression": "round(5, -10**9) + round(0.5, 10**9)"})[0] == 0.5


def test_the_calculator_runs_isolated_and_answers_in_the_run() -> None:
    """Through the runner, the calculator runs in a helper process: results and errors travel."""
    calc = registry()["calculator"]
    assert calc.isolated
    assert asyncio.run(call_tool(calc, {"expression": "0.8 * (12500 - 500)"}, ToolContext())) == (
        pytest.approx(9600)
    )
    with pytest.raises(InputError, match="too large"):
        asyncio.run(call_tool(calc, {"expression": "9**9**9**9"}, ToolContext()))


# -- tools that overrun their timeout ---------------------------------------------------------


def test_an_isolated_tool_holding_the_interpreter_is_killed_at_its_timeout() -> None:
    asyncio.run(call_tool(ISOLATED_POWER, {"exponent": 1}, ToolContext()))  # a warm helper
    error, elapsed = timed(
        asyncio.run, call_tool(ISOLATED_POWER, {"exponent": 8}, ToolContext(), timeout_s=1.0)
    )
    assert isinstance(error, ToolTimeoutError), error
    assert "did not answer within 1 s (stopped)" in error.message
    assert 1.0 <= elapsed < 2.0
    # The next call gets a fresh helper and answers.
    assert asyncio.run(call_tool(ISOLATED_POWER, {"exponent": 1}, ToolContext())) == 1


def test_a_heavy_sql_query_is_interrupted_at_its_deadline(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "agents" / "data", tmp_path / "data")
    joined = ", ".join(f"policies p{i}" for i in range(12))
    args = {"database": "policies.db", "query": f"SELECT count(*) FROM {joined}"}
    error, elapsed = timed(
        asyncio.run,
        call_tool(registry()["sql_query"], args, ToolContext(catalog_root=tmp_path), 1.0),
    )
    assert isinstance(error, ToolTimeoutError), error
    assert 1.0 <= elapsed < 2.0
    # The query stopped itself: no thread is left running it.
    deadline = time.monotonic() + 1.0
    while any(t.name.startswith("tool-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.02)


def test_a_huge_sql_string_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "agents" / "data", tmp_path / "data")
    args = {"database": "policies.db", "query": "SELECT length(hex(zeroblob(900000000)))"}
    error, elapsed = timed(registry()["sql_query"], args, ToolContext(catalog_root=tmp_path))
    assert isinstance(error, InputError) and "too big" in error.message, error
    assert elapsed < 1


def run_in_a_child(folder: Path, workflow: str) -> tuple[dict[str, Any], Any, float]:
    """Run a tool workflow in a process of its own; its run, its record, and how long the
    process took to exit."""
    from orchestrator.runs.store import RunStore

    write_tool_catalog(folder)
    url = f"sqlite:///{folder / 'runs.db'}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.hostile.tool_flows", str(folder), url, workflow, "{}"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout.splitlines()[-1])
    return run, RunStore(Database(url)).run(run["id"]), elapsed


def test_a_run_whose_query_overruns_records_the_timeout_moves_on_and_exits(
    tmp_path: Path,
) -> None:
    run, record, elapsed = run_in_a_child(tmp_path, "slow_sql")
    assert run["status"] == "succeeded" and run["state"]["sum"] == 3  # the node after it ran
    assert record.tools["sql_query"]["errors"] == 1
    assert 1.0 <= record.tools["sql_query"]["time_s"] < 2.0  # its timeout, plus under 1 s
    # The process's start-up (imports) takes most of this; before, it never exited.
    assert elapsed < 30, elapsed


def test_a_run_asking_for_a_huge_power_records_the_refusal_and_exits(tmp_path: Path) -> None:
    run, record, elapsed = run_in_a_child(tmp_path, "big_power")
    assert run["status"] == "succeeded" and run["state"]["sum"] == 3
    assert "the result is too large" in run["state"]["tool_error"]["error"]
    calculator = record.tools["calculator"]
    assert (calculator["calls"], calculator["errors"]) == (2, 1)
    assert elapsed < 30, elapsed
