"""The vLLM engine on SmolLM2: what batching and multi-LoRA buy.

Aggregate output tokens per second for
  1. 8 calls one after another, then the same 8 calls at once (continuous batching);
  2. 8 calls at once on the bare base, on one LoRA adapter, and spread over 3 LoRA adapters;
  3. 16 runs of a one-node workflow submitted at once over the REST API (run workers drive them
     concurrently, so the engine batches them), against 16 concurrent calls of the same
     specialist straight to the same engine's Ray host.
Each figure of 1 and 2 is the median of 3 rounds after a warm-up; the ratios are against the
baseline measured in the same run. Run it in .venv-vllm (`make bench-vllm`); it prepares SmolLM2
and trains three tiny adapters (a few PEFT steps, cached under .cadre/bench/) the first time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog.weights import prepare_hf  # noqa: E402
from orchestrator.engines.base import GenerationRequest, Message  # noqa: E402
from orchestrator.specialize.training import Example, LoraSettings, train_lora  # noqa: E402
from orchestrator.workflow.catalog import load_catalog  # noqa: E402

ROUNDS = 3
TICKETS = [
    "I was charged twice for my subscription this month.",
    "The app crashes every time I open the settings page.",
    "My parcel has not arrived after two weeks.",
    "Please refund the order I cancelled last week.",
    "I cannot log in, it says my password is invalid.",
    "The delivery went to my old address.",
    "My invoice shows the wrong amount.",
    "Sync stopped working after the latest update.",
]


def request(text: str, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(
        messages=(
            Message("system", "Explain to the customer what will happen next."),
            Message("user", text),
        ),
        max_tokens=64,
        adapter=adapter,
    )


def adapters(base: Path) -> list[str]:
    """Three small real adapters, each nudged towards a different sign-off."""
    made = []
    for i, closing in enumerate(("Kind regards.", "Best wishes.", "Thank you!"), start=1):
        out = ROOT / ".cadre" / "bench" / "adapters" / f"a{i}"
        if not (out / "adapter_config.json").is_file():
            examples = [
                Example(request(t).messages, f"We will look into it. {closing}") for t in TICKETS
            ]
            train_lora(base, examples, out, LoraSettings(steps=5, seed=i))
        made.append(str(out))
    return made


async def tokens_per_s(
    engine: object, requests: Sequence[GenerationRequest], together: bool
) -> float:
    started = time.perf_counter()
    if together:
        results = await engine.generate(list(requests))  # type: ignore[attr-defined]
    else:
        results = [(await engine.generate([r]))[0] for r in requests]  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    return sum(r.output_tokens for r in results) / elapsed


async def median(engine: object, requests: Sequence[GenerationRequest], together: bool) -> float:
    return statistics.median(
        [await tokens_per_s(engine, requests, together) for _ in range(ROUNDS)]
    )


async def main() -> None:
    from orchestrator.catalog.engine_options import VllmOptions
    from orchestrator.engines.vllm import VllmEngine, cpu_dtype

    catalog = load_catalog(ROOT / "agents")
    model = catalog.model("smollm2-135m")
    base = prepare_hf(
        model, catalog.weights_path(model), ROOT / ".cadre" / "models" / model.name
    ).path
    loras = adapters(base)
    options = VllmOptions(dtype=cpu_dtype(), enforce_eager=True, cpu_kvcache_gb=1, max_adapters=4)
    started = time.perf_counter()
    engine = VllmEngine(base, 2048, options)
    load_s = time.perf_counter() - started
    plain = [request(t) for t in TICKETS]
    mixed = [request(t, loras[i % 3]) for i, t in enumerate(TICKETS)]
    await engine.generate(plain + mixed)  # warm-up: first decode, adapters loaded

    sequential = await median(engine, plain, together=False)
    concurrent = await median(engine, plain, together=True)
    one_adapter = await median(engine, [request(t, loras[0]) for t in TICKETS], together=True)
    mixed_rate = await median(engine, mixed, together=True)
    await engine.close()

    cpus = os.cpu_count()
    print(
        f"vLLM {_version()} on CPU ({cpus} cores), SmolLM2-135M {options.dtype}, "
        "64 tokens max per call"
    )
    print(f"engine start-up: {load_s:.1f} s; median of {ROUNDS} rounds after a warm-up")
    print(f"{'calls':<42}{'tokens/s':>10}")
    print(f"{'8 calls one after another (base)':<42}{sequential:>10.1f}")
    print(f"{'8 calls at once (base)':<42}{concurrent:>10.1f}")
    print(f"{'8 calls at once on 1 LoRA adapter':<42}{one_adapter:>10.1f}")
    print(f"{'8 calls at once over 3 LoRA adapters':<42}{mixed_rate:>10.1f}")
    print(f"ratio concurrent/sequential: x{concurrent / sequential:.2f}")
    print(f"ratio 3 adapters mixed/base only: x{mixed_rate / concurrent:.2f}")
    print(f"ratio 3 adapters mixed/1 adapter: x{mixed_rate / one_adapter:.2f}")


ONE_NODE = {
    "name": "restate",
    "description": "One specialist call.",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
    "state": {"line": {"type": "object"}},
    "start": "say",
    "nodes": [
        {
            "kind": "specialist",
            "id": "say",
            "specialist": "one-liner",
            "input": "{text}",
            "output": "line",
            "next": "end",
        }
    ],
}


def print_api_against_direct(runs: int) -> None:
    direct, over_api, at_once = api_against_direct(runs)
    print(f"{f'{runs} calls at once to the Ray host':<42}{direct:>10.1f}")
    print(f"{f'{runs} runs at once over the API':<42}{over_api:>10.1f}")
    print(f"  the engine decoded up to {at_once} calls together")
    print(f"ratio API/direct: x{over_api / direct:.2f}")


def api_against_direct(runs: int) -> tuple[float, float, int]:
    """Output tokens/s of ``runs`` concurrent calls straight to the host, then of ``runs`` runs
    submitted at once over the API; and the most calls the engine decoded together."""
    import shutil
    import tempfile
    import threading
    import uuid

    import httpx
    import ray
    import uvicorn
    import yaml

    from orchestrator.api.app import Settings, create_app
    from orchestrator.api.keys import KeyStore
    from orchestrator.cli.serve import run_driver
    from orchestrator.hosting.pool import HostPool
    from orchestrator.hosting.runtime import NAMESPACE, ensure_ray
    from orchestrator.hosting.workers import RunWorkers
    from orchestrator.runs.worker import serve_in_thread
    from orchestrator.storage.database import Database

    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-vllm-api-"))
    (tmp / "graphs").mkdir()
    (tmp / "graphs" / "restate.yaml").write_text(yaml.safe_dump(ONE_NODE, sort_keys=False))
    agents = tmp / "agents"  # the example's model and its one specialist without an adapter
    example = ROOT / "examples" / "vllm" / "agents"
    for folder, pattern in (("models", "*.yaml"), ("specialists", "one-liner.yaml")):
        (agents / folder).mkdir(parents=True)
        for path in (example / folder).glob(pattern):
            shutil.copy(path, agents / folder)
    catalog = load_catalog(agents, tmp / "graphs")
    texts = [TICKETS[i % len(TICKETS)] + f" (case {i})" for i in range(runs)]
    ensure_ray()
    pool = HostPool(catalog)
    spec = catalog.specialist("one-liner")

    async def direct() -> float:
        await pool.ask_spec(spec, "warm-up")
        started = time.perf_counter()
        answers = await asyncio.gather(*(pool.ask_spec(spec, t) for t in texts))
        return sum(a.output_tokens for a in answers) / (time.perf_counter() - started)

    direct_rate = asyncio.run(direct())
    url = f"sqlite:///{tmp / 'cadre.db'}"
    workers = RunWorkers(
        run_driver(agents, tmp / "graphs", url),
        serve_in_thread,
        2,
        prefix=f"vb-{uuid.uuid4().hex[:6]}",
    )
    token = KeyStore(Database(url)).create("bench", "submitter")[1]
    app = create_app(Settings(catalog=catalog, database_url=url, wake=workers.wake))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    async def submit_all(batch: list[str]) -> float:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        ) as http:
            started = time.perf_counter()
            sent = await asyncio.gather(
                *(
                    http.post("/v1/runs", json={"workflow": "restate", "input": {"text": t}})
                    for t in batch
                )
            )
            done = await asyncio.gather(
                *(http.get(f"/v1/runs/{r.json()['id']}", params={"wait_s": 60}) for r in sent)
            )
            elapsed = time.perf_counter() - started
            assert all(d.json()["status"] == "succeeded" for d in done), [d.json() for d in done]
            return sum(d.json()["output_tokens"] for d in done) / elapsed

    asyncio.run(submit_all(["warm-up"]))  # the workers load the catalog and find the host
    api_rate = asyncio.run(submit_all(texts))
    host = ray.get_actor("smollm2-135m-vllm-0", namespace=NAMESPACE)
    at_once = int(ray.get(host.stats.remote()).get("peak_running", 0))
    server.should_exit = True
    workers.shutdown()
    pool.shutdown()
    return direct_rate, api_rate, at_once


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _version() -> str:
    import vllm

    return str(vllm.__version__)


if __name__ == "__main__":
    asyncio.run(main())
    print_api_against_direct(16)
