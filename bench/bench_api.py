"""The REST API under load, on 127.0.0.1: what the run queue and its workers deliver.

The API is served by uvicorn in this process; runs are recorded in the run database and claimed
by Ray run workers, each driving many runs at once.

1. Concurrency: 64 runs of a one-node workflow whose scripted model call takes 0.5 s, submitted at
   once. Printed: the wall time until all succeeded, and the most calls the engine answered at
   the same time (an engine that batches, as vLLM does, answers them together). Baseline: one
   such call alone.
2. Load: 500 runs of a 3-node scripted chain (so the figures are Cadre's own cost, not a model's),
   from 50 clients, each with its own connection, in a process of their own (as clients are: their
   HTTP work does not share the API server's interpreter). Each client submits with its own
   Idempotency-Key, retries every 10th submission with the same key (a client that lost the
   response), then follows the run with a long poll (``GET /v1/runs/{id}?wait_s=30``) until it
   finishes. Printed: throughput, latency from submission to completion (p50/p95/p99), and the
   proof that none was lost or duplicated (the database holds exactly one succeeded run per key).
   Baseline, in the same run: the same runs driven by one Runner in this process, 50 at a time.

Run: `make bench` (or `python bench/bench_api.py --runs 500 --concurrency 50 --workers 2`).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_workflow import scripted_model, write_catalog

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.cli.serve import run_driver
from orchestrator.hosting.runtime import NAMESPACE, ensure_ray
from orchestrator.hosting.workers import RunWorkers
from orchestrator.runs.runner import Runner
from orchestrator.runs.store import RunStore
from orchestrator.runs.worker import serve_in_thread
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog

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
    while True:  # a long poll: the API answers when the run ends (or after 30 s)
        run = (await send(http, "GET", f"/v1/runs/{first['id']}?wait_s=30")).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            break
    latencies.append(time.perf_counter() - started)
    return str(run["status"])


async def load(
    base: str, token: str, runs: int, concurrency: int
) -> tuple[float, list[float], list[str], list[bool], int]:
    """``concurrency`` clients, each with its own connection, share ``runs`` submissions."""
    latencies: list[float] = []
    replays: list[bool] = []
    statuses: list[str] = []
    todo = iter(range(runs))

    async def one_client() -> None:
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=1),
            timeout=60,
        ) as http:
            for n in todo:
                statuses.append(await client(http, n, latencies, replays))

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses, replays, len(RESENT)


def load_elsewhere(
    base: str, token: str, runs: int, concurrency: int
) -> tuple[float, list[float], list[str], list[bool], int]:
    """:func:`load` in a process of its own, as clients are: the clients' HTTP work does not
    share the API server's interpreter."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_load_sync, base, token, runs, concurrency).result()


def _load_sync(
    base: str, token: str, runs: int, concurrency: int
) -> tuple[float, list[float], list[str], list[bool], int]:
    return asyncio.run(load(base, token, runs, concurrency))


async def baseline(root: Path, db_url: str, runs: int, concurrency: int) -> float:
    """Seconds the same runs take driven by one Runner in this process (no API, no workers),
    ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    async with Runner(
        load_catalog(root / "agents", root / "graphs"), database_url=db_url
    ) as runner:
        await runner.start("chain", {"text": "warm-up"})

        async def one(n: int) -> None:
            async with gate:
                record = await runner.start("chain", {"text": f"ticket {n}"})
                assert record.status == "succeeded", record.error

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(runs)))
        return time.perf_counter() - started


async def burst(base: str, token: str, runs: int) -> float:
    """Submit ``runs`` runs of the one-node slow workflow at once; seconds until all ended."""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        started = time.perf_counter()
        body = {"workflow": "one", "input": {"text": "go"}}
        sent = await asyncio.gather(
            *(send(http, "POST", "/v1/runs", json=body) for _ in range(runs))
        )

        async def ended(run_id: str) -> None:
            run = (await send(http, "GET", f"/v1/runs/{run_id}?wait_s=30")).json()
            assert run["status"] == "succeeded", run

        await asyncio.gather(*(ended(r.json()["id"]) for r in sent))
        return time.perf_counter() - started


def add_slow_workflow(root: Path, delay_s: float) -> None:
    """A second model whose every call takes ``delay_s``, and a one-node workflow on it."""
    import yaml

    (root / "agents/models/slow.yaml").write_text(yaml.safe_dump(scripted_model("slow", delay_s)))
    step = yaml.safe_load((root / "agents/specialists/step.yaml").read_text())
    (root / "agents/specialists/slowstep.yaml").write_text(
        yaml.safe_dump({**step, "name": "slowstep", "model": "slow"})
    )
    chain = yaml.safe_load((root / "graphs/chain.yaml").read_text())
    node = {**chain["nodes"][0], "specialist": "slowstep", "next": "end"}
    one = {
        **chain,
        "name": "one",
        "nodes": [node],
        "state": {node["output"]: chain["state"][node["output"]]},
    }
    (root / "graphs/one.yaml").write_text(yaml.safe_dump(one))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    import ray

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--burst-delay", type=float, default=0.5)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cadre-bench-api-"))
    write_catalog(root, NODES, 0.0)
    add_slow_workflow(root, args.burst_delay)
    db_url = f"sqlite:///{root / 'cadre.db'}"
    ensure_ray()
    workers = RunWorkers(
        run_driver(root / "agents", root / "graphs", db_url),
        serve_in_thread,
        args.workers,
        prefix=f"bench-{uuid.uuid4().hex[:6]}",
    )
    token = KeyStore(Database(db_url)).create("bench", "submitter")[1]
    settings = Settings(
        catalog=load_catalog(root / "agents", root / "graphs"),
        database_url=db_url,
        wake=workers.wake,
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
    asyncio.run(burst(base, token, 1))  # starts the slow model's host
    alone = asyncio.run(burst(base, token, 1))
    burst_wall = asyncio.run(burst(base, token, args.burst))
    host = ray.get_actor("slow-0", namespace=NAMESPACE)
    at_once = ray.get(host.stats.remote())["most_at_once"]
    most_runs = max(s["most_at_once"] for s in workers.stats())
    print(
        f"{args.burst} runs of a one-node workflow (one {args.burst_delay} s scripted call) "
        f"submitted at once over the API, {args.workers} run workers"
    )
    print(
        f"  wall: {burst_wall:.2f} s; the engine answered up to {at_once} calls at once; "
        f"one worker drove up to {most_runs} runs at once"
    )
    print(
        f"baseline, one such run alone: {alone:.2f} s   ratio wall/alone: x{burst_wall / alone:.2f}"
    )

    wall, latencies, statuses, replays, resent = load_elsewhere(
        base, token, args.runs, args.concurrency
    )
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
    direct = asyncio.run(
        baseline(root, f"sqlite:///{root / 'baseline.db'}", args.runs, args.concurrency)
    )

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
        f"requests re-sent after a dropped connection: {resent}"
    )
    print(
        f"baseline, the same {args.runs} runs driven by one Runner in this process, "
        f"{args.concurrency} at a time: {args.runs / direct:.1f} runs/s ({direct:.1f} s)"
    )
    print(f"  ratio API throughput/in-process: x{direct / wall:.2f}")
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
