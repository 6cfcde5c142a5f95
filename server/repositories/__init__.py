"""Repositories: one module per aggregate; all SQL lives here and in server/db."""

from __future__ import annotations

from functools import cached_property

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.dialect import Dialect
from server.repositories.concurrency_leases import ConcurrencyLeaseRepository
from server.repositories.deployments import DeploymentRepository
from server.repositories.flow_run_events import FlowRunEventRepository
from server.repositories.flow_run_states import FlowRunStateRepository
from server.repositories.flow_runs import FlowRunRepository
from server.repositories.flows import FlowRepository
from server.repositories.graphs import GraphRepository
from server.repositories.liveness import LivenessRepository
from server.repositories.server_secrets import ServerSecretRepository
from server.repositories.task_runs import TaskRunRepository
from server.repositories.work_pools import WorkPoolRepository


class Repositories:
    """The repositories bound to one unit of work's connection, made on first use (a
    SetState touches two of them; building all of them per call would be waste)."""

    def __init__(self, connection: AsyncConnection, dialect: Dialect, driver: asyncpg.Connection | None) -> None:
        self._connection = connection
        self._dialect = dialect
        self._driver = driver

    @cached_property
    def flows(self) -> FlowRepository:
        return FlowRepository(self._connection, self._dialect)

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
