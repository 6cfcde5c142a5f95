"""Serving the metrics of server/metrics.py on FLOWRUN_METRICS_PORT (/metrics), and the
values read rather than counted: the connection pool (sampled every second in each
process) and the deployment concurrency slots (read from the database at scrape time).

One process (`--workers 1`): the process serves its own registry, with the library's
process and Python collectors. Several (`--workers N`): the supervisor serves, from the
per-process files of prometheus-client's multiprocess mode, the sum over its workers
(server/workers.py sets the directory up and marks dead workers); the library has no
process_* metrics for that mode.

Slots are per deployment, so their label set grows with the deployments: the
FLOWRUN_METRICS_MAX_DEPLOYMENTS deployments with the most active leases get series of
their own, and every other limited deployment is summed into deployment="other"."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from flowrun.server import clock, metrics
from flowrun.server.config import Settings
from flowrun.server.db.engine import create_engine
from flowrun.server.db.unit_of_work import Database
from flowrun.server.periodic import Periodic
from flowrun.server.repositories.concurrency_leases import SlotUsage

log = logging.getLogger("flowrun.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL_SAMPLE_SECONDS = 1.0
SLOT_QUERY_TIMEOUT_SECONDS = 5.0
OTHER = "other"


class MetricsError(Exception):
    """The metrics port cannot be served (taken, or not ours to bind)."""


class PoolSampler:
    """Copies the pool's public counters (size, checked out, overflow) and the units of
    work waiting for a connection into their gauges every POOL_SAMPLE_SECONDS."""

    def __init__(self, database: Database, interval: float = POOL_SAMPLE_SECONDS) -> None:
        self._database = database
        self._loop = Periodic("flowrun-pool-metrics", interval, self._sample)

    async def _sample(self) -> None:
        self.sample()

    def sample(self) -> None:
        pool = self._database.engine.pool
        for gauge, read in (
            (metrics.DB_POOL_SIZE, "size"),
            (metrics.DB_POOL_CHECKED_OUT, "checkedout"),
            (metrics.DB_POOL_OVERFLOW, "overflow"),
        ):
            value = getattr(pool, read, None)
            if value is not None:
                gauge.set(value())
        metrics.DB_POOL_WAITING.set(self._database.waiting)

    def start(self) -> None:
        self.sample()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


class SlotCollector(Collector):
    """flowrun_deployment_slots_active / _limit, read at scrape time so they are exact and
    never stale, whichever process serves the scrape. The read runs on an event loop of
    the collector's own (a thread started at the first scrape) over one connection kept
    between scrapes: nothing runs between scrapes, and a scrape costs one query, not a
    new engine (which, measured on SQLite under load, cost more than all the rest)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
        self._top = settings.metrics_max_deployments
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._database: Database | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="flowrun-slot-metrics", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Closes the connection and stops the loop (if a scrape ever started them)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._dispose(), loop).result(SLOT_QUERY_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(SLOT_QUERY_TIMEOUT_SECONDS)
        if not thread.is_alive():
            loop.close()

    async def _dispose(self) -> None:
        database, self._database = self._database, None
        if database is not None:
            await database.dispose()

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        labels = ["deployment", "name"]
        return (
            GaugeMetricFamily(
                "flowrun_deployment_slots_active",
                "Unexpired concurrency leases (slots in use) of a limited deployment; the deployments "
                'beyond FLOWRUN_METRICS_MAX_DEPLOYMENTS are summed into deployment="other".',
                labels=labels,
            ),
            GaugeMetricFamily(
                "flowrun_deployment_slots_limit",
                'The concurrency limit of a limited deployment (summed for deployment="other").',
                labels=labels,
            ),
        )

    def collect(self) -> Iterator[Metric]:
        try:
            future = asyncio.run_coroutine_threadsafe(self._read(), self._running_loop())
            usage = future.result(SLOT_QUERY_TIMEOUT_SECONDS + 1)
        except Exception as exc:  # no slot series this scrape; the rest is still served
            log.warning("reading deployment slots for metrics failed: %r", exc)
            return
        active, limit = self._families()
        for row in usage.top:
            active.add_metric([row.deployment_id, row.name], row.active)
            limit.add_metric([row.deployment_id, row.name], row.limit)
        if usage.other_deployments:
            active.add_metric([OTHER, OTHER], usage.other_active)
            limit.add_metric([OTHER, OTHER], usage.other_limit)
        yield active
        yield limit

    async def _read(self) -> SlotSummary:
        if self._database is None:
            self._database = Database(create_engine(self._settings))
        async with asyncio.timeout(SLOT_QUERY_TIMEOUT_SECONDS):
            async with self._database.unit_of_work(write=False) as uow:
                top = await uow.repos.leases.slot_usage(clock.now(), self._top)
                count, limit, active = await uow.repos.leases.slot_totals(clock.now())
        return SlotSummary(
            top=top,
            other_deployments=count - len(top),
            other_limit=limit - sum(row.limit for row in top),
            other_active=active - sum(row.active for row in top),
        )


@dataclass(frozen=True)
class SlotSummary:
    """The busiest limited deployments, and the rest summed."""

    top: list[SlotUsage]
    other_deployments: int
    other_limit: int
    other_active: int


class _Registry(Collector):
    """Another registry's metrics, as one collector of the registry being served."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class MetricsEndpoint:
    """The HTTP server of /metrics (prometheus-client's, in a daemon thread)."""

    def __init__(self, settings: Settings, *, multiprocess_dir: str | None = None) -> None:
        assert settings.metrics_port is not None, "metrics are off"
        registry = CollectorRegistry(auto_describe=False)
        if multiprocess_dir is None:
            registry.register(_Registry(REGISTRY))  # this process's metrics and the library's defaults
        else:
            MultiProcessCollector(registry, path=multiprocess_dir)
        self._slots = SlotCollector(settings)
        registry.register(self._slots)
        self.registry = registry
        self._server: WSGIServer
        try:
            self._server, self._thread = start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {exc}") from exc
        self.port: int = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", settings.host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._slots.close()


class MultiprocessMetrics:
    """The supervisor's side of metrics with --workers N: a fresh directory for the
    workers' value files, announced in the environment the workers inherit (it must be
    set before prometheus-client is imported in them: they are fresh interpreters), the
    endpoint that sums them, and cleaning up after workers and itself."""

    def __init__(self, settings: Settings) -> None:
        self.directory = tempfile.mkdtemp(prefix="flowrun-metrics-")
        self._previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = self.directory
        try:
            self.endpoint = MetricsEndpoint(settings, multiprocess_dir=self.directory)
        except BaseException:
            self._restore()
            raise

    def worker_exited(self, pid: int | None) -> None:
        """Drops a dead worker's live gauges (its counters keep counting in the sum)."""
        if pid is not None:
            mark_process_dead(pid, self.directory)

    def close(self) -> None:
        self.endpoint.stop()
        self._restore()

    def _restore(self) -> None:
        if self._previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._previous
        shutil.rmtree(self.directory, ignore_errors=True)
