"""One trace per run, across the driver and the Ray actors, with GenAI attributes.

Driver spans are checked in the SDK's in-memory exporter; the whole tree, which includes the
``chat`` spans that ModelHost actors export from their own processes, is read back from the
session's span file; the wire path goes through a real OTLP/HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from orchestrator import telemetry
from orchestrator.errors import OutputSchemaError
from orchestrator.hosting.pool import HostPool
from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.telemetry.traces import load_tree, trace_id_of
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT, TelemetryHarness
from tests.workflow.fixtures import scripted_workflow_catalog

CADRE = str(Path(sys.executable).parent / "cadre")


def flat(nodes: list[Any]) -> list[Any]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(flat(node.children))
    return out


def named(nodes: list[Any], name: str) -> list[Any]:
    return [n for n in nodes if n.name == name]


@pytest.mark.ray
@pytest.mark.usefixtures("ray_session")
def test_a_reviewed_run_is_one_trace_across_driver_and_actors(
    tmp_path: Path, telemetry_session: TelemetryHarness
) -> None:
    catalog = load_catalog(scripted_workflow_catalog(tmp_path))
    pool = HostPool(catalog)

    async def go() -> Any:
        async with Runner(
            catalog, database_url=f"sqlite:///{tmp_path / 'runs.db'}", asker=pool
        ) as runner:
            record = await runner.start("claim", {"claim": "a flood"})
            (review,) = runner.store.reviews("pending", record.id)
            await asyncio.sleep(0.3)  # a visible wait
            _, record = await runner.decide(review.id, "approve", "alice")
            return record

    record = asyncio.run(go())
    pool.shutdown()  # hosts flush their spans first
    telemetry.flush()
    trace_id = trace_id_of(record.trace_context)
    roots = load_tree(telemetry_session.trace_file, trace_id)
    (root,) = roots  # one trace, one root: the whole run, written when it ended
    spans = flat(roots)
    assert {s.record["trace_id"] for s in spans} == {trace_id}

    assert root.name == "cadre.run"
    assert root.record["attributes"]["cadre.run.status"] == "succeeded"
    assert root.record["attributes"]["cadre.run.total_s"] == pytest.approx(
        record.finished_at - record.created_at
    )
    children = [c.name for c in root.children if c.name != "cadre.checkpoint.write"]
    assert children == [  # in order of start
        "invoke_workflow claim",
        "cadre.review",
        "invoke_workflow claim",
    ]
    first, _, resumed = root.children
    # The root spans every child: the first stretch ended while the run waited.
    assert all(root.seconds >= c.seconds for c in root.children)
    assert root.seconds >= 0.3 and root.seconds > first.seconds
    attrs = first.record["attributes"]
    assert attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert attrs["gen_ai.workflow.name"] == "claim"
    assert attrs["gen_ai.conversation.id"] == record.id
    assert attrs["cadre.run.status"] == "awaiting_review" and attrs["cadre.resumed"] is False
    assert [c.name for c in first.children if c.name != "cadre.checkpoint.write"] == [
        "invoke_agent extractor",
        "execute_tool calculator",
    ]
    writes = [e for s in spans for e in s.record["events"] if e["name"] == "cadre.checkpoint.write"]
    assert writes, "checkpoint writes are traced, as events on the run's spans"
    assert not [s for s in spans if s.name == "cadre.checkpoint.write"], "not spans of their own"
    assert all(e["attributes"]["cadre.checkpoint.ms"] >= 0 for e in writes)

    agent = named(first.children, "invoke_agent extractor")[0]
    assert agent.record["attributes"]["gen_ai.agent.name"] == "extractor"
    assert agent.record["attributes"]["cadre.node"] == "extract"
    # The first call of a run waited for the model's host to start: a span of its own.
    (starting,) = named(agent.children, "cadre.host.start")
    assert starting.record["attributes"]["cadre.model"] == catalog.specialist("extractor").model
    (chat,) = [c for c in agent.children if c.name.startswith("chat ")]
    assert [c.name for c in agent.children] == ["cadre.host.start", chat.name]
    chat_attrs = chat.record["attributes"]
    assert chat.name.startswith("chat wf-") and chat.record["kind"] == "CLIENT"
    assert chat_attrs["gen_ai.operation.name"] == "chat"
    assert chat_attrs["gen_ai.provider.name"] == "cadre.scripted"
    assert chat_attrs["gen_ai.request.model"] == catalog.specialist("extractor").model
    assert chat_attrs["gen_ai.request.max_tokens"] == 256
    assert chat_attrs["gen_ai.request.temperature"] == 0.0
    assert chat_attrs["gen_ai.usage.input_tokens"] > 0
    assert chat_attrs["gen_ai.usage.output_tokens"] == 4
    assert chat_attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat_attrs["cadre.host"].endswith("-0")
    assert "gen_ai.input.messages" not in chat_attrs, "no prompt text unless opted in"
    assert agent.record["attributes"]["gen_ai.usage.output_tokens"] == 4

    tool = named(first.children, "execute_tool calculator")[0].record["attributes"]
    assert (
        tool["gen_ai.operation.name"] == "execute_tool" and tool["gen_ai.tool.name"] == "calculator"
    )

    review = named(root.children, "cadre.review")[0]
    review_attrs = review.record["attributes"]
    assert review_attrs["cadre.review.reviewer"] == "alice"
    assert review_attrs["cadre.review.decision"] == "approve"
    assert review.seconds >= 0.3 and review_attrs["cadre.review.wait_s"] >= 0.3

    assert resumed.record["attributes"]["cadre.resumed"] is True
    assert resumed.record["attributes"]["cadre.run.status"] == "succeeded"
    decider = named(resumed.children, "invoke_agent decider")
    assert decider and named(decider[0].children, "chat " + chat.name.split(" ", 1)[1])


def test_a_failed_run_resumed_writes_a_second_root_under_the_first(
    tmp_path: Path, telemetry_session: TelemetryHarness
) -> None:
    """The failed attempt wrote the trace's root; the resumed attempt writes its own root,
    under it, not a second span with the same id."""
    bad = load_catalog(
        scripted_workflow_catalog(tmp_path, plan=[{"specialist": "decider", "input": "x"}])
    )
    asker = LocalAsker(bad)

    async def go() -> str:
        async with Runner(
            bad, database_url=f"sqlite:///{tmp_path / 'runs.db'}", asker=asker
        ) as runner:
            with pytest.raises(OutputSchemaError):
                await runner.start("brief", {"topic": "printers"})
            run_id = runner.store.runs()[0].id
            with pytest.raises(OutputSchemaError):
                await runner.resume(run_id)
            await asker.aclose()
            return run_id

    run_id = asyncio.run(go())
    roots = [
        s
        for s in telemetry_session.spans.get_finished_spans()
        if s.name == "cadre.run" and (s.attributes or {}).get("gen_ai.conversation.id") == run_id
    ]
    first, second = sorted(roots, key=lambda s: s.start_time or 0)
    assert first.parent is None and first.context.trace_id == second.context.trace_id
    assert second.context.span_id != first.context.span_id
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert {s.attributes["cadre.run.status"] for s in roots} == {"failed"}


def test_failures_carry_error_type_and_metrics_are_emitted(
    tmp_path: Path, telemetry_session: TelemetryHarness
) -> None:
    bad = load_catalog(
        scripted_workflow_catalog(tmp_path, plan=[{"specialist": "decider", "input": "x"}])
    )
    asker = LocalAsker(bad)

    async def go() -> str:
        async with Runner(
            bad, database_url=f"sqlite:///{tmp_path / 'runs.db'}", asker=asker
        ) as runner:
            with pytest.raises(OutputSchemaError):
                await runner.start("brief", {"topic": "printers"})
            await asker.aclose()
            return runner.store.runs()[0].id

    run_id = asyncio.run(go())
    mine = [
        s
        for s in telemetry_session.spans.get_finished_spans()
        if (s.attributes or {}).get("gen_ai.conversation.id") == run_id
    ]
    by_name = {s.name: s for s in mine}
    planner = by_name["invoke_agent planner"]
    assert planner.attributes["error.type"] == "OutputSchemaError"
    assert planner.status.status_code.name == "ERROR"
    (event,) = [e for e in planner.events if e.name == "exception"]  # as the conventions have it
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "OutputSchemaError"
    assert "output schema" in str(event.attributes["exception.message"])
    root = by_name["invoke_workflow brief"]
    assert root.attributes["error.type"] == "OutputSchemaError"
    assert root.attributes["cadre.run.status"] == "failed"

    data = telemetry_session.metrics.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    token_types = {p.attributes["gen_ai.token.type"] for p in points["gen_ai.client.token.usage"]}
    assert token_types == {"input", "output"}
    durations = points["gen_ai.client.operation.duration"]
    assert all(p.attributes["gen_ai.operation.name"] == "chat" for p in durations)
    assert sum(p.count for p in durations) >= 1


class Collector:
    """A real OTLP/HTTP receiver on 127.0.0.1 that decodes what it is sent."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    collector.traces.append(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    collector.metrics.append(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[tuple[str, Any, Any]]:
        return [
            (
                dict((a.key, a.value.string_value) for a in rs.resource.attributes)["service.name"],
                span,
                rs,
            )
            for request in self.traces
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


def run_claim(
    tmp_path: Path, env_extra: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    agents = scripted_workflow_catalog(tmp_path, amount=300)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
        "CADRE_TRACE_FILE": str(tmp_path / "traces.jsonl"),
        **env_extra,
    }
    argv = [CADRE, "run", "claim", "--input", '{"claim": "a dent"}', "--catalog", str(agents)]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return result, time.perf_counter() - started


@pytest.mark.ray
def test_spans_and_metrics_reach_a_real_otlp_http_collector(tmp_path: Path) -> None:
    collector = Collector()
    result, _ = run_claim(
        tmp_path,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "CADRE_CAPTURE_CONTENT": "1",
        },
    )
    collector.server.shutdown()
    assert result.returncode == 0, result.stderr
    spans = collector.spans()
    names = {span.name for _, span, _ in spans}
    assert {"invoke_workflow claim", "invoke_agent extractor", "execute_tool calculator"} <= names
    chats = [span for _, span, _ in spans if span.name.startswith("chat ")]
    assert len(chats) == 2, "one per specialist call, exported by the ModelHost actor"
    assert {service for service, _, _ in spans} == {"cadre"}
    assert len({span.trace_id for _, span, _ in spans}) == 1
    attrs = {a.key: a.value for a in chats[0].attributes}
    assert "Do the extractor job." in attrs["gen_ai.input.messages"].string_value  # opted in
    assert not (tmp_path / "traces.jsonl").exists(), "with OTLP set, no local span file"
    metric_names = {
        m.name
        for request in collector.metrics
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= metric_names


@pytest.mark.ray
def test_a_traces_only_endpoint_gets_no_metrics_and_the_exporter_variables_are_honoured(
    tmp_path: Path,
) -> None:
    """Phoenix takes traces only: with its traces endpoint set, no metrics go anywhere (they
    went to the default localhost:4318 and printed a transient error per export). And the
    standard OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER=none turn each signal off."""
    collector = Collector()
    phoenix, _ = run_claim(
        tmp_path / "phoenix", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector.url}/v1/traces"}
    )
    assert phoenix.returncode == 0, phoenix.stderr
    assert {span.name for _, span, _ in collector.spans()} >= {"invoke_workflow claim"}
    assert collector.metrics == []
    assert "error" not in phoenix.stderr.lower(), phoenix.stderr

    collector.traces.clear()
    quiet, _ = run_claim(
        tmp_path / "none",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
        },
    )
    collector.server.shutdown()
    assert quiet.returncode == 0, quiet.stderr
    assert collector.traces == [] and collector.metrics == []
    assert not (tmp_path / "none" / "traces.jsonl").exists()


@pytest.mark.ray
def test_a_dead_collector_neither_fails_nor_stalls_a_run(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    healthy, healthy_s = run_claim(tmp_path / "a", {})
    broken, broken_s = run_claim(tmp_path / "b", {"OTEL_EXPORTER_OTLP_ENDPOINT": closed})
    assert healthy.returncode == 0 and broken.returncode == 0, broken.stderr
    assert "succeeded" in broken.stdout
    assert broken.stderr.count("telemetry export failed") <= 1, "logged once, not per batch"
    # Export runs on a background thread and the exit flush is bounded (2 s per process).
    assert broken_s < healthy_s + 15, (healthy_s, broken_s)


@pytest.mark.ray
def test_cadre_trace_prints_the_tree_of_a_reviewed_run(tmp_path: Path) -> None:
    agents = scripted_workflow_catalog(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
        "CADRE_TRACE_FILE": str(tmp_path / "traces.jsonl"),
    }
    where = ["--catalog", str(agents)]

    def cadre(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CADRE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    started = cadre("run", "claim", "--input", '{"claim": "a flood"}', *where)
    assert started.returncode == 0, started.stderr
    review = started.stdout.split("cadre review approve ")[1].split()[0]
    run_id = started.stdout.split("run ")[2].split()[0]
    assert cadre("review", "approve", review, "--as", "rita", *where).returncode == 0

    shown = cadre("trace", run_id)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for fragment in (
        "invoke_workflow claim",
        "├─ invoke_agent extractor",
        "chat wf-",
        "execute_tool calculator",
        "cadre.review",
        "for rita: approve",
        "resumed",
        "checkpoint writes",
    ):
        assert fragment in text, (fragment, text)
    tree = json.loads(cadre("trace", run_id, "--json").stdout)
    (root,) = tree
    assert root["name"] == "cadre.run"
    assert [c["name"] for c in root["children"]] == [
        "invoke_workflow claim",
        "cadre.review",
        "invoke_workflow claim",
    ]
    missing = cadre("trace", "run-nope")
    assert missing.returncode == 2 and "no run 'run-nope'" in missing.stderr
