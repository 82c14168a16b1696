"""Built-in tools: read-only SQL, the HTTP allowlist, timeouts, idempotent side effects, and a
tool's failure landing in the run's state."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from orchestrator.errors import InputError, ToolTimeoutError
from orchestrator.tools import ToolContext, registry
from orchestrator.tools.base import Tool
from orchestrator.tools.builtins import outbox
from orchestrator.tools.runner import call_tool
from tests.conftest import ROOT


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "agents" / "data", tmp_path / "data")
    return tmp_path


def sql(catalog_root: Path, query: str, params: list[Any] | None = None) -> Any:
    context = ToolContext(catalog_root=catalog_root)
    args = {"database": "policies.db", "query": query, "params": params or []}
    return registry()["sql_query"](args, context)


def test_sql_query_reads_with_parameters(catalog_root: Path) -> None:
    rows = sql(
        catalog_root, "SELECT holder, status FROM policies WHERE policy_number = ?", ["HP-44120"]
    )
    assert rows == [{"holder": "L. Dubois", "status": "lapsed"}]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM policies",
        "UPDATE policies SET status = 'active'",
        "INSERT INTO policies (policy_number) VALUES ('X')",
        "DROP TABLE policies",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA journal_mode = DELETE",
    ],
)
def test_sql_query_refuses_anything_but_reading(catalog_root: Path, statement: str) -> None:
    with pytest.raises(InputError, match="only reading queries are allowed"):
        sql(catalog_root, statement)
    assert len(sql(catalog_root, "SELECT * FROM policies")) == 7


def test_sql_query_stays_inside_the_data_folder(catalog_root: Path, tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "outside.db").close()
    context = ToolContext(catalog_root=catalog_root)
    with pytest.raises(InputError, match="no database '../outside.db'"):
        registry()["sql_query"]({"database": "../outside.db", "query": "SELECT 1"}, context)
    with pytest.raises(InputError, match="query: String should have at least 1 character"):
        registry()["sql_query"]({"database": "policies.db", "query": ""}, context)


def test_http_get_refuses_hosts_off_the_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADRE_HTTP_ALLOWLIST", "example.internal")
    with pytest.raises(InputError, match="host '127.0.0.1' is not in the allowlist"):
        registry()["http_get"]({"url": "http://127.0.0.1:9/"})
    with pytest.raises(InputError, match="is not an http"):
        registry()["http_get"]({"url": "file:///etc/passwd"})


def test_http_get_fetches_from_an_allowed_host(monkeypatch: pytest.MonkeyPatch) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"rates: EUR 1.00"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CADRE_HTTP_ALLOWLIST", "127.0.0.1")
    try:
        result = registry()["http_get"]({"url": f"http://127.0.0.1:{server.server_address[1]}/r"})
    finally:
        server.shutdown()
    assert result["status"] == 200 and result["text"] == "rates: EUR 1.00"


class NapArgs(BaseModel):
    seconds: float


def test_a_slow_tool_times_out() -> None:
    nap = Tool("nap", "Sleeps.", NapArgs, lambda args, context: time.sleep(args.seconds))
    with pytest.raises(ToolTimeoutError, match="'nap' did not answer within 0.2 s"):
        asyncio.run(call_tool(nap, {"seconds": 2}, ToolContext(), timeout_s=0.2))


def test_a_side_effect_happens_once_per_run_and_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    notify = registry()["notify"]
    args = {"channel": "claims-desk", "message": "Claim HP-1 paid"}
    same = ToolContext(database_url=url, run_id="run-1", node_id="tell")
    first = asyncio.run(call_tool(notify, args, same))
    again = asyncio.run(call_tool(notify, args, same))  # the node re-run after a crash
    assert again == first
    assert len(outbox(url)) == 1
    asyncio.run(
        call_tool(notify, args, ToolContext(database_url=url, run_id="run-2", node_id="tell"))
    )
    assert [m["run_id"] for m in outbox(url)] == ["run-1", "run-2"]


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("{fields.amount} / 0", "'300 / 0': division by zero"),
        # Within the calculator's bounds, but no state holds it: an error, not a crash.
        ("2 ** 64 + {fields.amount}", "its result: is an integer outside 64 bits"),
    ],
)
def test_a_failing_tool_puts_its_error_in_state_and_the_run_goes_on(
    tmp_path: Path, expression: str, why: str
) -> None:
    from orchestrator.runs.runner import Runner
    from orchestrator.specialists.local import LocalAsker
    from orchestrator.workflow.catalog import load_catalog
    from tests.workflow.fixtures import load_flow, scripted_workflow_catalog

    agents = scripted_workflow_catalog(tmp_path, amount=300)
    flow = load_flow("claim")
    flow["name"] = "claim_div"
    flow["nodes"][1]["args"] = {"expression": expression}
    (tmp_path / "graphs" / "claim_div.yaml").write_text(yaml.safe_dump(flow))
    catalog = load_catalog(agents)
    pool = LocalAsker(catalog)

    async def go() -> Any:
        async with Runner(
            catalog, database_url=f"sqlite:///{tmp_path / 'r.db'}", asker=pool
        ) as runner:
            record = await runner.start("claim_div", {"claim": "a dent"})
            state = await runner.graph("claim_div").aget_state(
                {"configurable": {"thread_id": record.id}}
            )
            return record, state.values

    record, state = asyncio.run(go())
    asyncio.run(pool.aclose())
    assert record.status == "succeeded"
    error = state["tool_error"]
    assert (error["node"], error["tool"]) == ("payout", "calculator")
    assert why in error["error"]
    assert state["payout"] is None and record.tools["calculator"]["errors"] == 1
