"""Deployment concurrency slots as lease rows.

A deployment's active slots are its unexpired leases. Taking a slot counts them under
the deployment's row lock (FOR UPDATE on PostgreSQL; the IMMEDIATE transaction on
SQLite) and inserts a lease in the same transaction, so concurrent runs on any number
of replicas can never exceed the limit, and there is no counter that could drift or go
negative. Releasing deletes the run's lease; an expired lease frees its slot by itself
and is garbage-collected by the reaper."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, desc, func, select, update

from flowrun.server.db.tables import concurrency_lease, deployment
from flowrun.server.domain.deployments import CollisionStrategy, LeaseRenewal
from flowrun.server.repositories.base import Repository


@dataclass(frozen=True, slots=True)
class SlotPolicy:
    """What orchestration needs to know about a deployment's limit."""

    limit: int | None
    collision_strategy: CollisionStrategy
    grace_period_seconds: int | None

    def lease_seconds(self, default: int) -> int:
        return self.grace_period_seconds or default


@dataclass(frozen=True, slots=True)
class SlotUsage:
    """A limited deployment's slots in use (its unexpired leases), for metrics."""

    deployment_id: str
    name: str
    limit: int
    active: int


class ConcurrencyLeaseRepository(Repository):
    def _usage(self, now: datetime):
        active = (
            select(concurrency_lease.c.deployment_id, func.count().label("active"))
            .where(concurrency_lease.c.expiration >= now)
            .group_by(concurrency_lease.c.deployment_id)
            .subquery()
        )
        return active, deployment.outerjoin(active, active.c.deployment_id == deployment.c.id)

    async def slot_usage(self, now: datetime, top: int) -> list[SlotUsage]:
        """The `top` limited deployments with the most slots in use (ties by id)."""
        active, joined = self._usage(now)
        in_use = func.coalesce(active.c.active, 0).label("in_use")
        query = (
            select(deployment.c.id, deployment.c.name, deployment.c.concurrency_limit, in_use)
            .select_from(joined)
            .where(deployment.c.concurrency_limit.is_not(None))
            .order_by(desc(in_use), deployment.c.id)
            .limit(top)
        )
        rows = (await self.connection.execute(query)).all()
        return [SlotUsage(str(row.id), row.name, row.concurrency_limit, row.in_use) for row in rows]

    async def slot_totals(self, now: datetime) -> tuple[int, int, int]:
        """(limited deployments, their limits summed, their slots in use summed)."""
        active, joined = self._usage(now)
        query = (
            select(
                func.count(),
                func.coalesce(func.sum(deployment.c.concurrency_limit), 0),
                func.coalesce(func.sum(active.c.active), 0),
            )
            .select_from(joined)
            .where(deployment.c.concurrency_limit.is_not(None))
        )
        count, limit, in_use = (await self.connection.execute(query)).one()
        return int(count), int(limit), int(in_use)

    async def slot_policy(self, deployment_id: str, *, lock: bool) -> SlotPolicy | None:
        """The deployment's limit; with `lock`, its row stays locked until commit so that
        counting and taking a slot are one atomic step."""
        query = select(
            deployment.c.concurrency_limit, deployment.c.collision_strategy, deployment.c.grace_period_seconds
        ).where(deployment.c.id == deployment_id)
        if lock:
            query = self.dialect.lock_for_update(query)
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        return SlotPolicy(row.concurrency_limit, CollisionStrategy(row.collision_strategy), row.grace_period_seconds)

    async def active_slots(self, deployment_id: str, now: datetime) -> int:
        """The deployment's slots held by live leases."""
        active = select(func.count()).where(
            concurrency_lease.c.deployment_id == deployment_id, concurrency_lease.c.expiration >= now
        )
        return (await self.connection.execute(active)).scalar_one()

    async def try_acquire(
        self, deployment_id: str, limit: int, flow_run_id: str, now: datetime, ttl_seconds: int
    ) -> str | None:
        """A new lease id, or None when all `limit` slots are held. Call with the
        deployment locked (slot_policy(lock=True))."""
        active = select(func.count()).where(
            concurrency_lease.c.deployment_id == deployment_id, concurrency_lease.c.expiration >= now
        )
        if (await self.connection.execute(active)).scalar_one() >= limit:
            return None
        lease_id = str(uuid.uuid4())
        await self.connection.execute(
            concurrency_lease.insert().values(
                id=lease_id,
                created=now,
                deployment_id=deployment_id,
                flow_run_id=flow_run_id,
                expiration=now + timedelta(seconds=ttl_seconds),
            )
        )
        return lease_id

    async def renew(self, lease_id: str, flow_run_id: str, now: datetime, ttl_seconds: int) -> bool:
        """Extends the run's lease if it is still live."""
        return await self._extend(lease_id, now, now + timedelta(seconds=ttl_seconds), flow_run_id=flow_run_id)

    async def renew_by_id(self, lease_id: str, now: datetime, default_seconds: int) -> LeaseRenewal | None:
        """Extends a live lease by its deployment's grace period (default_seconds when it
        sets none), for the client that holds it. None when it expired or was released:
        the conditional UPDATE, not the read before it, decides."""
        query = (
            select(deployment.c.grace_period_seconds)
            .select_from(concurrency_lease.join(deployment, deployment.c.id == concurrency_lease.c.deployment_id))
            .where(concurrency_lease.c.id == lease_id)
        )
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        ttl_seconds = row.grace_period_seconds or default_seconds
        expiration = now + timedelta(seconds=ttl_seconds)
        if not await self._extend(lease_id, now, expiration):
            return None
        return LeaseRenewal(lease_id=lease_id, expiration=expiration, ttl_seconds=ttl_seconds)

    async def _extend(self, lease_id: str, now: datetime, expiration: datetime, flow_run_id: str | None = None) -> bool:
        conditions = [concurrency_lease.c.id == lease_id, concurrency_lease.c.expiration >= now]
        if flow_run_id is not None:
            conditions.append(concurrency_lease.c.flow_run_id == flow_run_id)
        statement = (
            update(concurrency_lease).where(*conditions).values(expiration=expiration).returning(concurrency_lease.c.id)
        )
        return (await self.connection.execute(statement)).first() is not None

    async def release(self, lease_id: str, flow_run_id: str) -> bool:
        """Deletes one lease of the run; False when it holds no such lease."""
        statement = (
            delete(concurrency_lease)
            .where(concurrency_lease.c.id == lease_id, concurrency_lease.c.flow_run_id == flow_run_id)
            .returning(concurrency_lease.c.id)
        )
        return (await self.connection.execute(statement)).first() is not None

    async def release_all(self, flow_run_id: str) -> int:
        """Deletes every lease the run holds; the number released (0 when it held none)."""
        statement = delete(concurrency_lease).where(concurrency_lease.c.flow_run_id == flow_run_id)
        return (await self.connection.execute(statement.returning(concurrency_lease.c.id))).rowcount or 0

    async def delete_expired(self, now: datetime, batch: int) -> int:
        """Garbage-collects up to `batch` expired leases (their slots are already free)."""
        expired = select(concurrency_lease.c.id).where(concurrency_lease.c.expiration < now).limit(batch)
        statement = delete(concurrency_lease).where(concurrency_lease.c.id.in_(expired))
        result = await self.connection.execute(statement)
        return result.rowcount or 0
