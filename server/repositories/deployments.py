"""Deployments: strict creation by (flow, name), reads with their active slot count,
filtered pages and deletes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select

from flowrun.server import errors
from flowrun.server.db.dialect import binary_order
from flowrun.server.db.tables import concurrency_lease, deployment, flow, work_pool, work_queue
from flowrun.server.domain.deployments import CollisionStrategy, Deployment, DeploymentCreate
from flowrun.server.domain.filters import DeploymentFilter, PageRequest, fingerprint
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.filters import deployment_where
from flowrun.server.repositories.paging import SortKey, fetch_page

QUEUE_NAME = "current_queue_name"
POOL_NAME = "current_pool_name"
ACTIVE_SLOTS = "active_slots"

SORT_KEY = SortKey("deployment:NAME_ASC", binary_order(deployment.c.name), deployment.c.id, False)


def _deployments(now: datetime) -> Select:
    """Deployments with their queue's and pool's names and their live leases counted."""
    active_slots = (
        select(func.count())
        .select_from(concurrency_lease)
        .where(concurrency_lease.c.deployment_id == deployment.c.id, concurrency_lease.c.expiration >= now)
        .scalar_subquery()
    )
    return select(
        deployment,
        work_queue.c.name.label(QUEUE_NAME),
        work_pool.c.name.label(POOL_NAME),
        active_slots.label(ACTIVE_SLOTS),
    ).select_from(
        deployment.outerjoin(work_queue, work_queue.c.id == deployment.c.work_queue_id).outerjoin(
            work_pool, work_pool.c.id == work_queue.c.work_pool_id
        )
    )


def deployment_from_row(row: Any) -> Deployment:
    m = row._mapping
    queued = m[QUEUE_NAME] is not None
    return Deployment(
        id=m["id"],
        created=m["created"],
        updated=m["updated"],
        name=m["name"],
        flow_id=m["flow_id"],
        version=m["version"],
        work_queue_name=m[QUEUE_NAME] if queued else m["work_queue_name"],
        work_queue_id=m["work_queue_id"],
        work_pool_name=m[POOL_NAME],
        paused=m["paused"],
        tags=list(m["tags"] or []),
        labels=m["labels"],
        parameters=m["parameters"] or {},
        job_variables=m["job_variables"] or {},
        concurrency_limit=m["concurrency_limit"],
        collision_strategy=CollisionStrategy(m["collision_strategy"]),
        grace_period_seconds=m["grace_period_seconds"],
        active_slots=m[ACTIVE_SLOTS],
        heartbeat_timeout_seconds=m["heartbeat_timeout_seconds"],
    )


class DeploymentRepository(Repository):
    async def create(
        self,
        new: DeploymentCreate,
        now: datetime,
        *,
        work_queue_id: str | None = None,
        work_queue_name: str | None = None,
    ) -> Deployment:
        """Inserts the deployment on `work_queue_id` / `work_queue_name` (resolved by the
        caller). The unique (flow_id, name) decides: INSERT ... ON CONFLICT DO NOTHING,
        and no row back means ALREADY_EXISTS. The flow row is FOR KEY SHARE locked, as
        the foreign key check would, so a missing flow is NOT_FOUND, never a violation."""
        locked = self.dialect.lock_for_key_share(select(flow.c.id).where(flow.c.id == new.flow_id), flow)
        if (await self.connection.execute(locked)).first() is None:
            raise errors.flow_not_found(new.flow_id)
        insert = (
            self.dialect.insert(deployment)
            .values(
                id=str(uuid.uuid4()),
                created=now,
                updated=now,
                name=new.name,
                flow_id=new.flow_id,
                version=new.version,
                work_queue_name=work_queue_name,
                work_queue_id=work_queue_id,
                paused=new.paused,
                tags=new.tags,
                labels=new.labels,
                parameters=new.parameters,
                job_variables=new.job_variables,
                concurrency_limit=new.concurrency_limit,
                collision_strategy=new.collision_strategy.value,
                grace_period_seconds=new.grace_period_seconds,
                heartbeat_timeout_seconds=new.heartbeat_timeout_seconds,
            )
            .on_conflict_do_nothing(index_elements=["flow_id", "name"])
            .returning(deployment.c.id)
        )
        row = (await self.connection.execute(insert)).first()
        if row is None:
            raise errors.AlreadyExists(
                f"Deployment {new.name!r} of flow {new.flow_id} already exists",
                metadata={"flow_id": new.flow_id, "name": new.name},
            )
        created = await self.get(row.id, now)
        if created is None:  # not expected (our own insert): retriable, never an assert
            raise errors.Conflict("The deployment changed concurrently; retry")
        return created

    async def get(self, deployment_id: str, now: datetime) -> Deployment | None:
        row = (await self.connection.execute(_deployments(now).where(deployment.c.id == deployment_id))).first()
        return deployment_from_row(row) if row else None

    async def list_page(
        self, deployment_filter: DeploymentFilter | None, page: PageRequest, now: datetime, *, secret: str
    ) -> tuple[list[Deployment], str]:
        query = _deployments(now).where(deployment_where(self.dialect, deployment_filter))
        rows, token = await fetch_page(
            self.connection,
            query,
            SORT_KEY,
            page,
            secret=secret,
            fingerprint=fingerprint("deployments", deployment_filter),
        )
        return [deployment_from_row(row) for row in rows], token

    async def delete(self, deployment_id: str) -> bool:
        """Deletes the deployment; its leases go by ON DELETE CASCADE. Its runs stay:
        flow_run.deployment_id has no foreign key."""
        statement = delete(deployment).where(deployment.c.id == deployment_id).returning(deployment.c.id)
        return (await self.connection.execute(statement)).first() is not None
