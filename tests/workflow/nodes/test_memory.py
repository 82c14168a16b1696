"""A memory node's pure parts: who approved the run, and where it reads and writes."""

from __future__ import annotations

from orchestrator.workflow.nodes.memory import approvers, memory_namespace


def test_approvers_are_everyone_who_approved_once_sorted() -> None:
    approvals = {"adjuster": "rita", "second": ["sam", "rita"], "skipped": None, "blank": ""}
    assert approvers(approvals) == ["rita", "sam"]
    assert approvers({}) == []


def test_every_memory_scope_is_inside_the_tenant() -> None:
    assert memory_namespace("acme", "global", "claim", "run-1", "facts") == (
        "tenant",
        "acme",
        "global",
        "facts",
    )
    assert memory_namespace("acme", "workflow", "claim", "run-1", "facts") == (
        "tenant",
        "acme",
        "workflow",
        "claim",
        "facts",
    )
    assert memory_namespace("globex", "run", "claim", "run-1", "notes") == (
        "tenant",
        "globex",
        "run",
        "run-1",
        "notes",
    )
