"""Telemetry: OpenTelemetry setup and export (:mod:`.otel`), the GenAI attribute names
(:mod:`.gen_ai`), and reading a run's trace back (:mod:`.traces`).

``from orchestrator import telemetry`` gives the setup and span helpers under their own names
(``telemetry.setup``, ``telemetry.span``, ``telemetry.inject``)."""

from orchestrator.telemetry.otel import (
    SERVICE,
    GuardedExporter,
    JsonlSpanExporter,
    TelemetryConfig,
    capture_content,
    config_from_env,
    export_failures,
    extract,
    flush,
    inject,
    late_root,
    meter,
    new_trace,
    next_root,
    run_trace,
    setup,
    shutdown,
    span,
    span_record,
    submitted_by,
    tracer,
)

__all__ = [
    "SERVICE",
    "GuardedExporter",
    "JsonlSpanExporter",
    "TelemetryConfig",
    "capture_content",
    "config_from_env",
    "export_failures",
    "extract",
    "flush",
    "inject",
    "late_root",
    "meter",
    "new_trace",
    "next_root",
    "run_trace",
    "setup",
    "shutdown",
    "span",
    "span_record",
    "submitted_by",
    "tracer",
]
