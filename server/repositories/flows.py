"""Flows: get-or-create by name, reads, tag updates and deletes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from flowrun.server import clock, errors
from flowrun.server.db.tables import flow, flow_run
from flowrun.server.domain.events import EventKind
from flowrun.server.domain.filters import FlowSort, ListFilters, PageRequest, fingerprint
from flowrun.server.domain.flows import Flow, FlowCreate
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.filters import flow_where
from flowrun.server.repositories.flow_run_events import FlowRunEventRepository
from flowrun.server.repositories.flow_runs import FlowRunRepository
from flowrun.server.repositories.paging import fetch_page, flow_sort_key


def flow_from_row(row: Any) -> Flow:
    return Flow(
        id=row.id,
        created=row.created,
        updated=row.updated,
        name=row.name,
        tags=list(row.tags or []),
        labels=row.labels,
    )


class FlowRepository(Repository):
    async def get_or_create(self, new: FlowCreate, now: datetime) -> tuple[Flow, bool]:
        """INSERT ... ON CONFLICT (name) DO NOTHING: the unique index, not a read before
        the write, decides who creates the flow."""
        insert = (
            self.dialect.insert(flow)
            .values(id=str(uuid.uuid4()), created=now, updated=now, name=new.name, tags=new.tags, labels=new.labels)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(*flow.c)
        )
        row = (await self.connection.execute(insert)).first()
        if row is not None:
            return flow_from_row(row), True
        existing = await self.get_by_name(new.name)
        if existing is None:  # the flow holding the name was deleted after our insert met it (READ COMMITTED)
            raise errors.Conflict("The flow of that name changed concurrently; retry")
        return existing, False

    async def get(self, flow_id: str) -> Flow | None:
        row = (await self.connection.execute(select(flow).where(flow.c.id == flow_id))).first()
        return flow_from_row(row) if row else None

    async def get_by_name(self, name: str) -> Flow | None:
        row = (await self.connection.execute(select(flow).where(flow.c.name == name))).first()
        return flow_from_row(row) if row else None

    async def list_page(
        self, filters: ListFilters, sort: FlowSort, page: PageRequest, *, secret: str
    ) -> tuple[list[Flow], str]:
        query = select(flow).where(flow_where(self.dialect, filters))
        rows, token = await fetch_page(
            self.connection,
            query,
            flow_sort_key(sort),
            page,
            secret=secret,
            fingerprint=fingerprint("flows", filters),
        )
        return [flow_from_row(row) for row in rows], token

    async def count(self, filters: ListFilters) -> int:
        query = select(func.count()).select_from(flow).where(flow_where(self.dialect, filters))
        return (await self.connection.execute(query)).scalar_one()

    async def update(self, flow_id: str, values: dict[str, Any], now: datetime) -> Flow | None:
        """Applies `values` (column -> value) and bumps `updated`, even when empty."""
        statement = update(flow).where(flow.c.id == flow_id).values(updated=now, **values).returning(*flow.c)
        row = (await self.connection.execute(statement)).first()
        return flow_from_row(row) if row else None

    async def delete(self, flow_id: str) -> bool:
        """Deletes the flow; its deployments (with their concurrency leases), runs and
        their states go by ON DELETE CASCADE."""
        return bool(await self.delete_many([flow_id]))

    async def delete_many(self, flow_ids: Sequence[str]) -> list[str]:
        """Deletes the flows that exist, with their deployments and runs (ON DELETE
        CASCADE), and returns their ids. Each run gets its DELETED event: the flows are
        locked first (no run can be added to them meanwhile), then their runs (in id
        order, as every locker of several runs does, so two deletes cannot deadlock; a
        state change holds one run at a time), and only then read: a change committed
        while the delete waited for a run's lock is in the run its event carries."""
        if not flow_ids:
            return []
        ids = sorted(set(flow_ids))
        await self.connection.execute(self.dialect.lock_for_update(select(flow.c.id).where(flow.c.id.in_(ids))))
        their_runs = select(flow_run.c.id).where(flow_run.c.flow_id.in_(ids)).order_by(flow_run.c.id)
        await self.connection.execute(self.dialect.lock_for_update(their_runs))
        runs = FlowRunRepository(self.connection, self.dialect, self.driver)
        doomed = await runs.of_flows(ids)
        statement = delete(flow).where(flow.c.id.in_(ids)).returning(flow.c.id)
        deleted = sorted(row.id for row in await self.connection.execute(statement))
        if doomed:
            await FlowRunEventRepository(self.connection, self.dialect, self.driver).append_many(
                EventKind.DELETED, doomed, clock.now()
            )
        return deleted

    async def get_labels(self, flow_id: str) -> tuple[bool, dict[str, Any] | None]:
        """(exists, labels)."""
        row = (await self.connection.execute(select(flow.c.labels).where(flow.c.id == flow_id))).first()
        if row is None:
            return False, None
        return True, row.labels
