"""ModelHost actors and the pool, on a real local Ray instance."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import ray

from orchestrator.errors import ContextLengthError, HostUnavailableError
from orchestrator.hosting.host import MAX_RESTARTS
from orchestrator.hosting.pool import HostPool
from orchestrator.workflow.catalog import Catalog, load_catalog
from tests.catalogs import scripted_model, specialist, unique, write_catalog
from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def scripted_catalog(tmp_path: Path, **options: object) -> tuple[Catalog, str]:
    model = unique("echo")
    asks = specialist("sentiment", model, generation={"max_tokens": 16})
    write_catalog(tmp_path, [scripted_model(model, **options)], [asks])
    return load_catalog(tmp_path), model


async def wait_until_busy(pool: HostPool, model: str) -> None:
    for _ in range(200):
        stats = await asyncio.gather(*(r.handle.stats.remote() for r in pool.replicas(model)))
        if any(s["inflight"] for s in stats):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the call never reached a host")


def test_hosts_start_on_demand_and_answer(tmp_path: Path) -> None:
    catalog, model = scripted_catalog(tmp_path)
    pool = HostPool(catalog)
    assert pool._replicas == {}
    answer = asyncio.run(pool.ask("sentiment", "the parcel arrived broken"))
    assert answer.output == {"sentiment": "positive"}  # the schema's first enum value
    assert answer.host == f"{model}-0"
    assert answer.input_tokens > 0 and answer.output_tokens == 2 and answer.attempts == 1
    pool.shutdown()


def test_replicas_share_concurrent_calls_least_busy_first(tmp_path: Path) -> None:
    catalog, model = scripted_catalog(tmp_path, replicas=2, delay_s=0.5)
    pool = HostPool(catalog)

    async def scenario() -> list[str]:
        await pool.warm(model)
        answers = await asyncio.gather(*(pool.ask("sentiment", f"msg {i}") for i in range(6)))
        return [a.host for a in answers]

    hosts = asyncio.run(scenario())
    assert sorted(hosts) == sorted([f"{model}-0"] * 3 + [f"{model}-1"] * 3)
    served = [ray.get(r.handle.stats.remote())["served"] for r in pool.replicas(model)]
    assert served == [3, 3]
    pool.shutdown()


def test_a_host_killed_mid_call_is_restarted_and_the_call_retried(tmp_path: Path) -> None:
    catalog, model = scripted_catalog(tmp_path, delay_s=1.0)
    pool = HostPool(catalog, retry_delay_s=0.2)

    async def scenario() -> tuple[object, int, int]:
        await pool.warm(model)
        (replica,) = pool.replicas(model)
        before = (await replica.handle.stats.remote())["pid"]
        call = asyncio.ensure_future(pool.ask("sentiment", "will the host survive?"))
        await wait_until_busy(pool, model)
        ray.kill(replica.handle, no_restart=False)
        answer = await call
        after = (await replica.handle.stats.remote())["pid"]
        return answer, before, after

    answer, before, after = asyncio.run(scenario())
    assert answer.output == {"sentiment": "positive"}
    assert answer.attempts == 2
    assert before != after, "Ray should have started a new host process"
    pool.shutdown()


def test_a_host_that_keeps_crashing_fails_the_call_boundedly_then_recovers(tmp_path: Path) -> None:
    catalog, model = scripted_catalog(tmp_path, exit_process_on="CRASH")
    pool = HostPool(catalog, max_retries=MAX_RESTARTS, retry_delay_s=0.1)
    with pytest.raises(HostUnavailableError, match=f"died {MAX_RESTARTS + 1} times"):
        asyncio.run(pool.ask("sentiment", "CRASH the engine"))
    # Ray has given up on that actor; the pool replaces it and serves the next call.
    answer = asyncio.run(pool.ask("sentiment", "a normal message"))
    assert answer.output == {"sentiment": "positive"}
    assert answer.attempts == 2
    pool.shutdown()


def test_a_host_no_node_can_place_is_refused_with_what_it_asks_for(tmp_path: Path) -> None:
    model = scripted_model(unique("gpu-only"))
    model["hosting"] = {"num_gpus": 0.5, "resources": {"cadre_model_host": 1}}
    write_catalog(tmp_path, [model], [specialist("sentiment", model["name"])])
    pool = HostPool(load_catalog(tmp_path))
    with pytest.raises(HostUnavailableError) as info:
        asyncio.run(pool.ask("sentiment", "anyone there?"))
    message = str(info.value)
    assert "GPU 0.5, cadre_model_host 1" in message and "CPU 2" in message
    assert "ray start --resources" in message
    assert pool._replicas == {}


def test_engine_errors_come_back_typed_and_are_not_retried(tmp_path: Path) -> None:
    catalog, model = scripted_catalog(tmp_path, context_length=50)
    pool = HostPool(catalog)
    with pytest.raises(
        ContextLengthError, match="specialist 'sentiment'.*Shorten the input"
    ) as info:
        asyncio.run(pool.ask("sentiment", "word " * 100))
    assert info.value.context_length == 50
    (replica,) = pool.replicas(model)
    assert ray.get(replica.handle.stats.remote())["served"] == 0
    pool.shutdown()


@pytest.mark.model
def test_real_model_host_serves_concurrent_specialists(tmp_path: Path) -> None:
    """Two specialists on SmolLM2 through one llama.cpp host, called at once: answers fit their
    schemas and equal the answers each gets when asked alone (no corruption across calls)."""
    catalog = load_catalog(ROOT / "agents")
    pool = HostPool(catalog)
    questions = [
        ("sentiment", "The new update is fantastic, thank you so much!"),
        ("ticket-triage", "I was billed twice this month, please refund the extra charge."),
        ("sentiment", "My order is late again and nobody answers my emails."),
    ]

    async def alone() -> list[dict]:
        return [(await pool.ask(name, text)).output for name, text in questions]

    async def together() -> list[dict]:
        answers = await asyncio.gather(*(pool.ask(name, text) for name, text in questions))
        return [a.output for a in answers]

    sequential = asyncio.run(alone())
    assert asyncio.run(together()) == sequential
    assert sequential[0]["sentiment"] in {"positive", "negative", "neutral"}
    assert sequential[1]["team"] in {"billing", "technical", "account", "shipping"}
    pool.shutdown()


def test_a_streamed_answer_comes_through_the_host_piece_by_piece(tmp_path: Path) -> None:
    """Through a real actor (a Ray streaming generator): the pieces arrive in order, make up
    the answer's text, and the answer is the one a plain call gives."""
    catalog, model = scripted_catalog(tmp_path)
    pool = HostPool(catalog)
    spec = catalog.specialist("sentiment")
    pieces: list[str] = []
    streamed = asyncio.run(pool.ask_spec(spec, "the parcel arrived broken", on_text=pieces.append))
    plain = asyncio.run(pool.ask_spec(spec, "the parcel arrived broken"))
    assert len(pieces) == 2 and "".join(pieces) == streamed.text == plain.text
    assert streamed.output == plain.output and streamed.host == f"{model}-0"
    assert (streamed.input_tokens, streamed.output_tokens) == (
        plain.input_tokens,
        plain.output_tokens,
    )
    (replica,) = pool.replicas(model)
    assert ray.get(replica.handle.stats.remote())["served"] == 2
    pool.shutdown()


def test_a_streamed_call_whose_host_keeps_dying_fails_boundedly_with_nothing_sent(
    tmp_path: Path,
) -> None:
    """The host dies before its first piece each time: retried as a plain call is, then a
    clear error; nothing was streamed, and the pool serves the next streamed call."""
    catalog, model = scripted_catalog(tmp_path, exit_process_on="CRASH")
    pool = HostPool(catalog, max_retries=1, retry_delay_s=0.1)
    spec = catalog.specialist("sentiment")
    pieces: list[str] = []
    with pytest.raises(HostUnavailableError, match="died 2 times"):
        asyncio.run(pool.ask_spec(spec, "CRASH the engine", on_text=pieces.append))
    assert pieces == []
    answer = asyncio.run(pool.ask_spec(spec, "a normal message", on_text=pieces.append))
    assert answer.output == {"sentiment": "positive"} and "".join(pieces) == answer.text
    pool.shutdown()
