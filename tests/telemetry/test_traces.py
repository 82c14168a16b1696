"""Reading a trace back from the span file as a tree (``cadre trace``), on a span file written by
hand: a run with a node, a model call, a review and checkpoint writes, another trace beside it,
and a line cut short by a killed process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import InputError, NotFoundError
from orchestrator.telemetry import traces
from orchestrator.telemetry.traces import load_tree, render, trace_id_of

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(
    name: str, span_id: str, parent: str | None, start_ms: float, end_ms: float, **a: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "trace_id": a.pop("trace_id", TRACE),
        "span_id": span_id,
        "parent_id": parent,
        "kind": "INTERNAL",
        "start_ns": int(start_ms * 1e6),
        "end_ns": int(end_ms * 1e6),
        "status": a.pop("status", "UNSET"),
        "status_message": a.pop("status_message", None),
        "events": a.pop("events", []),
        "attributes": a,
    }


@pytest.fixture
def span_file(tmp_path: Path) -> Path:
    writes = [
        {"name": "cadre.checkpoint.write", "attributes": {"cadre.checkpoint.ms": ms}}
        for ms in (1.25, 0.75)
    ]
    spans = [  # written as spans end: children before their parents
        span(
            "chat smollm2-135m",
            "c1",
            "n1",
            12,
            412,
            **{
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 9,
                "cadre.host": "smollm2-135m-0",
                "cadre.host.queue_time_s": 0.0123,
            },
        ),
        span("invoke_agent extract", "n1", "r1", 10, 420, events=writes),
        span(
            "cadre.review",
            "v1",
            "r1",
            430,
            65_430,
            **{
                "cadre.review.reviewer": "ann",
                "cadre.review.wait_s": 65.0,
                "cadre.review.decision": "edit",
                "cadre.review.edited_by": ["bo", "ann"],
            },
        ),
        span("cadre.checkpoint.write", "k1", "r1", 425, 427),
        span("other run", "x1", None, 0, 5, trace_id="0" * 32),
        span(
            "invoke_workflow claim",
            "r1",
            None,
            0,
            66_000,
            status="ERROR",
            status_message="node 'decide': no host",
            **{"cadre.run.status": "failed", "error.type": "HostUnavailableError"},
        ),
    ]
    path = tmp_path / "spans.jsonl"
    lines = [json.dumps(s) for s in spans]
    path.write_text("\n".join(lines) + '\n{"name": "cut sho', encoding="utf-8")
    return path


def test_the_tree_is_built_in_start_order_from_one_trace_only(span_file: Path) -> None:
    (root,) = load_tree(span_file, TRACE)
    assert root.name == "invoke_workflow claim" and root.seconds == pytest.approx(66.0)
    assert [c.name for c in root.children] == [
        "invoke_agent extract",
        "cadre.checkpoint.write",
        "cadre.review",
    ]
    assert [c.name for c in root.children[0].children] == ["chat smollm2-135m"]
    tree = root.as_dict()
    assert tree["children"][0]["children"][0]["duration_s"] == pytest.approx(0.4)
    assert load_tree(span_file, "f" * 32) == []


def test_the_rendered_tree_says_what_each_span_did(span_file: Path) -> None:
    lines = render(load_tree(span_file, TRACE))
    assert len(lines) == 4, lines  # the checkpoint span is folded into its parent's count
    assert lines[0].startswith("invoke_workflow claim")
    assert "66.00 s" in lines[0] and "failed" in lines[0]
    assert "ERROR HostUnavailableError: node 'decide': no host" in lines[0]
    assert "[1 checkpoint writes, 2.0 ms]" in lines[0]
    assert lines[1].startswith("├─ invoke_agent extract")
    assert "[2 checkpoint writes, 2.0 ms]" in lines[1]
    assert lines[2].startswith("│  └─ chat smollm2-135m") and "400.0 ms" in lines[2]
    assert "120→9 tokens" in lines[2] and "on smollm2-135m-0, queued 0.012 s" in lines[2]
    assert lines[3].startswith("└─ cadre.review")
    assert "waited 65.0 s for ann: edit (edited by bo)" in lines[3]
    shown = render(load_tree(span_file, TRACE), show_checkpoints=True)
    assert len(shown) == 5 and "checkpoint writes" not in "".join(shown)
    assert any("cadre.checkpoint.write" in line for line in shown)


def test_damaged_lines_are_passed_over_and_the_spans_kept(
    span_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line of bytes that is not UTF-8, one that is a JSON list, a span without its keys, and a
    line longer than any span: each crashed `cadre trace` or would have read without bound."""
    monkeypatch.setattr(traces, "MAX_SPAN_LINE", 4096)
    good = span_file.read_bytes().rsplit(b"\n", 1)[0] + b"\n"  # without the line cut short
    span_file.write_bytes(
        b"\xff\xfe not text\n[1]\n"
        + json.dumps({"trace_id": TRACE}).encode()
        + b"\n"
        + b"x" * 10_000
        + b"\n"
        + good
    )
    (root,) = load_tree(span_file, TRACE)
    assert root.name == "invoke_workflow claim" and len(root.children) == 3
    with pytest.raises(InputError, match="is not a span file"):
        load_tree(span_file.parent, TRACE)


def test_a_missing_span_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no span file at .*spans.jsonl"):
        load_tree(tmp_path / "spans.jsonl", TRACE)


def test_the_trace_id_comes_from_a_w3c_traceparent() -> None:
    assert trace_id_of({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) == TRACE
    assert trace_id_of({"traceparent": "garbage"}) is None
    assert trace_id_of({}) is None
