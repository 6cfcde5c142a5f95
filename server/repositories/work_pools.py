"""Work pools and their work queues: strict creation by name, reads, filtered pages, and
deletes that take the deleted queues off the runs queued on them.

flow_run.work_queue_id has no foreign key, so two things keep it from dangling: whoever
puts a run on a queue holds a FOR KEY SHARE lock on the queue row until it commits, and
a delete removes the queue rows first (waiting for those locks) and then clears the
runs' work_queue_id in the same transaction, in a statement that sees every run committed
meanwhile. deployment.work_queue_id is cleared by its foreign key (ON DELETE SET NULL).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, String, and_, cast, delete, literal_column, select, update

from flowrun.server import errors
from flowrun.server.db.dialect import binary_order
from flowrun.server.db.tables import flow_run, work_pool, work_queue
from flowrun.server.domain.filters import PageRequest, WorkPoolFilter, WorkQueueFilter, fingerprint
from flowrun.server.domain.work_pools import (
    DEFAULT_QUEUE_NAME,
    HIGHEST_PRIORITY,
    WorkPool,
    WorkPoolCreate,
    WorkQueue,
    WorkQueueCreate,
)
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.filters import work_pool_where, work_queue_where
from flowrun.server.repositories.paging import SortKey, fetch_page

POOL_NAME = "current_pool_name"

POOL_SORT_KEY = SortKey("work_pool:NAME_ASC", binary_order(work_pool.c.name), work_pool.c.id, False)
# Queues by priority, then name, as one text key compared byte-wise: the priority as a
# fixed-width number (priority + 10**10 has 11 digits for every int32 priority >= 0),
# then the name.
QUEUE_SORT_KEY = SortKey(
    "work_queue:PRIORITY_NAME_ASC",
    binary_order(cast(work_queue.c.priority + literal_column(str(10**10), BigInteger), String) + work_queue.c.name),
    work_queue.c.id,
    False,
)


def work_pool_from_row(row: Any) -> WorkPool:
    m = row._mapping
    return WorkPool(
        id=m["id"],
        created=m["created"],
        updated=m["updated"],
        name=m["name"],
        type=m["type"],
        description=m["description"],
        is_paused=m["is_paused"],
        concurrency_limit=m["concurrency_limit"],
        default_queue_id=m["default_queue_id"],
    )


def work_queue_from_row(row: Any) -> WorkQueue:
    m = row._mapping
    return WorkQueue(
        id=m["id"],
        created=m["created"],
        updated=m["updated"],
        name=m["name"],
        work_pool_id=m["work_pool_id"],
        work_pool_name=m[POOL_NAME],
        priority=m["priority"],
        concurrency_limit=m["concurrency_limit"],
        is_paused=m["is_paused"],
        description=m["description"],
    )


def _queues_with_pool() -> Select:
    return select(work_queue, work_pool.c.name.label(POOL_NAME)).select_from(
        work_queue.join(work_pool, work_pool.c.id == work_queue.c.work_pool_id)
    )


class WorkPoolRepository(Repository):
    # -- pools ------------------------------------------------------------------------

    async def create(self, new: WorkPoolCreate, now: datetime) -> WorkPool:
        """Inserts the pool and its queue "default". The unique name decides:
        INSERT ... ON CONFLICT (name) DO NOTHING, and no row back means ALREADY_EXISTS."""
        pool_id, queue_id = str(uuid.uuid4()), str(uuid.uuid4())
        insert = (
            self.dialect.insert(work_pool)
            .values(
                id=pool_id,
                created=now,
                updated=now,
                name=new.name,
                type=new.type,
                description=new.description,
                is_paused=new.is_paused,
                concurrency_limit=new.concurrency_limit,
                default_queue_id=queue_id,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(*work_pool.c)
        )
        row = (await self.connection.execute(insert)).first()
        if row is None:
            raise errors.AlreadyExists(f"Work pool {new.name!r} already exists", metadata={"work_pool_name": new.name})
        await self.connection.execute(
            work_queue.insert().values(
                id=queue_id,
                created=now,
                updated=now,
                name=DEFAULT_QUEUE_NAME,
                work_pool_id=pool_id,
                priority=HIGHEST_PRIORITY,
                is_paused=False,
            )
        )
        return work_pool_from_row(row)

    async def get(self, name: str) -> WorkPool | None:
        row = (await self.connection.execute(select(work_pool).where(work_pool.c.name == name))).first()
        return work_pool_from_row(row) if row else None

    async def list_page(
        self, work_pool_filter: WorkPoolFilter | None, page: PageRequest, *, secret: str
    ) -> tuple[list[WorkPool], str]:
        query = select(work_pool).where(work_pool_where(work_pool_filter))
        rows, token = await fetch_page(
            self.connection,
            query,
            POOL_SORT_KEY,
            page,
            secret=secret,
            fingerprint=fingerprint("work_pools", work_pool_filter),
        )
        return [work_pool_from_row(row) for row in rows], token

    async def delete(self, name: str) -> bool:
        """Deletes the pool and its queues, and takes those queues off their runs. The
        pool row is locked first, so no queue can be added to it meanwhile."""
        locked = self.dialect.lock_for_update(select(work_pool.c.id).where(work_pool.c.name == name), work_pool)
        pool = (await self.connection.execute(locked)).first()
        if pool is None:
            return False
        deleted = delete(work_queue).where(work_queue.c.work_pool_id == pool.id).returning(work_queue.c.id)
        await self._clear_runs_queue([row.id for row in await self.connection.execute(deleted)])
        await self.connection.execute(delete(work_pool).where(work_pool.c.id == pool.id))
        return True

    # -- queues -----------------------------------------------------------------------

    async def create_queue(self, new: WorkQueueCreate, now: datetime) -> WorkQueue:
        """Inserts a queue into an existing pool. The unique (pool, name) decides:
        ON CONFLICT DO NOTHING, and no row back means ALREADY_EXISTS."""
        locked = self.dialect.lock_for_key_share(
            select(work_pool.c.id).where(work_pool.c.name == new.work_pool_name), work_pool
        )
        pool = (await self.connection.execute(locked)).first()
        if pool is None:
            raise errors.work_pool_not_found(new.work_pool_name)
        insert = (
            self.dialect.insert(work_queue)
            .values(
                id=str(uuid.uuid4()),
                created=now,
                updated=now,
                name=new.name,
                work_pool_id=pool.id,
                priority=new.priority,
                concurrency_limit=new.concurrency_limit,
                is_paused=new.is_paused,
                description=new.description,
            )
            .on_conflict_do_nothing(index_elements=["work_pool_id", "name"])
            .returning(work_queue.c.id)
        )
        row = (await self.connection.execute(insert)).first()
        if row is None:
            raise errors.AlreadyExists(
                f"Work queue {new.work_pool_name}/{new.name} already exists",
                metadata={"work_pool_name": new.work_pool_name, "work_queue_name": new.name},
            )
        queue = await self.get_queue(new.work_pool_name, new.name)
        if queue is None:  # not expected (our own insert): retriable, never an assert
            raise errors.Conflict("The work queue changed concurrently; retry")
        return queue

    async def get_queue(self, work_pool_name: str, name: str) -> WorkQueue:
        """The queue; NotFound naming the pool or the queue, whichever is missing."""
        query = _queues_with_pool().where(work_pool.c.name == work_pool_name, work_queue.c.name == name)
        row = (await self.connection.execute(query)).first()
        if row is None:
            raise await self._queue_not_found(work_pool_name, name)
        return work_queue_from_row(row)

    async def list_queues(
        self, work_pool_name: str, work_queue_filter: WorkQueueFilter | None, page: PageRequest, *, secret: str
    ) -> tuple[list[WorkQueue], str]:
        pool = await self.get(work_pool_name)
        if pool is None:
            raise errors.work_pool_not_found(work_pool_name)
        query = _queues_with_pool().where(work_queue.c.work_pool_id == pool.id, work_queue_where(work_queue_filter))
        rows, token = await fetch_page(
            self.connection,
            query,
            QUEUE_SORT_KEY,
            page,
            secret=secret,
            fingerprint=fingerprint("work_queues", pool.id, work_queue_filter),
        )
        return [work_queue_from_row(row) for row in rows], token

    async def delete_queue(self, work_pool_name: str, name: str) -> None:
        """Deletes a queue other than its pool's default and takes it off its runs."""
        query = (
            select(work_queue.c.id, work_pool.c.default_queue_id)
            .select_from(work_queue.join(work_pool, work_pool.c.id == work_queue.c.work_pool_id))
            .where(work_pool.c.name == work_pool_name, work_queue.c.name == name)
        )
        row = (await self.connection.execute(query)).first()
        if row is None:
            raise await self._queue_not_found(work_pool_name, name)
        if row.id == row.default_queue_id:
            raise errors.FailedPrecondition(
                f"Work queue {work_pool_name}/{name} is the pool's default queue and cannot be deleted",
                metadata={"work_pool_name": work_pool_name, "work_queue_name": name},
            )
        deleted = delete(work_queue).where(work_queue.c.id == row.id).returning(work_queue.c.id)
        if (await self.connection.execute(deleted)).first() is None:
            raise errors.work_queue_not_found(work_pool_name, name)
        await self._clear_runs_queue([row.id])

    async def resolve_queue(self, work_pool_name: str, work_queue_name: str | None) -> tuple[str, str]:
        """(id, name) of the named queue of the pool, or of the pool's default queue when
        no queue is named, with the queue row FOR KEY SHARE locked until commit, so it
        cannot be deleted before a run or deployment that points at it is committed."""
        if work_queue_name is not None:
            joined = work_queue.join(work_pool, work_pool.c.id == work_queue.c.work_pool_id)
            named = and_(work_pool.c.name == work_pool_name, work_queue.c.name == work_queue_name)
        else:
            joined = work_queue.join(work_pool, work_pool.c.default_queue_id == work_queue.c.id)
            named = work_pool.c.name == work_pool_name
        query = select(work_queue.c.id, work_queue.c.name).select_from(joined).where(named)
        row = (await self.connection.execute(self.dialect.lock_for_key_share(query, work_queue))).first()
        if row is None:
            raise await self._queue_not_found(work_pool_name, work_queue_name or DEFAULT_QUEUE_NAME)
        return row.id, row.name

    async def queue_id_for_run(self, work_pool_name: str, work_queue_name: str | None) -> str:
        """The work queue id for a new run (see resolve_queue)."""
        queue_id, _ = await self.resolve_queue(work_pool_name, work_queue_name)
        return queue_id

    # -- helpers ----------------------------------------------------------------------

    async def _queue_not_found(self, work_pool_name: str, work_queue_name: str) -> errors.NotFound:
        if await self.get(work_pool_name) is None:
            return errors.work_pool_not_found(work_pool_name)
        return errors.work_queue_not_found(work_pool_name, work_queue_name)

    async def _clear_runs_queue(self, queue_ids: Sequence[str]) -> None:
        """Runs on these (deleted) queues keep their stored work_queue_name only."""
        if queue_ids:
            await self.connection.execute(
                update(flow_run).where(flow_run.c.work_queue_id.in_(queue_ids)).values(work_queue_id=None)
            )
