"""OpenTelemetry traces, off unless the standard OTEL_* variables turn them on.

Tracing is on when OTEL_SDK_DISABLED is not "true" and either OTEL_TRACES_EXPORTER names
an exporter other than "none", or an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; the exporter is then "otlp"). Everything else the
SDK reads itself: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (service.name defaults to
"flowrun"), OTEL_TRACES_SAMPLER(_ARG), OTEL_PROPAGATORS (W3C traceparent and baggage by
default), OTEL_EXPORTER_OTLP_* (endpoint, protocol, headers, timeout), OTEL_BSP_*.

When off, nothing of OpenTelemetry is imported and nothing is installed: no interceptor,
no wrapped driver, no observer; the hot path runs exactly as without this module.

When on, each server process (each worker) has its own tracer provider with a batch
processor, and:

- a server span per call (opentelemetry-instrumentation-grpc's grpc.aio interceptor,
  outermost), continuing the caller's trace when the call carries a `traceparent`; the
  health and reflection services are left out (probes every few seconds would bury
  everything else);
- a client span per SQL statement, children of the call's span. PostgreSQL: the asyncpg
  instrumentation, because the SetState hot path sends its statements straight to asyncpg
  (BEGIN, the locking read, the write, COMMIT: server/db/unit_of_work.py,
  server/repositories/orchestration_sql.py), where SQLAlchemy's events never see them;
  it wraps asyncpg's connection and prepared statements, so SQLAlchemy's own statements
  are covered too. SQLite: the SQLAlchemy instrumentation on the engine;
- on SetFlowRunState and SetTaskRunState, the run id, the proposed state type, the outcome
  status, the resulting state type and the rule that decided a REJECT, WAIT or ABORT, as
  attributes of the call's span (SpanAttributes, through the orchestration interceptor's
  observer)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from flowrun.server.db.unit_of_work import Database
    from flowrun.server.domain.states import State
    from flowrun.server.orchestration.context import TransitionResult

DEFAULT_SERVICE_NAME = "flowrun"
# Services whose calls get no span: probes and tooling, not work.
UNTRACED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
# The OTLP exporter the "otlp" name means for each OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL.
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


class SpanAttributes:
    """The attributes flowrun adds to a SetState call's span."""

    RUN_ID = "flowrun.run.id"
    PROPOSED_TYPE = "flowrun.state.proposed_type"
    FORCE = "flowrun.state.force"
    STATUS = "flowrun.orchestration.status"
    RULE = "flowrun.orchestration.rule"  # only on REJECT, WAIT and ABORT
    RESULT_TYPE = "flowrun.state.type"  # the run's state afterwards


class TracingConfigError(Exception):
    """OTEL_* variables that ask for tracing flowrun cannot set up (an unknown exporter)."""


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables turn tracing on (see the module's docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters to build, as entry point names of "opentelemetry_traces_exporter":
    OTEL_TRACES_EXPORTER (comma-separated; default otlp), with "otlp" resolved by the OTLP
    protocol variable (grpc, the default, or http/protobuf)."""
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if "otlp" in names and protocol not in _OTLP_BY_PROTOCOL:
        raise TracingConfigError(
            f"OTLP protocol {protocol!r} is not supported; use one of {', '.join(_OTLP_BY_PROTOCOL)}"
        )
    return [_OTLP_BY_PROTOCOL[protocol] if name == "otlp" else name for name in names if name != "none"]


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Raises TracingConfigError now, before any worker starts, if the OTEL_* variables ask
    for tracing that cannot be set up. Imports nothing."""
    if tracing_requested(environ):
        for name in exporter_names(environ):
            _exporter_entry_point(name)


def _exporter_entry_point(name: str) -> Any:
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        known = ", ".join(sorted(point.name for point in entry_points(group="opentelemetry_traces_exporter")))
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed (known: {known})")
    return next(iter(found))


def _exporter(name: str) -> SpanExporter:
    exporter: SpanExporter = _exporter_entry_point(name).load()()
    return exporter


@dataclass
class Tracing:
    """One process's tracing: the provider and what it instrumented (undone by shutdown)."""

    provider: TracerProvider
    _instrumentors: list[Any] = field(default_factory=list)

    @classmethod
    def with_exporters(cls, *exporters: SpanExporter, batch: bool = True) -> Tracing:
        """A provider whose resource and sampler come from the OTEL_* variables, exporting
        to `exporters` (batched, or one span at a time for tests)."""
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        return cls(provider)

    def server_interceptor(self) -> grpc.aio.ServerInterceptor:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        return aio_server_interceptor(tracer_provider=self.provider, filter_=_traced)

    def instrument(self, database: Database) -> None:
        """SQL spans for the database's statements (see the module's docstring)."""
        engine = database.engine
        if engine.dialect.name == "sqlite":
            from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

            sqlalchemy = SQLAlchemyInstrumentor()
            # Its declared range ends below SQLAlchemy 2.1, but the engine events it listens
            # to are unchanged in 2.1 (tests/test_tracing.py sees the spans); without the
            # skip it would log an error and trace nothing.
            engines = [engine.sync_engine]
            if database.sqlite_writer is not None:
                engines.append(database.sqlite_writer.engine)
            sqlalchemy.instrument(engines=engines, tracer_provider=self.provider, skip_dep_check=True)
            self._instrumentors.append(sqlalchemy)
        else:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

            asyncpg = AsyncPGInstrumentor()
            asyncpg.instrument(tracer_provider=self.provider, raise_exception_on_conflict=True)
            self._instrumentors.append(asyncpg)

    @property
    def observer(self) -> SpanObserver:
        return SpanObserver()

    def shutdown(self) -> None:
        """Undoes the instrumentation and exports what is still buffered."""
        for instrumentor in reversed(self._instrumentors):
            instrumentor.uninstrument()
        self._instrumentors.clear()
        self.provider.shutdown()


def _traced(details: grpc.HandlerCallDetails) -> bool:
    """Whether a call gets a span: not for UNTRACED_SERVICES. (The library's own filters
    do the same with several isinstance checks and path normalizations per call.)"""
    return details.method.split("/", 2)[1] not in UNTRACED_SERVICES


def tracing_from_environment(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """This process's tracing as the OTEL_* variables ask, or None (off: nothing imported).
    Raises TracingConfigError for an exporter that is not installed."""
    if not tracing_requested(environ):
        return None
    return Tracing.with_exporters(*(_exporter(name) for name in exporter_names(environ)))


class SpanObserver:
    """Writes a SetState call's orchestration onto the call's span (the current one, which
    the gRPC interceptor started). Called by the orchestration interceptor only when
    tracing is on."""

    def proposed(self, run_id: str, proposed: State, force: bool) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    SpanAttributes.RUN_ID: run_id,
                    SpanAttributes.PROPOSED_TYPE: proposed.type.value,
                    SpanAttributes.FORCE: force,
                }
            )

    def committed(self, result: TransitionResult) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute(SpanAttributes.STATUS, result.status.value)
        if result.rule is not None:
            span.set_attribute(SpanAttributes.RULE, result.rule)
        if result.state is not None:
            span.set_attribute(SpanAttributes.RESULT_TYPE, result.state.type.value)
