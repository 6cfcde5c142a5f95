"""PostgreSQL query plans of what a repository really sends: the statement is captured at
the cursor (after SQLAlchemy compiled it, with its bound values) and EXPLAINed on the
same connection, so a test of a plan breaks when the repository's query changes shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from asyncpg.connection import LoggedQuery
from sqlalchemy import event

from flowrun.server.db.unit_of_work import Database
from flowrun.server.repositories import Repositories


@dataclass(frozen=True)
class PlanNode:
    """One node of a plan: its type ("Index Scan", "Seq Scan", ...), the relation and
    the index it reads (None when it reads neither)."""

    type: str
    relation: str | None
    index: str | None


@dataclass(frozen=True)
class Plan:
    """EXPLAIN (FORMAT JSON) of one statement, flattened; `via` is where it was sent:
    "sqlalchemy" (SQLAlchemy's execution) or "driver" (the asyncpg connection itself)."""

    statement: str
    raw: dict[str, Any]
    via: str = "sqlalchemy"

    def nodes(self) -> Iterator[PlanNode]:
        pending = [self.raw["Plan"]]
        while pending:
            node = pending.pop()
            yield PlanNode(node["Node Type"], node.get("Relation Name"), node.get("Index Name"))
            pending.extend(node.get("Plans", []))

    def indexes(self) -> set[str]:
        return {node.index for node in self.nodes() if node.index is not None}

    def seq_scans(self) -> set[str]:
        return {node.relation or "?" for node in self.nodes() if node.type == "Seq Scan"}

    def execution_ms(self) -> float:
        """With analyze: how long PostgreSQL took to run the statement."""
        return float(self.raw["Execution Time"])

    def __str__(self) -> str:
        return f"{self.statement}\n{json.dumps(self.raw['Plan'], indent=1)}"


async def plan_of(database: Database, read: Callable[[Repositories], Awaitable[Any]], *, analyze: bool = False) -> Plan:
    """The plan of the last statement `read(repos)` sends, EXPLAINed with the values it
    was sent with (so PostgreSQL plans it as it planned the real call); with `analyze`
    the statement runs again and the plan carries its timings and buffers. A statement
    is captured where it leaves: at SQLAlchemy's cursor, or at the asyncpg connection for
    the reads a repository sends through the driver itself (asyncpg's query logger), and
    EXPLAINed the same way it was sent."""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    sent: list[tuple[str, str, Any]] = []

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:
        sent.append(("sqlalchemy", statement, parameters))

    def capture_driver(query: LoggedQuery) -> None:
        sent.append(("driver", query.query, query.args))

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with database.unit_of_work(write=False) as uow:
            assert uow.connection is not None, "an entered unit of work holds its connection"
            assert uow.driver is not None, "plans are PostgreSQL's"
            uow.driver.add_query_logger(capture_driver)
            try:
                await read(uow.repos)
                # asyncpg calls its loggers through the event loop (call_soon): let them run.
                # (So a read that sent a statement through the driver and then one through
                # SQLAlchemy in the same step would have them recorded in the wrong order;
                # the reads planned here send one statement each.)
                await asyncio.sleep(0)
            finally:
                uow.driver.remove_query_logger(capture_driver)
            via, statement, parameters = sent[-1]
            if via == "driver":
                value = await uow.driver.fetchval(f"EXPLAIN ({options}) " + statement, *parameters)
            else:
                explained = await uow.connection.exec_driver_sql(f"EXPLAIN ({options}) " + statement, parameters)
                value = explained.scalar_one()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", capture)
    document = json.loads(value) if isinstance(value, str) else value
    return Plan(statement, document[0], via)
