"""grpc.health.v1 that follows the database: SERVING while it answers, NOT_SERVING while
it does not.

A load balancer or an orchestrator's readiness probe asks the health service which
replica may take calls. A replica whose database is gone answers every call with
UNAVAILABLE, so it must say so: the monitor pings the database every interval and sets
every service name to the outcome. Statuses change only when the outcome does, so a
Watch stream sees one message per change.

After `App.stop` entered graceful shutdown the servicer ignores every `set` (grpcio's
documented behaviour), and the monitor is stopped right after that, so nothing flips a
stopping server back to SERVING."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from grpc_health.v1 import health, health_pb2

from flowrun.server import metrics
from flowrun.server.periodic import Periodic

log = logging.getLogger("flowrun.health")

# The liveness probe's service name: SERVING from start until shutdown whatever the
# database does, so an orchestrator restarts a wedged process, not one whose database is
# away (readiness, service "", follows the database).
LIVENESS_SERVICE = "flowrun.liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Pingable(Protocol):
    async def ping(self) -> None: ...


class DatabaseHealth:
    """Pings `database` every `interval` seconds and publishes the outcome for `services`.

    A ping slower than the interval counts as failed: a database that slow is as good as
    gone for the callers. A failed ping is retried once at once, because the first query
    after a database restart fails on a pooled connection that died with it, and the
    retry gets a fresh one; only when both fail is the database reported unreachable."""

    def __init__(
        self, servicer: health.aio.HealthServicer, database: Pingable, services: Iterable[str], interval: float
    ) -> None:
        self.servicer = servicer
        self.database = database
        self.services = tuple(services)
        self.interval = interval
        self.status: int | None = None
        self._loop = Periodic("flowrun-health", interval, self.check)

    async def database_answers(self) -> bool:
        for attempt in range(2):
            try:
                async with asyncio.timeout(self.interval):
                    await self.database.ping()
            except Exception as exc:  # any failure to answer means the same: not serving
                if attempt:
                    log.warning("database health check failed: %r", exc)
            else:
                return True
        return False

    async def publish(self, status: int) -> None:
        if metrics.enabled:
            metrics.DATABASE_UP.set(1 if status == SERVING else 0)
        if status == self.status:
            return
        if self.status is not None:
            log.warning("health: %s", health_pb2.HealthCheckResponse.ServingStatus.Name(status))
        self.status = status
        for name in self.services:
            await self.servicer.set(name, status)

    async def check(self) -> None:
        """One check: ping, then publish SERVING or NOT_SERVING."""
        await self.publish(SERVING if await self.database_answers() else NOT_SERVING)

    def start(self) -> None:
        """Starts checking every interval; an unchanged outcome publishes nothing."""
        self._loop.start()

    @property
    def running(self) -> bool:
        return self._loop.running

    async def stop(self) -> None:
        await self._loop.stop()
