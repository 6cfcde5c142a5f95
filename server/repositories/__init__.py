"""Repositories: one module per aggregate; all SQL lives here and in server/db."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.dialect import Dialect
from server.repositories.concurrency_leases import ConcurrencyLeaseRepository
from server.repositories.deployments import DeploymentRepository
from server.repositories.flow_run_states import FlowRunStateRepository
from server.repositories.flow_runs import FlowRunRepository
from server.repositories.flows import FlowRepository
from server.repositories.graphs import GraphRepository
from server.repositories.task_runs import TaskRunRepository
from server.repositories.work_pools import WorkPoolRepository


class Repositories:
    """The repositories bound to one unit of work's connection."""

    def __init__(self, connection: AsyncConnection, dialect: Dialect) -> None:
        self.flows = FlowRepository(connection, dialect)
        self.flow_runs = FlowRunRepository(connection, dialect)
        self.states = FlowRunStateRepository(connection, dialect)
        self.task_runs = TaskRunRepository(connection, dialect)
        self.graphs = GraphRepository(connection, dialect)
        self.deployments = DeploymentRepository(connection, dialect)
        self.work_pools = WorkPoolRepository(connection, dialect)
        self.leases = ConcurrencyLeaseRepository(connection, dialect)
