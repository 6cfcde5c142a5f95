"""Builds the grpc.aio server: interceptors, servicers, health and reflection."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flowrun.server import metrics
from flowrun.server.auth import AuthInterceptor, authenticator_from_settings
from flowrun.server.cancellation import CancellationShieldInterceptor
from flowrun.server.config import Settings
from flowrun.server.db.engine import create_engine
from flowrun.server.db.migrate import migrate
from flowrun.server.db.unit_of_work import Database
from flowrun.server.error_mapping import ErrorMappingInterceptor
from flowrun.server.health import LIVENESS_SERVICE, DatabaseHealth
from flowrun.server.interceptor_chain import PerMethodChain
from flowrun.server.lease_reaper import LeaseReaper
from flowrun.server.liveness import Sweeper, sweepers
from flowrun.server.metrics_export import PoolSampler
from flowrun.server.observability import ObservabilityInterceptor
from flowrun.server.orchestration.interceptor import OrchestratedMethod, OrchestrationInterceptor
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.task_runs import TASK_RUNS
from flowrun.server.periodic import Periodic
from flowrun.server.reflection import enable_reflection
from flowrun.server.services import from_proto
from flowrun.server.services.deployments import DeploymentService
from flowrun.server.services.flow_runs import FlowRunService
from flowrun.server.services.flows import FlowService
from flowrun.server.services.task_runs import TaskRunService
from flowrun.server.services.watch import PreEncodedResponses
from flowrun.server.services.work_pools import WorkPoolService
from flowrun.server.services.write_size import WriteBudgetInterceptor
from flowrun.server.shared_secrets import resolve_page_token_secret
from flowrun.server.tls import ServerCertificates, server_certificates
from flowrun.server.tracing import Tracing, tracing_from_environment
from flowrun.server.watch.hub import EventHub
from flowrun.server.watch.retention import event_pruner
from flowrun.v1 import (
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    flow_run_service_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
    work_pool_service_pb2,
    work_pool_service_pb2_grpc,
)

log = logging.getLogger("flowrun.server")

FLOWRUN_SERVICES = (
    flow_service_pb2.DESCRIPTOR.services_by_name["FlowService"].full_name,
    flow_run_service_pb2.DESCRIPTOR.services_by_name["FlowRunService"].full_name,
    task_run_service_pb2.DESCRIPTOR.services_by_name["TaskRunService"].full_name,
    deployment_service_pb2.DESCRIPTOR.services_by_name["DeploymentService"].full_name,
    work_pool_service_pb2.DESCRIPTOR.services_by_name["WorkPoolService"].full_name,
)


def orchestrated_methods() -> dict[str, OrchestratedMethod]:
    """The SetState methods whose transaction, lock and policy the orchestration
    interceptor provides, by full method path."""
    flow_runs = flow_run_service_pb2.DESCRIPTOR.services_by_name["FlowRunService"].full_name
    task_runs = task_run_service_pb2.DESCRIPTOR.services_by_name["TaskRunService"].full_name
    decode = from_proto.set_state_request
    return {
        f"/{flow_runs}/SetFlowRunState": OrchestratedMethod(FLOW_RUNS, decode),
        f"/{task_runs}/SetTaskRunState": OrchestratedMethod(
            TASK_RUNS, functools.partial(decode, id_field="task_run_id")
        ),
    }


def server_options(settings: Settings, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Explicit transport settings; nothing relies on gRPC's silent defaults. Clients may
    ping every min_client_ping_interval_ms even without calls in flight, so idle
    keepalive pings never earn a GOAWAY "too_many_pings". SO_REUSEPORT stays off unless
    this process is one of several workers sharing the port (server/workers.py): with it
    on, a second server started on a busy port would silently share it.

    Memory for readers that stop reading: a response is queued whole in the server until
    the peer's HTTP/2 window lets it out, so what bounds it is the response size
    (max_response_bytes; List pages are cut to fit) times the calls in flight
    (max_streams_per_connection per connection if set, max_concurrent_rpcs in all). HTTP/2
    flow-control options (lookahead, BDP probing, write buffer) only govern what the
    server reads or batches and measured no difference (bench/slow_readers.py)."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.send_limit_bytes),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", settings.min_client_ping_interval_ms),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.so_reuseport", int(reuse_port)),
    ]
    if settings.max_streams_per_connection:
        options.append(("grpc.max_concurrent_streams", settings.max_streams_per_connection))
    if settings.max_connection_age_ms:
        options += [
            ("grpc.max_connection_age_ms", settings.max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", int(settings.shutdown_grace_seconds * 1000)),
        ]
    return options


@dataclass
class App:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    database: Database
    settings: Settings
    reaper: LeaseReaper
    monitor: DatabaseHealth
    # TLS on the port (None: plaintext); .mutual: clients present certificates (mTLS).
    tls: ServerCertificates | None = None
    # The liveness sweeps FLOWRUN_SERVICES switches on (server/liveness/).
    liveness: list[Sweeper] = field(default_factory=list)
    # OpenTelemetry (server/tracing.py); None when the OTEL_* variables leave it off.
    tracing: Tracing | None = None
    # Copies the pool's counters into the metrics (server/metrics_export.py) when they are on.
    pool_sampler: PoolSampler | None = None
    # Wakes watch streams (server/watch/hub.py) and deletes events past retention.
    hub: EventHub | None = None
    pruner: Periodic | None = None

    def reload_certificates(self) -> None:
        """SIGHUP: re-read the TLS files now (they are also re-read when they change)."""
        if self.tls is not None:
            self.tls.reload()

    async def start(self) -> None:
        """Starts serving, then reports SERVING once the database answers; from then on
        health follows the database (server/health.py)."""
        await self.server.start()
        await self.database.ping()
        await self.monitor.publish(health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self.monitor.start()
        self.reaper.start()
        for sweeper in self.liveness:
            sweeper.start()
        if self.pool_sampler is not None:
            self.pool_sampler.start()
        if self.hub is not None:
            await self.hub.start()
        if self.pruner is not None:
            self.pruner.start()
        transport = "plaintext" if self.tls is None else "mTLS" if self.tls.mutual else "TLS"
        log.info("flowrun listening on %s:%d (%s)", self.settings.host, self.port, transport)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first, so load balancers stop sending; then drain; then close.

        The drain has one budget, `grace` (default FLOWRUN_SHUTDOWN_GRACE_SECONDS): at once
        gRPC stops taking new calls and gives the calls in flight the grace, and every
        watch stream is told to end, which each does with its UNAVAILABLE and a cursor
        between two messages (usually within milliseconds; gRPC cancels only what is
        still running when the grace runs out). Both at once, not one after the other: a
        watcher that stopped reading would otherwise hold the stop for the whole grace
        while new calls were still taken, then cancelled without any grace."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.monitor.stop()
        await self.reaper.stop()
        for sweeper in self.liveness:
            await sweeper.stop()
        if self.pool_sampler is not None:
            await self.pool_sampler.stop()
        if self.pruner is not None:
            await self.pruner.stop()
        # Watch streams end (UNAVAILABLE, with their cursor) while gRPC drains.
        streams_ended = asyncio.ensure_future(self.hub.close(grace)) if self.hub is not None else None
        await self.server.stop(grace)
        if streams_ended is not None:
            await streams_ended
        await self.database.dispose()
        if self.tracing is not None:
            self.tracing.shutdown()


async def build_app(settings: Settings, *, reuse_port: bool = False, tracing: Tracing | None = None) -> App:
    """The server, not yet started. `tracing`: this process's tracing; by default what
    the OTEL_* variables ask for (usually none)."""
    tls = server_certificates(settings)  # first: raises TlsError on incomplete settings or bad files
    authenticator = authenticator_from_settings(settings)  # raises on a bad tokens file; warns when open
    database = Database(create_engine(settings))
    if settings.migrate_on_start:
        await migrate(database)
    # No built-in signing key: unless configured, the one kept in the database.
    settings = await resolve_page_token_secret(database, settings)
    tracing = tracing or tracing_from_environment()
    if tracing is not None:
        tracing.instrument(database)
    server = grpc.aio.server(
        # First is outermost: no call runs before its caller is known (and audited), and
        # errors see everything the orchestration step raises. The tracing interceptor,
        # when on, is outside them all: every call's span holds all its work.
        # flowrun's own interceptors run as one PerMethodChain: their wrapped handlers are
        # built on a method's first call, so a call pays one lookup, not one interceptor
        # each (server/interceptor_chain.py). Tracing starts a span per call: not in it.
        interceptors=[
            *([tracing.server_interceptor()] if tracing else []),
            PerMethodChain(
                [
                    *observability_interceptors(settings),
                    AuthInterceptor(authenticator),
                    CancellationShieldInterceptor(),
                    ErrorMappingInterceptor(),
                    WriteBudgetInterceptor(settings.write_max_bytes),  # before a SetState request is decoded
                    OrchestrationInterceptor(
                        database,
                        settings,
                        orchestrated_methods(),
                        observer=tracing.observer if tracing else None,
                    ),
                    PreEncodedResponses(),  # innermost: Watch responses may be bytes encoded once for all streams
                ]
            ),
        ],
        options=server_options(settings, reuse_port=reuse_port),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    flow_service_pb2_grpc.add_FlowServiceServicer_to_server(FlowService(database, settings), server)
    hub = EventHub(database, settings)
    flow_run_service_pb2_grpc.add_FlowRunServiceServicer_to_server(FlowRunService(database, settings, hub), server)
    task_run_service_pb2_grpc.add_TaskRunServiceServicer_to_server(TaskRunService(database, settings), server)
    deployment_service_pb2_grpc.add_DeploymentServiceServicer_to_server(DeploymentService(database, settings), server)
    work_pool_service_pb2_grpc.add_WorkPoolServiceServicer_to_server(WorkPoolService(database, settings), server)
    health_servicer = health.aio.HealthServicer()
    for name in ("", *FLOWRUN_SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        enable_reflection((*FLOWRUN_SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    address = f"{settings.host}:{settings.port}"
    port = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    reaper = LeaseReaper(database, settings.lease_reap_interval_seconds)
    monitor = DatabaseHealth(health_servicer, database, ("", *FLOWRUN_SERVICES), settings.health_check_interval_seconds)
    return App(
        server=server,
        port=port,
        health=health_servicer,
        database=database,
        settings=settings,
        reaper=reaper,
        monitor=monitor,
        liveness=sweepers(database, settings),
        pool_sampler=PoolSampler(database) if settings.metrics_port is not None else None,
        hub=hub,
        pruner=event_pruner(database, settings),
        tls=tls,
        tracing=tracing,
    )


def observability_interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """Per-RPC metrics and the call's identity for JSON log lines (server/observability.py),
    just inside tracing: none at all when both are off, so they cost nothing then."""
    if settings.metrics_port is not None:
        metrics.enable()
    record_metrics, bind_calls = settings.metrics_port is not None, settings.log_format == "json"
    if not (record_metrics or bind_calls):
        return []
    return [ObservabilityInterceptor(record_metrics=record_metrics, bind_calls=bind_calls)]


def run(main: Coroutine[object, object, None]) -> None:
    """Runs a process's event loop: uvloop when it is installed (faster), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
