"""Benchmark: what Cadre costs per workflow node, and what a map's fan-out buys.

1. The same N-node chain on raw LangGraph (plain Python functions, in-memory checkpointer) and on
   Cadre (scripted specialists, durable SQLite checkpoints, run records and leases), Cadre measured
   in fresh processes: with the engine in-process (LocalAsker: Cadre's own cost per node), tracing
   on (spans to the local JSONL file) and off (OTEL_SDK_DISABLED=true), and with the engine behind
   a Ray host as a user's run has it (adds the Ray actor call, see bench_hosting.py): ms per node
   for each, and the ratios against raw LangGraph.
2. A map of 32 calls, each taking a fixed 100 ms in the scripted engine, against one such call
   alone: both wall times and the ratio (32 would be perfectly serial, 1 perfectly parallel).

Run: `make bench` (or `python bench/bench_workflow.py --nodes 20 --runs 5`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

import yaml
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from orchestrator import telemetry
from orchestrator.hosting.pool import HostPool
from orchestrator.hosting.runtime import ensure_ray, shutdown_ray
from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog

SCHEMA = {"type": "object", "properties": {"v": {"type": "string"}}, "required": ["v"]}


def scripted_model(name: str, delay_s: float) -> dict[str, object]:
    """A model on the scripted engine whose every call takes ``delay_s``."""
    return {
        "name": name,
        "engine": "scripted",
        "weights": {"kind": "none"},
        "context_length": 8192,
        "engine_options": {"delay_s": delay_s},
    }


def write_catalog(root: Path, nodes: int, delay_s: float) -> Path:
    for folder in ("agents/models", "agents/specialists", "graphs"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "agents/models/bench.yaml").write_text(yaml.safe_dump(scripted_model("bench", delay_s)))
    spec = {
        "name": "step",
        "description": "one step",
        "model": "bench",
        "instructions": "Go.",
        "output_schema": SCHEMA,
    }
    (root / "agents/specialists/step.yaml").write_text(yaml.safe_dump(spec))
    chain = {
        "name": "chain",
        "description": "N specialist calls in a row",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "state": {f"out{i}": SCHEMA for i in range(nodes)},
        "start": "n0",
        "nodes": [
            {
                "kind": "specialist",
                "id": f"n{i}",
                "specialist": "step",
                "input": "{text}",
                "output": f"out{i}",
                "next": f"n{i + 1}" if i + 1 < nodes else "end",
            }
            for i in range(nodes)
        ],
    }
    fan = {
        "name": "fan",
        "description": "a map over a list",
        "input_schema": {"type": "object", "properties": {"items": {"type": "array"}}},
        "state": {"outs": {"type": "array"}},
        "start": "each",
        "nodes": [
            {
                "kind": "map",
                "id": "each",
                "over": "items",
                "specialist": "step",
                "input": "{item}",
                "output": "outs",
                "join": "end",
            }
        ],
    }
    for flow in (chain, fan):
        (root / "graphs" / f"{flow['name']}.yaml").write_text(yaml.safe_dump(flow))
    return root / "agents"


def raw_langgraph(nodes: int) -> Any:
    class State(TypedDict, total=False):
        text: str
        out: dict[str, Any]

    graph = StateGraph(State)
    for i in range(nodes):
        graph.add_node(f"n{i}", lambda state: {"out": {"v": "x"}})
        graph.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    graph.add_edge(f"n{nodes - 1}", END)
    return graph.compile(checkpointer=InMemorySaver())


async def cadre_chain(nodes: int, runs: int, asker: str) -> float:
    """Median seconds per run of the chain on Cadre, in this process."""
    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    fast = load_catalog(write_catalog(tmp / "fast", nodes, 0.0))
    pool: Any = HostPool(fast) if asker == "ray" else LocalAsker(fast)
    cadre_times = []
    async with Runner(fast, database_url=f"sqlite:///{tmp / 'fast.db'}", asker=pool) as runner:
        for _ in range(runs + 1):
            started = time.perf_counter()
            record = await runner.start("chain", {"text": "go"})
            cadre_times.append(time.perf_counter() - started)
            assert record.status == "succeeded", record.error
    if asker == "ray":
        pool.shutdown()
    return statistics.median(cadre_times[1:])


def cadre_chain_in_child(nodes: int, runs: int, tracing: bool, asker: str) -> float:
    """The chain in a fresh process (tracing is set up once per process)."""
    env = {**os.environ, "CADRE_TRACE_FILE": tempfile.mktemp(suffix=".jsonl")}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if not tracing:
        env["OTEL_SDK_DISABLED"] = "true"
    argv = [sys.executable, __file__, "--child", asker, "--nodes", str(nodes), "--runs", str(runs)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


async def bench(nodes: int, runs: int, fan_items: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    raw = raw_langgraph(nodes)
    raw_times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        await raw.ainvoke({"text": "go"}, {"configurable": {"thread_id": f"raw-{i}"}})
        raw_times.append(time.perf_counter() - started)
    traced = cadre_chain_in_child(nodes, runs, tracing=True, asker="local")
    untraced = cadre_chain_in_child(nodes, runs, tracing=False, asker="local")
    hosted = cadre_chain_in_child(nodes, runs, tracing=True, asker="ray")

    slow = load_catalog(write_catalog(tmp / "slow", nodes, 0.1))
    pool = HostPool(slow)
    async with Runner(slow, database_url=f"sqlite:///{tmp / 'slow.db'}", asker=pool) as runner:
        await runner.start("fan", {"items": ["warm-up"]})
        started = time.perf_counter()
        await runner.start("fan", {"items": ["one"]})
        one = time.perf_counter() - started
        started = time.perf_counter()
        record = await runner.start("fan", {"items": [f"item {i}" for i in range(fan_items)]})
        many = time.perf_counter() - started
        assert record.status == "succeeded" and len(record.output["outs"]) == fan_items
    pool.shutdown()

    raw_ms = statistics.median(raw_times[1:]) / nodes * 1000
    cadre_ms = traced / nodes * 1000
    plain_ms = untraced / nodes * 1000
    hosted_ms = hosted / nodes * 1000
    print(f"{nodes}-node chain, median of {runs} runs")
    print(f"  raw LangGraph (functions, in-memory):                   {raw_ms:8.3f} ms/node")
    print(f"  Cadre, tracing off (engine in-process, SQLite, runs):   {plain_ms:8.3f} ms/node")
    print(f"  Cadre, tracing on (spans to the JSONL file):            {cadre_ms:8.3f} ms/node")
    print(f"  Cadre, tracing on, engine in a Ray host:                {hosted_ms:8.3f} ms/node")
    print(f"  ratio Cadre/raw: x{cadre_ms / raw_ms:.1f} (+{cadre_ms - raw_ms:.2f} ms per node)")
    print(f"  tracing on/off: x{cadre_ms / plain_ms:.2f} (+{cadre_ms - plain_ms:.3f} ms per node)")
    print(f"  Ray host/in-process: x{hosted_ms / cadre_ms:.2f} (+{hosted_ms - cadre_ms:.2f} ms)")
    print(f"map of {fan_items} calls at 100 ms each vs one call")
    print(f"  one call: {one * 1000:8.1f} ms   {fan_items} calls: {many * 1000:8.1f} ms")
    print(f"  ratio: x{many / one:.2f} (x{fan_items} would be serial)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fan", type=int, default=32)
    parser.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child != "local":  # the in-process engine needs no Ray
        ensure_ray()
    try:
        if args.child:
            print(asyncio.run(cadre_chain(args.nodes, args.runs, args.child)))
        else:
            asyncio.run(bench(args.nodes, args.runs, args.fan))
    finally:
        telemetry.shutdown()
        shutdown_ray()
