"""Repositories: one module per aggregate; all SQL lives here and in server/db."""

from __future__ import annotations

from functools import cached_property

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from flowrun.server.db.dialect import Dialect
from flowrun.server.repositories.concurrency_leases import ConcurrencyLeaseRepository
from flowrun.server.repositories.deployments import DeploymentRepository
from flowrun.server.repositories.flow_run_events import FlowRunEventRepository
from flowrun.server.repositories.flow_run_states import FlowRunStateRepository
from flowrun.server.repositories.flow_runs import FlowRunRepository
from flowrun.server.repositories.flows import FlowRepository
from flowrun.server.repositories.graphs import GraphRepository
from flowrun.server.repositories.liveness import LivenessRepository
from flowrun.server.repositories.server_secrets import ServerSecretRepository
from flowrun.server.repositories.task_runs import TaskRunRepository
from flowrun.server.repositories.work_pools import WorkPoolRepository


class Repositories:
    """The repositories bound to one unit of work's connection, made on first use (a
    SetState touches two of them; building all of them per call would be waste)."""

    def __init__(self, connection: AsyncConnection, dialect: Dialect, driver: asyncpg.Connection | None) -> None:
        self._connection = connection
        self._dialect = dialect
        self._driver = driver

    @cached_property
    def flows(self) -> FlowRepository:
        return FlowRepository(self._connection, self._dialect, self._driver)

    @cached_property
    def flow_runs(self) -> FlowRunRepository:
        return FlowRunRepository(self._connection, self._dialect, self._driver)

    @cached_property
    def flow_run_events(self) -> FlowRunEventRepository:
        return FlowRunEventRepository(self._connection, self._dialect, self._driver)

    @cached_property
    def states(self) -> FlowRunStateRepository:
        return FlowRunStateRepository(self._connection, self._dialect)

    @cached_property
    def task_runs(self) -> TaskRunRepository:
        return TaskRunRepository(self._connection, self._dialect)

    @cached_property
    def graphs(self) -> GraphRepository:
        return GraphRepository(self._connection, self._dialect)

    @cached_property
    def deployments(self) -> DeploymentRepository:
        return DeploymentRepository(self._connection, self._dialect)

    @cached_property
    def work_pools(self) -> WorkPoolRepository:
        return WorkPoolRepository(self._connection, self._dialect)

    @cached_property
    def leases(self) -> ConcurrencyLeaseRepository:
        return ConcurrencyLeaseRepository(self._connection, self._dialect)

    @cached_property
    def liveness(self) -> LivenessRepository:
        return LivenessRepository(self._connection, self._dialect)

    @cached_property
    def server_secrets(self) -> ServerSecretRepository:
        return ServerSecretRepository(self._connection, self._dialect)
