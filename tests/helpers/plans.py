"""PostgreSQL query plans of what a repository really sends: the statement is captured at
the cursor (after SQLAlchemy compiled it, with its bound values) and EXPLAINed on the
same connection, so a test of a plan breaks when the repository's query changes shape."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
    """EXPLAIN (FORMAT JSON) of one statement, flattened."""

    statement: str
    raw: dict[str, Any]

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
    the statement runs again and the plan carries its timings and buffers."""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    sent: list[tuple[str, Any]] = []

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:
        sent.append((statement, parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with database.unit_of_work(write=False) as uow:
            await read(uow.repos)
            statement, parameters = sent[-1]
            assert uow.connection is not None, "an entered unit of work holds its connection"
            explained = await uow.connection.exec_driver_sql(f"EXPLAIN ({options}) " + statement, parameters)
            value = explained.scalar_one()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", capture)
    document = json.loads(value) if isinstance(value, str) else value
    return Plan(statement, document[0])
