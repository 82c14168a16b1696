"""The runner drives runs end to end on both databases: scripted specialists answered in this
process (LocalAsker, no Ray; `tests/workflow/test_examples.py` runs workflows through real Ray
hosts), real LangGraph with a durable checkpointer, reviews decided and resumed. A bug in a node
(an exception that is not one of Cadre's errors) stays a bug: the run is recorded as failed and
the exception goes up with its own type; Cadre's own errors name the node and keep their type."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import InputError, NotFoundError, OutputSchemaError, RunError
from orchestrator.runs import runner as runner_module
from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import Catalog, load_catalog
from orchestrator.workflow.nodes import specialist
from tests.workflow.fixtures import load_flow, scripted_workflow_catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return load_catalog(scripted_workflow_catalog(tmp_path, call_log=tmp_path / "calls.log"))


@pytest.fixture
def pool(catalog: Catalog) -> Iterator[LocalAsker]:
    pool = LocalAsker(catalog)
    yield pool
    asyncio.run(pool.aclose())


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().split() if log.exists() else []


def with_runner(catalog: Catalog, pool: LocalAsker, url: str, body: Any) -> Any:
    async def go() -> Any:
        async with Runner(catalog, database_url=url, asker=pool) as runner:
            return await body(runner)

    return asyncio.run(go())


def test_small_claim_runs_straight_through(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    small = load_catalog(scripted_workflow_catalog(Path(catalog.root).parent, amount=300))

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a dent"})
        return record, runner.store.events(record.id), runner.store.reviews(None, record.id)

    record, events, reviews = with_runner(small, LocalAsker(small), database_url, body)
    assert record.status == "succeeded"
    assert record.output == {
        "fields": {"policy_number": "P-1", "amount": 300},
        "payout": 200,
        "decision": {"decision": "pay"},
    }
    assert [e["node"] for e in events] == ["extract", "payout", "size", "decide"]
    assert set(record.usage) == {"extractor", "decider"}
    assert record.input_tokens > 0 and record.output_tokens == 4 + 2
    assert reviews == []


def test_large_claim_waits_for_review_then_approval_finishes_it(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        assert record.status == "awaiting_review"
        (review,) = runner.store.reviews("pending", record.id)
        assert review.node == "adjuster"
        assert review.payload["show"] == {
            "fields": {"policy_number": "P-1", "amount": 2500},
            "payout": 2400,
        }
        decided, record = await runner.decide(review.id, "approve", "alice")
        return decided, record

    decided, record = with_runner(catalog, pool, database_url, body)
    assert record.status == "succeeded"
    assert record.output["decision"] == {"decision": "pay"}
    assert (decided.status, decided.decision, decided.decided_by) == ("applied", "approve", "alice")
    assert decided.decided_at is not None


def test_reject_routes_back_for_rework_with_the_reason(
    catalog: Catalog, pool: LocalAsker, database_url: str, tmp_path: Path
) -> None:
    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        _, record = await runner.decide(
            review.id, "reject", "bob", reason="rework: the amount is wrong"
        )
        return record, runner.store.events(record.id)

    record, events = with_runner(catalog, pool, database_url, body)
    assert record.status == "succeeded"
    # The scripted extractor answers differently when the reviewer's reason reaches its prompt.
    assert record.output["fields"] == {"policy_number": "P-2", "amount": 500}
    assert record.output["payout"] == 400
    assert [e["node"] for e in events].count("extract") == 2
    assert calls(tmp_path).count("extractor") == 2


def test_edit_is_checked_against_the_state_schema_then_approves(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        with pytest.raises(InputError, match="fields/amount: 'lots' is not of type 'number'"):
            await runner.decide(review.id, "edit", "carol", changes={"fields.amount": "lots"})
        with pytest.raises(InputError, match="'payout' may not be edited here"):
            await runner.decide(review.id, "edit", "carol", changes={"payout": 1})
        assert runner.store.review(review.id).status == "pending"
        decided, record = await runner.decide(
            review.id, "edit", "carol", changes={"fields.amount": 1800}
        )
        return decided, record

    decided, record = with_runner(catalog, pool, database_url, body)
    assert record.status == "succeeded"
    assert record.output["fields"] == {"policy_number": "P-1", "amount": 1800}
    assert decided.changes["set"] == {"fields.amount": 1800}
    assert decided.decided_by == "carol"


def test_two_decisions_on_one_review_exactly_one_wins(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)

        async def decide(who: str, decision: str) -> str:
            async with Runner(catalog, database_url=database_url, asker=pool) as other:
                try:
                    await other.decide(review.id, decision, who, reason="no")
                    return "won"
                except InputError as err:
                    return str(err)

        results = await asyncio.gather(decide("dan", "approve"), decide("eve", "reject"))
        return results, runner.store.review(review.id), runner.store.run(record.id)

    results, review, record = with_runner(catalog, pool, database_url, body)
    assert results.count("won") == 1, results
    (loser,) = [r for r in results if r != "won"]
    assert "already decided" in loser and review.decided_by in loser
    # The winner's decision, and only it, was applied: approve finishes the run, reject sends
    # it back to extraction (the scripted extractor answers the same), so it waits again.
    expected = {"approve": "succeeded", "reject": "awaiting_review"}[review.decision]
    assert review.status == "applied" and record.status == expected


def test_parallel_review_gates_in_a_map_resume_one_by_one(
    catalog: Catalog, pool: LocalAsker, database_url: str, tmp_path: Path
) -> None:
    issues = ["printer broken", "double charge", "refund please"]

    async def body(runner: Runner) -> Any:
        record = await runner.start("tickets", {"issues": issues})
        reviews = {r.payload["index"]: r for r in runner.store.reviews("pending", record.id)}
        assert sorted(reviews) == [0, 1, 2]
        assert reviews[0].payload["show"]["answer"] == {"label": "technical"}
        _, record = await runner.decide(reviews[2].id, "approve", "ann")
        assert record.status == "awaiting_review"
        _, record = await runner.decide(
            reviews[1].id, "edit", "ann", changes={"label": "technical"}
        )
        assert record.status == "awaiting_review"
        _, record = await runner.decide(reviews[0].id, "reject", "ann", reason="look again")
        assert record.status == "awaiting_review", "the reworked item needs a new review"
        (again,) = runner.store.reviews("pending", record.id)
        assert again.payload["index"] == 0 and "look again" in again.payload["show"]["input"]
        _, record = await runner.decide(again.id, "approve", "ann")
        return record, runner.store.events(record.id)

    record, events = with_runner(catalog, pool, database_url, body)
    assert record.status == "succeeded"
    assert record.output["labels"] == [
        {"label": "technical"},
        {"label": "technical"},
        {"label": "billing"},
    ]
    nodes = [e["node"] for e in events]
    assert nodes.count("route") == 1, nodes
    assert calls(tmp_path).count("labeller") == 3 + 1 + 1  # items, one rework, the router


def test_plan_runs_its_tasks_concurrently_and_joins_in_order(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    async def body(runner: Runner) -> Any:
        return await runner.start("brief", {"topic": "printers"})

    record = with_runner(catalog, pool, database_url, body)
    assert record.status == "succeeded"
    assert [f["specialist"] for f in record.output["findings"]] == ["labeller", "extractor"]
    assert record.output["findings"][0] == {
        "specialist": "labeller",
        "task": "label the topic",
        "answer": {"label": "billing"},
    }


@pytest.mark.parametrize(
    ("task", "why"),
    [
        ({"specialist": "decider", "input": "x"}, r"'decider' is not one of \['labeller', 'ex"),
        # The planner's own schema need not name an input: the node's narrowed schema does.
        ({"specialist": "labeller"}, r"'input' is a required property"),
        ({"specialist": "labeller", "input": ""}, r"should be non-empty"),
    ],
    ids=["not-allowed", "no-input", "empty-input"],
)
def test_a_plan_naming_a_specialist_it_may_not_use_fails_before_any_task_runs(
    tmp_path: Path, database_url: str, task: dict[str, str], why: str
) -> None:
    bad = load_catalog(
        scripted_workflow_catalog(tmp_path, call_log=tmp_path / "calls.log", plan=[task])
    )
    pool = LocalAsker(bad)

    async def body(runner: Runner) -> Any:
        with pytest.raises(OutputSchemaError, match=rf"node 'plan'.*{why}"):
            await runner.start("brief", {"topic": "printers"})
        return runner.store.runs()[0]

    record = with_runner(bad, pool, database_url, body)
    asyncio.run(pool.aclose())
    assert record.status == "failed" and "node 'plan'" in (record.error or "")
    assert calls(tmp_path) == ["planner"]
    # The planner's answer was refused, but it was made: the failed run counts its tokens.
    assert record.usage["planner"]["calls"] == 1
    assert record.usage["planner"]["input_tokens"] > 0 < record.usage["planner"]["output_tokens"]


def test_bad_input_is_refused_and_creates_no_run(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    async def body(runner: Runner) -> Any:
        with pytest.raises(InputError, match="workflow 'claim': claim: '' should be non-empty"):
            await runner.start("claim", {"claim": ""})
        with pytest.raises(InputError, match="'claim' is a required property"):
            await runner.start("claim", {"text": "x"})
        with pytest.raises(NotFoundError, match="unknown workflow 'claims'; did you mean 'claim'"):
            await runner.start("claims", {"claim": "x"})
        for key in ("tool_error", "review_feedback", "_usage"):  # would fake Cadre's own state
            with pytest.raises(InputError, match=f"input key '{key}' is one Cadre keeps"):
                await runner.start("claim", {"claim": "x", key: {"extract": {"calls": 0}}})
        for value, why in (
            (10**20, "is an integer outside 64 bits"),
            (float("inf"), "is inf, which is not"),
        ):
            with pytest.raises(InputError, match=f"workflow 'claim': n: {why}"):
                await runner.start("claim", {"claim": "x", "n": value})
        return runner.store.runs()

    assert with_runner(catalog, pool, database_url, body) == []


def test_cancel_stops_a_waiting_run_and_its_reviews(
    catalog: Catalog, pool: LocalAsker, database_url: str, telemetry_session: Any
) -> None:
    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        cancelled = runner.cancel(record.id)
        with pytest.raises(InputError, match="cancelled with its run"):
            await runner.decide(review.id, "approve", "zed")
        with pytest.raises(InputError, match="nothing to resume"):
            await runner.resume(record.id)
        return cancelled, runner.store.review(review.id)

    record, review = with_runner(catalog, pool, database_url, body)
    assert record.status == "cancelled" and record.finished_at is not None
    assert review.status == "cancelled"
    # The cancel is in the run's trace: the review it ended, and the run's end.
    spans = telemetry_session.spans.get_finished_spans()
    ended = [s for s in spans if (s.attributes or {}).get("gen_ai.conversation.id") == record.id]
    named = {s.name: s for s in ended}
    waited = named["cadre.review"].attributes
    assert waited["cadre.review.decision"] == "cancelled"
    # It waited until the cancel (it said 0 s), and nobody decided it (it said "").
    assert waited["cadre.review.wait_s"] > 0 and "cadre.review.reviewer" not in waited
    assert named["cadre.run"].attributes["cadre.run.status"] == "cancelled"
    root = next(s for s in ended if s.parent is None)
    assert root.name == "cadre.run"
    assert named["cadre.review"].context.trace_id == root.context.trace_id


def test_cancel_also_drops_a_decision_not_yet_applied(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        runner.store.decide(review.id, "approve", "ann")  # recorded, not applied yet
        runner.cancel(record.id)
        await runner._hand_back(record.id)  # an owner handing back must not resume it
        return (
            runner.store.run(record.id),
            runner.store.review(review.id),
            runner.store.events(record.id),
        )

    record, review, events = with_runner(catalog, pool, database_url, body)
    assert record.status == "cancelled" and review.status == "cancelled"
    assert "decide" not in [e["node"] for e in events]


def test_cancel_from_elsewhere_stops_a_running_run_after_its_current_step(
    tmp_path: Path, database_url: str
) -> None:
    slow = load_catalog(
        scripted_workflow_catalog(tmp_path, delay_s=0.5, call_log=tmp_path / "calls.log")
    )
    pool = LocalAsker(slow)

    async def body(runner: Runner) -> Any:
        task = asyncio.ensure_future(runner.start("chain", {"text": "go"}))
        while not runner.store.runs() or not runner.store.events(runner.store.runs()[0].id):
            await asyncio.sleep(0.02)
        run_id = runner.store.runs()[0].id
        async with Runner(slow, database_url=database_url, asker=pool) as other:
            other.cancel(run_id)
        await task
        return runner.store.run(run_id), runner.store.events(run_id)

    record, events = with_runner(slow, pool, database_url, body)
    asyncio.run(pool.aclose())
    assert record.status == "cancelled"
    assert len(events) < 4, "the nodes after the cancel did not run"
    assert calls(tmp_path).count("decider") + calls(tmp_path).count("extractor") <= 2
    # The calls it made count: in the record, and so against the tenant's daily budget
    # (a cancel used to leave the run at 0 tokens).
    answered = [e for e in events if e.get("usage")]
    assert answered and record.input_tokens == sum(
        u["input_tokens"] for e in answered for u in e["usage"].values()
    )
    assert record.input_tokens > 0 and set(record.usage) == {
        name for e in answered for name in e["usage"]
    }


def test_a_decision_made_while_another_process_drives_the_run_is_applied_when_it_hands_back(
    catalog: Catalog, pool: LocalAsker, database_url: str
) -> None:
    import socket

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        busy = f"{socket.gethostname()}:1"  # a live process on this machine owns the run
        runner.store.db.execute("UPDATE cadre_runs SET owner = ? WHERE id = ?", (busy, record.id))
        decided, waiting = await runner.decide(review.id, "approve", "ann")
        assert (decided.status, waiting.status) == ("decided", "awaiting_review")
        # The owner finishes its step and hands the run back: it applies what was decided.
        runner.store.db.execute(
            "UPDATE cadre_runs SET owner = ? WHERE id = ?", (runner.owner, record.id)
        )
        runner._hold(record.id)
        await runner._hand_back(record.id)
        return runner.store.run(record.id), runner.store.review(review.id)

    record, review = with_runner(catalog, pool, database_url, body)
    assert record.status == "succeeded" and record.owner is None
    assert review.status == "applied"


def test_a_node_whose_fixed_answer_is_whole_asks_no_model_and_is_checked(
    tmp_path: Path, database_url: str
) -> None:
    """`fixed` that gives every field of the specialist's answer is the answer: the decider is
    not called. A fixed value rendered from state that does not fit the schema fails the run
    with the node and the field, not a model call."""
    root = tmp_path / "c"
    agents = scripted_workflow_catalog(root, amount=300, call_log=tmp_path / "calls.log")
    flow = yaml.safe_load((root / "graphs" / "claim.yaml").read_text())
    decide = next(n for n in flow["nodes"] if n["id"] == "decide")
    decide["fixed"] = {"decision": "deny"}
    (root / "graphs" / "claim.yaml").write_text(yaml.safe_dump(flow))
    flow["name"], decide["fixed"] = "claim-broken", {"decision": "{fields.policy_number}"}
    (root / "graphs" / "claim-broken.yaml").write_text(yaml.safe_dump(flow))
    fixed = load_catalog(agents)
    pool = LocalAsker(fixed)

    async def body(runner: Runner) -> Any:
        ruled = await runner.start("claim", {"claim": "a dent"})
        with pytest.raises(RunError, match=r"node 'decide'.*decision.*'P-1' is not one of"):
            await runner.start("claim-broken", {"claim": "a dent"})
        return ruled, runner.store.runs()

    ruled, runs = with_runner(fixed, pool, database_url, body)
    asyncio.run(pool.aclose())
    assert ruled.status == "succeeded" and ruled.output["decision"] == {"decision": "deny"}
    assert set(ruled.usage) == {"extractor"}
    assert "decider" not in calls(tmp_path)
    assert sorted(r.status for r in runs) == ["failed", "succeeded"]


def start(tmp_path: Path) -> tuple[BaseException, Any]:
    """Start the claim flow; the exception it raised and the run's record."""
    catalog = load_catalog(scripted_workflow_catalog(tmp_path / "c"))

    async def go() -> tuple[BaseException, Any]:
        url = f"sqlite:///{tmp_path / 'runs.db'}"
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            with pytest.raises(Exception) as info:
                await runner.start("claim", {"claim": "a dent"})
            return info.value, runner.store.runs(workflow="claim", limit=1)[0]

    return asyncio.run(go())


def test_a_bug_in_a_node_fails_the_run_and_stays_its_own_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(template: str, state: dict[str, Any]) -> str:
        return {}["claim"]  # a KeyError, as a bug in rendering would raise

    monkeypatch.setattr(specialist, "render", broken)
    error, record = start(tmp_path)
    assert type(error) is KeyError
    assert error.cadre_node == "extract"  # type: ignore[attr-defined]
    assert record.status == "failed"
    assert record.error == "KeyError: 'claim' (in node 'extract')"


def test_a_cadre_error_in_a_node_names_the_node_and_keeps_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(template: str, state: dict[str, Any]) -> str:
        raise InputError("the claim is empty")

    monkeypatch.setattr(specialist, "render", refused)
    error, record = start(tmp_path)
    assert type(error) is InputError
    assert error.message == "node 'extract': the claim is empty"
    assert (record.status, record.error) == ("failed", "node 'extract': the claim is empty")


def test_a_loop_whose_way_out_never_fires_fails_the_run_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch sends the run back to its first node until a label the labeller never gives: the run
    fails after MAX_STEPS steps, saying so, instead of LangGraph's recursion error."""
    monkeypatch.setattr(runner_module, "MAX_STEPS", 12)
    root = scripted_workflow_catalog(tmp_path / "c", call_log=tmp_path / "calls.log")
    flow = load_flow("chain")
    flow["name"] = "loop"
    flow["nodes"][-1]["next"] = "again"
    flow["nodes"].append(
        {
            "kind": "branch",
            "id": "again",
            "cases": [
                {"when": {"key": "last.label", "op": "eq", "value": "technical"}, "next": "end"}
            ],
            "default": "a",
        }
    )
    (root.parent / "graphs" / "loop.yaml").write_text(yaml.safe_dump(flow))
    catalog = load_catalog(root)

    async def go() -> tuple[BaseException, Any]:
        url = f"sqlite:///{tmp_path / 'runs.db'}"
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            with pytest.raises(RunError) as info:
                await runner.start("loop", {"text": "a dent"})
            return info.value, runner.store.runs(workflow="loop", limit=1)[0]

    error, record = asyncio.run(go())
    assert error.message.startswith("workflow 'loop' took 12 steps without reaching end")
    assert (record.status, record.error) == ("failed", error.message)
    assert len(calls(tmp_path)) in (9, 10)  # 12 steps: two rounds of a-b-c-d-again, then a, b


def test_what_a_template_leaves_at_the_ends_is_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`{claim}\\n{review_feedback}` before any rejection ended the prompt with a line break that
    `cadre ask`, eval and training never give: the adapter answered the same claim differently."""
    root = scripted_workflow_catalog(tmp_path / "c")
    flow = load_flow("claim")
    flow["nodes"][0]["input"] = "  {claim}\n{review_feedback}\n"
    (root.parent / "graphs" / "claim.yaml").write_text(yaml.safe_dump(flow))
    catalog = load_catalog(root)
    asker = LocalAsker(catalog)
    sent: list[str] = []
    ask = asker.ask_spec

    async def spy(spec: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(text)
        return await ask(spec, text, *args, **kwargs)

    monkeypatch.setattr(asker, "ask_spec", spy)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with_runner(catalog, asker, url, lambda runner: runner.start("claim", {"claim": "a dent"}))
    assert sent[0] == "a dent"
