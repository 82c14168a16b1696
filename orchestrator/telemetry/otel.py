"""OpenTelemetry for Cadre: one trace per run, GenAI semantic conventions, never in the way.

Setup (:func:`setup`) happens once per process — the CLI, and each ModelHost actor — from a
:class:`TelemetryConfig` the driver hands to the actors, so every process exports to the same
place:

- with ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set: the standard OTLP
  exporter, HTTP/protobuf or gRPC by ``OTEL_EXPORTER_OTLP_PROTOCOL``, configured by the standard
  ``OTEL_*`` variables; metrics go over OTLP only to an endpoint that takes them (the general or
  the metrics one, not a traces-only one such as Phoenix's);
- otherwise spans go to a JSONL file (``.cadre/traces.jsonl``, or ``CADRE_TRACE_FILE``) that
  ``cadre trace`` reads, so nothing is lost and nothing needs a server;
- ``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER`` (otlp, console for traces, none)
  override both choices, as in every OpenTelemetry SDK.

Export failures never fail or stall a run: exporting happens on the SDK's background thread,
failures are counted and logged once (:class:`GuardedExporter`), and the flush at exit is bounded.
Prompt and answer text is recorded only with ``CADRE_CAPTURE_CONTENT=1``.

The trace context crosses into Ray actors as a W3C ``traceparent`` carried with each call
(:func:`inject` / :func:`extract`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.propagate import extract as _extract
from opentelemetry.propagate import inject as _inject
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from orchestrator import config

log = logging.getLogger("cadre.telemetry")

SERVICE = "cadre"


@dataclass(frozen=True)
class TelemetryConfig:
    """Where this process and the actors it starts send telemetry (picklable)."""

    trace_file: str
    """Absolute path of the JSONL span file (used when no OTLP endpoint is set)."""
    otel_env: dict[str, str] = field(default_factory=dict)
    """The ``OTEL_*`` variables of the driver, replayed in actor processes."""
    capture_content: bool = False

    @property
    def otlp(self) -> bool:
        return bool(
            self.otel_env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or self.otel_env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )


def config_from_env() -> TelemetryConfig:
    """The telemetry config this process's environment describes."""
    path = config.trace_file().resolve()
    return TelemetryConfig(
        trace_file=str(path),
        otel_env={k: v for k, v in os.environ.items() if k.startswith("OTEL_")},
        capture_content=config.capture_content(),
    )


class JsonlSpanExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object a line (what ``cadre trace`` reads)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write per batch, in append mode: processes sharing the file do not interleave.
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as a plain dict (the JSONL format)."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "service": (span.resource.attributes or {}).get("service.name") if span.resource else None,
    }


class GuardedExporter(SpanExporter):
    """Wraps an exporter so that its failures are counted and logged once, never raised."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failures = 0
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as err:  # an exporter must never take the work down with it
            result = SpanExportResult.FAILURE
            reason = f"{type(err).__name__}: {err}"
        else:
            reason = "the exporter reported failure"
        if result is not SpanExportResult.SUCCESS:
            self.failures += 1
            if not self._warned:
                self._warned = True
                log.warning("telemetry export failed (%s); runs go on, spans are dropped", reason)
        return result

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):  # shutting down telemetry must not fail the exit
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


_lock = threading.Lock()
_state: dict[str, Any] = {}


def setup(
    config: TelemetryConfig | None = None,
    *,
    exporter: SpanExporter | None = None,
    also: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    schedule_delay_ms: int = 1000,
) -> TelemetryConfig:
    """Install the tracer and meter providers for this process (once; later calls return the
    config in force). ``exporter`` replaces the configured one; ``also`` gets every span as
    well, synchronously (tests pass the SDK's InMemorySpanExporter)."""
    with _lock:
        if "config" in _state:
            return _state["config"]  # type: ignore[no-any-return]
        config = config or config_from_env()
        for key, value in config.otel_env.items():
            os.environ.setdefault(key, value)  # actors: the driver's OTEL_* settings
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE)})
        chosen = _exporters("TRACES")
        if exporter is None and chosen != {"none"}:
            if "console" in chosen:
                exporter = ConsoleSpanExporter()
            elif "otlp" in chosen or config.otlp:
                exporter = _otlp_span_exporter()
            else:
                exporter = JsonlSpanExporter(config.trace_file)
        guarded = GuardedExporter(exporter) if exporter is not None else None
        # Our own bounded shutdown replaces the SDK's exit hooks, which would wait out an
        # unreachable collector's retries.
        provider = TracerProvider(
            resource=resource, shutdown_on_exit=False, id_generator=_ChosenIds()
        )
        if guarded is not None:
            provider.add_span_processor(
                BatchSpanProcessor(guarded, schedule_delay_millis=schedule_delay_ms)
            )
        if also is not None:
            provider.add_span_processor(SimpleSpanProcessor(also))
        trace.set_tracer_provider(provider)
        readers = [metric_reader] if metric_reader else []
        if metric_reader is None and _metrics_to_otlp():
            readers.append(PeriodicExportingMetricReader(_otlp_metric_exporter()))
        meters = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
        metrics.set_meter_provider(meters)
        _state.update(config=config, provider=provider, meters=meters, exporter=guarded)
        return config


def _exporters(signal: str) -> set[str]:
    """``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: the exporters named (otlp,
    console, none), or an empty set when unset (then Cadre decides)."""
    named = os.environ.get(f"OTEL_{signal}_EXPORTER", "")
    return {part.strip().lower() for part in named.split(",") if part.strip()}


def _metrics_to_otlp() -> bool:
    """Metrics go over OTLP when ``OTEL_METRICS_EXPORTER`` says otlp, or, when it is unset,
    when an endpoint that takes metrics is set: the general one or the metrics one. A
    traces-only endpoint (Phoenix has no ``/v1/metrics``) sends no metrics anywhere."""
    chosen = _exporters("METRICS")
    if chosen:
        return "otlp" in chosen
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


def _protocol(signal: str) -> str:
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )


def _otlp_span_exporter() -> SpanExporter:
    if _protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _otlp_metric_exporter() -> Any:
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def export_failures() -> int:
    """How many span batches failed to export in this process."""
    exporter = _state.get("exporter")
    return exporter.failures if exporter else 0


def _timeout(timeout_s: float | None) -> float:
    return timeout_s if timeout_s is not None else config.flush_timeout_s()


def _bounded(work: Any, timeout_s: float) -> None:
    """Run ``work`` on a daemon thread and wait at most ``timeout_s``: an exporter retrying
    against a dead collector keeps its thread, not the run or the exit."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout_s)


def flush(timeout_s: float | None = None) -> None:
    """Export what is buffered, waiting at most ``timeout_s`` (default $CADRE_OTEL_FLUSH_TIMEOUT_S
    or 2 s)."""
    if "provider" not in _state:
        return
    timeout = _timeout(timeout_s)

    def work() -> None:
        _state["provider"].force_flush(int(timeout * 1000))
        _state["meters"].force_flush(int(timeout * 1000))

    _bounded(work, timeout)


def shutdown(timeout_s: float | None = None) -> None:
    """Flush and stop exporting, within a bounded time; the process may exit afterwards.
    Idempotent."""
    if "provider" not in _state or _state.get("closed"):
        return
    _state["closed"] = True
    timeout = _timeout(timeout_s)

    def work() -> None:
        _state["provider"].shutdown()  # exports what is left, then stops
        _state["meters"].shutdown(timeout_millis=timeout * 1000)

    _bounded(work, timeout)


def capture_content() -> bool:
    """Whether prompt and answer text may be recorded (opt-in, never by default)."""
    config = _state.get("config")
    return bool(config and config.capture_content)


def tracer() -> trace.Tracer:
    """Cadre's tracer (looked up once the provider is installed: spans are on the hot path)."""
    cached = _state.get("tracer")
    if cached is None:
        cached = trace.get_tracer("cadre")
        if "config" in _state:
            _state["tracer"] = cached
    return cached


def meter() -> metrics.Meter:
    return metrics.get_meter("cadre")


_CHOSEN: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "cadre_chosen_ids", default=None
)


class _ChosenIds(RandomIdGenerator):
    """Random ids, except for a root span whose ids were chosen before it was made
    (:func:`late_root`)."""

    def generate_trace_id(self) -> int:
        chosen = _CHOSEN.get()
        return chosen[0] if chosen else super().generate_trace_id()

    def generate_span_id(self) -> int:
        chosen = _CHOSEN.get()
        return chosen[1] if chosen else super().generate_span_id()


SUBMITTED = "cadre-submitted"
"""The carrier key of the span that submitted a run (an API request): its root links to it."""


def submitted_by() -> dict[str, str]:
    """What a run submitted now starts its trace from: a link to the current span (the API
    request), if there is one."""
    parent = inject().get("traceparent")
    return {SUBMITTED: parent} if parent else {}


def run_trace(carrier: Mapping[str, str] | None) -> dict[str, str]:
    """A run's trace context: ``carrier`` if it already names its trace, else a new trace
    (:func:`new_trace`) keeping what the carrier says of who submitted the run."""
    carrier = dict(carrier or {})
    return carrier if "traceparent" in carrier else {**new_trace(), **carrier}


AFTER = "cadre-after"
"""The carrier key naming the root a run's earlier attempt wrote (a failed run resumed)."""


def next_root(carrier: Mapping[str, str]) -> dict[str, str]:
    """The trace context of a run's next attempt (a failed run resumed): the same trace, and a
    new root written when the attempt ends, under the root the failed attempt already wrote
    (two spans with one id would be one span twice). A carrier of another kind is kept."""
    parts = carrier.get("traceparent", "").split("-")
    if carrier.get("cadre-root") != "late" or len(parts) != 4:
        return dict(carrier)
    span_id = random.getrandbits(64) or 1
    return {
        **carrier,
        "traceparent": f"00-{parts[1]}-{span_id:016x}-01",
        AFTER: parts[2],
    }


def new_trace() -> dict[str, str]:
    """A trace whose root span is written when what it covers is over, from any process
    (:func:`late_root`): its ids chosen now, as W3C headers. Spans made meanwhile, in any
    process, name this root as their parent, so the trace has one root that spans them all,
    even when the process that began it died."""
    trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
    return {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01", "cadre-root": "late"}


def late_root(
    name: str,
    carrier: Mapping[str, str],
    attributes: Mapping[str, Any],
    start_s: float,
    end_s: float,
    error: str | None = None,
) -> None:
    """Write the root span :func:`new_trace` chose the ids of, from ``start_s`` to ``end_s``
    (status ERROR with ``error`` when given). A carrier that is not such a trace (an older
    run's, whose root was its first stretch) gets the span as a child instead."""
    parts = carrier.get("traceparent", "").split("-")
    try:
        ids = (int(parts[1], 16), int(parts[2], 16))
    except (IndexError, ValueError):
        ids = None
    chosen = carrier.get("cadre-root") == "late" and ids is not None
    submitted = trace.get_current_span(_extract({"traceparent": carrier.get(SUBMITTED, "")}))
    links = [trace.Link(submitted.get_span_context())] if carrier.get(SUBMITTED) else []
    after = carrier.get(AFTER)
    if chosen and after and ids is not None:  # a later attempt's root, under the first's
        parent = extract({"traceparent": f"00-{ids[0]:032x}-{after}-01"})
    else:
        parent = otel_context.Context() if chosen else extract(carrier)
    token = _CHOSEN.set(ids if chosen else None)
    try:
        span = tracer().start_span(
            name,
            context=parent,
            attributes=attributes,
            start_time=int(start_s * 1e9),
            links=[link for link in links if link.context.is_valid],
        )
    finally:
        _CHOSEN.reset(token)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=int(end_s * 1e9))


def inject() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to carry across processes."""
    carrier: dict[str, str] = {}
    _inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """A context whose parent is the span named by ``carrier`` (or the current one)."""
    return _extract(dict(carrier)) if carrier else otel_context.get_current()


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Mapping[str, str] | None = None,
    start_time_ns: int | None = None,
) -> Iterator[Span]:
    """A current span that records ``error.type`` and an error status if the block raises."""
    ctx = extract(parent) if parent is not None else None
    with tracer().start_as_current_span(
        name,
        context=ctx,
        kind=kind,
        attributes=dict(attributes or {}),
        start_time=start_time_ns,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as err:
            if not isinstance(err, GeneratorExit) and type(err).__name__ != "GraphInterrupt":
                current.set_attribute("error.type", type(err).__name__)
                current.set_status(Status(StatusCode.ERROR, str(err)[:500]))
                # The conventions' exception event, without a stack trace (the message names
                # what went wrong; a trace viewer is no place for the code's insides).
                current.add_event(
                    "exception",
                    {"exception.type": type(err).__name__, "exception.message": str(err)[:500]},
                )
            raise
