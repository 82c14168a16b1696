"""Load: 500 runs of a small workflow submitted over the REST API, 50 at a time, on 127.0.0.1.

The API is served by uvicorn in this process; runs go to Ray run workers; the workflow is a
3-node chain of scripted specialists (so the figures are Cadre's own cost, not a model's). Each
client submits with its own Idempotency-Key, retries every 10th submission with the same key (a
client that lost the response), then polls the run until it finishes. Printed: throughput,
latency from submission to completion (p50/p95/p99), and the proof that none was lost or
duplicated (the database holds exactly one succeeded run per key). Baseline, in the same run: the
same workflow driven directly by a Runner in this process, one run after another.

Run: `make bench` (or `python bench/bench_api.py --runs 500 --concurrency 50 --workers 2`).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_workflow import write_catalog  # noqa: E402

from orchestrator.api.app import Settings, create_app  # noqa: E402
from orchestrator.api.keys import KeyStore  # noqa: E402
from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.hosting.runtime import ensure_ray  # noqa: E402
from orchestrator.hosting.workers import RunWorkers  # noqa: E402
from orchestrator.storage.database import Database  # noqa: E402
from orchestrator.runs.runner import Runner  # noqa: E402
from orchestrator.runs.store import RunStore  # noqa: E402

NODES = 3


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RESENT: list[int] = []
"""Requests sent again after a dropped connection (safe: the key makes a submission idempotent)."""


async def send(http: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> httpx.Response:
    for attempt in range(5):
        try:
            return await http.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            RESENT.append(1)
            await asyncio.sleep(0.1 * (attempt + 1))
    return await http.request(method, url, **kwargs)  # type: ignore[arg-type]


async def client(
    http: httpx.AsyncClient, n: int, latencies: list[float], replays: list[bool]
) -> str:
    key = f"bench-{n}-{uuid.uuid4().hex[:6]}"
    body = {"workflow": "chain", "input": {"text": f"ticket {n}"}}
    started = time.perf_counter()
    headers = {"Idempotency-Key": key}
    first = (await send(http, "POST", "/v1/runs", json=body, headers=headers)).json()
    if n % 10 == 0:  # the client lost the response and retries: it must get the same run
        again = await send(http, "POST", "/v1/runs", json=body, headers=headers)
        replays.append(again.json()["id"] == first["id"] and again.status_code == 200)
    while True:
        run = (await send(http, "GET", f"/v1/runs/{first['id']}")).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.05)
    latencies.append(time.perf_counter() - started)
    return str(run["status"])


async def load(
    base: str, token: str, runs: int, concurrency: int
) -> tuple[float, list[float], list[str], list[bool]]:
    latencies: list[float] = []
    replays: list[bool] = []
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
    ) as http:

        async def one(n: int) -> str:
            async with gate:
                return await client(http, n, latencies, replays)

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(n) for n in range(runs)))
        return time.perf_counter() - started, latencies, list(statuses), replays


async def baseline(root: Path, db_url: str, runs: int) -> float:
    """Seconds per run, driving the workflow directly in this process (no API, no workers)."""
    async with Runner(
        load_catalog(root / "agents", root / "graphs"), database_url=db_url
    ) as runner:
        await runner.start("chain", {"text": "warm-up"})
        started = time.perf_counter()
        for n in range(runs):
            await runner.start("chain", {"text": f"ticket {n}"})
        return (time.perf_counter() - started) / runs


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cadre-bench-api-"))
    write_catalog(root, NODES, 0.0)
    db_url = f"sqlite:///{root / 'cadre.db'}"
    ensure_ray()
    workers = RunWorkers(
        root / "agents",
        root / "graphs",
        db_url,
        args.workers,
        prefix=f"bench-{uuid.uuid4().hex[:6]}",
    )
    token = KeyStore(Database(db_url)).create("bench", "submitter")[1]
    settings = Settings(
        catalog=load_catalog(root / "agents", root / "graphs"),
        database_url=db_url,
        hand=workers.hand,
        rate_per_s=1e6,
        burst=1_000_000,
    )
    port = _port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="error",
            timeout_keep_alive=60,
            backlog=4096,
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    base = f"http://127.0.0.1:{port}"
    asyncio.run(load(base, token, 20, 10))  # warm-up: workers load the catalog, hosts start
    wall, latencies, statuses, replays = asyncio.run(load(base, token, args.runs, args.concurrency))
    server.should_exit = True
    workers.shutdown()

    store = RunStore(Database(db_url))
    rows = store.db.query(
        "SELECT idempotency_key, COUNT(*) AS n, MIN(status) AS status FROM cadre_runs "
        "WHERE idempotency_key LIKE 'bench-%' GROUP BY idempotency_key"
    )
    measured = [r for r in rows]
    per_key_once = all(r["n"] == 1 for r in measured)
    succeeded = sum(1 for r in measured if r["status"] == "succeeded")
    direct = asyncio.run(baseline(root, f"sqlite:///{root / 'baseline.db'}", 50))

    print(
        f"{args.runs} runs of a {NODES}-node scripted chain over the API on 127.0.0.1, "
        f"{args.concurrency} clients at once, {args.workers} Ray run workers"
    )
    print(f"  throughput:  {args.runs / wall:.1f} runs/s ({wall:.1f} s)")
    print(
        f"  submit -> succeeded:  p50 {pct(latencies, 50) * 1000:.0f} ms   "
        f"p95 {pct(latencies, 95) * 1000:.0f} ms   p99 {pct(latencies, 99) * 1000:.0f} ms"
    )
    print(
        f"  accounted for: {len(measured) - 20} keys in the database for {args.runs} submitted "
        f"(+20 warm-up), one run per key: {per_key_once}; succeeded: {succeeded - 20}/{args.runs}; "
        f"client statuses succeeded: {statuses.count('succeeded')}/{args.runs}"
    )
    print(
        f"  retried submissions answered with the first run: {sum(replays)}/{len(replays)}; "
        f"requests re-sent after a dropped connection: {len(RESENT)}"
    )
    print(
        f"baseline, the same workflow driven directly in-process, one at a time: "
        f"{direct * 1000:.1f} ms per run ({1 / direct:.1f} runs/s)"
    )
    print(
        f"  ratio API throughput/direct: x{(args.runs / wall) * direct:.2f}; "
        f"p50 latency/direct: x{pct(latencies, 50) / direct:.1f}"
    )
    ok = (
        per_key_once
        and succeeded - 20 == args.runs
        and len(measured) - 20 == args.runs
        and all(replays)
    )
    if not ok:
        raise SystemExit("runs were lost or duplicated")


if __name__ == "__main__":
    main()
