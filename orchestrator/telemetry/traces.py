"""Reading a run's trace back from the local span file, as a tree (what ``cadre trace`` shows)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, NotFoundError
from orchestrator.telemetry import gen_ai

CHECKPOINT = "cadre.checkpoint.write"


@dataclass
class SpanNode:
    """One span and its children, in start order."""

    record: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def seconds(self) -> float:
        return float(self.record["end_ns"] - self.record["start_ns"]) / 1e9

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "span_id": self.record["span_id"],
            "kind": self.record["kind"],
            "duration_s": round(self.seconds, 6),
            "status": self.record["status"],
            "attributes": self.record["attributes"],
            "children": [c.as_dict() for c in self.children],
        }


def trace_id_of(carrier: dict[str, str]) -> str | None:
    """The trace id in a W3C ``traceparent`` header (``00-TRACEID-SPANID-FLAGS``)."""
    parts = carrier.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 else None


MAX_SPAN_LINE = 1_000_000
"""Longest line of a span file read (a span is a few KB); a longer one is passed over."""
SPAN_KEYS = {"trace_id", "span_id", "parent_id", "start_ns"}
"""What a line needs to be a span of the tree."""


def load_tree(path: Path, trace_id: str) -> list[SpanNode]:
    """The roots of one trace's span tree from a JSONL span file."""
    if not path.exists():
        raise NotFoundError(f"no span file at {path}; runs write one when no OTLP endpoint is set")
    if not path.is_file():  # a folder, a device: nothing a run wrote
        raise InputError(f"{path} is not a span file (not a regular file)")
    records = []
    with open(path, "rb") as lines:
        while line := lines.readline(MAX_SPAN_LINE):
            if not line.endswith(b"\n") and len(line) == MAX_SPAN_LINE:
                while (rest := lines.readline(MAX_SPAN_LINE)) and not rest.endswith(b"\n"):
                    pass  # a line no span writes: passed over in bounded pieces
                continue
            try:
                record = json.loads(line)
            except ValueError:  # cut short by a killed process, or not UTF-8: the rest is kept
                continue
            if (
                isinstance(record, dict)
                and record.get("trace_id") == trace_id
                and set(record) >= SPAN_KEYS
            ):
                records.append(record)
    nodes = {r["span_id"]: SpanNode(r) for r in sorted(records, key=lambda r: r["start_ns"])}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.record["parent_id"] or "")
        (parent.children if parent else roots).append(node)
    return roots


def describe(node: SpanNode) -> str:
    """The one-line summary of a span: tokens, model, review decision, error."""
    a = node.record["attributes"]
    bits = []
    if gen_ai.USAGE_INPUT_TOKENS in a:
        bits.append(
            f"{a['gen_ai.usage.input_tokens']}→{a.get('gen_ai.usage.output_tokens', 0)} tokens"
        )
    if node.name.startswith("chat "):
        bits.append(
            f"on {a.get('cadre.host', '?')}, queued {a.get('cadre.host.queue_time_s', 0):.3f} s"
        )
    if node.name == "cadre.review":
        who = a.get("cadre.review.reviewer")
        wait = a.get("cadre.review.wait_s", 0)
        by = f" for {who}" if who else ""  # a review cancelled with its run: nobody decided
        said = f"waited {wait:.1f} s{by}: {a.get('cadre.review.decision')}"
        editors = [e for e in a.get("cadre.review.edited_by", ()) if e != who]
        bits.append(said + (f" (edited by {', '.join(editors)})" if editors else ""))
    if a.get("cadre.resumed"):
        bits.append("resumed")
    if "cadre.run.status" in a:
        bits.append(str(a["cadre.run.status"]))
    if node.record["status"] == "ERROR":
        bits.append(f"ERROR {a.get('error.type', '')}: {node.record.get('status_message') or ''}")
    return "  ".join(bits)


def render(roots: list[SpanNode], show_checkpoints: bool = False) -> list[str]:
    """The tree as text lines, checkpoint writes folded into a count unless asked for."""
    lines: list[str] = []

    def walk(node: SpanNode, prefix: str, last: bool, top: bool) -> None:
        children = node.children
        folded = ""
        # Checkpoint writes are events on a span (spans of their own with
        # CADRE_TRACE_CHECKPOINTS=spans): folded into a count either way unless asked for.
        events = [e for e in node.record.get("events", []) if e["name"] == CHECKPOINT]
        writes_ms = [e["attributes"].get("cadre.checkpoint.ms", 0.0) for e in events]
        if not show_checkpoints:
            writes_ms += [c.seconds * 1000 for c in children if c.name == CHECKPOINT]
            children = [c for c in children if c.name != CHECKPOINT]
        if writes_ms and not show_checkpoints:
            folded = f"  [{len(writes_ms)} checkpoint writes, {sum(writes_ms):.1f} ms]"
        branch = "" if top else ("└─ " if last else "├─ ")
        label = f"{prefix}{branch}{node.name}"
        lines.append(f"{label:<52} {_duration(node.seconds):>9}  {describe(node)}{folded}".rstrip())
        inner = prefix + ("" if top else ("   " if last else "│  "))
        for i, child in enumerate(children):
            walk(child, inner, i == len(children) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
