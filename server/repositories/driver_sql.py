"""SQLAlchemy statements as the SQL and arguments the driver itself takes, for the hot
statements that skip SQLAlchemy's execution: ListFlowRuns' pages fetched through the
asyncpg connection (SQLAlchemy's result processing, a Row and a Python call per typed
value, costs more than the SQL of a large page), and the SQLite writer thread's
CreateFlowRun and SetState statements, run on the sqlite3 connection (SQLAlchemy's
per-statement execution cost more than SQLite's work for them, and needs the GIL the
event loop wants: server/db/sqlite_writer.py).

Built only from public APIs: `compile()` with the engine's own dialect (the same SQL
SQLAlchemy would send: for an INSERT executed with a dict, compiled for that dict's
keys, as SQLAlchemy's execution compiles it), `construct_expanded_state`, which expands
IN lists into one bound argument per element and gives each value's bind processor, and
each type's `bind_processor` / `result_processor` for its dialect, which SQLAlchemy's
execution applies to values on their way to the driver and back. So a value written or
read this way is exactly the value SQLAlchemy writes or reads.

Compiling a statement costs about as much as SQLAlchemy's execution saves (1.5 ms for a
list of runs), so statements are compiled once per query and only the values that
change from call to call are bound again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler


class Record(dict[str, Any]):
    """A row read through the driver: a mapping by label, also readable as attributes
    (`row.labels`), as a SQLAlchemy Row is."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class CompiledStatements:
    """The `size` most recently used compiled statements, by a caller's key. The key must
    name everything the statement is built from except `values` (the bound values passed
    on every call, by name): equal keys must mean the same SQL and the same other values.
    (One event loop per process: no lock.)"""

    def __init__(self, size: int) -> None:
        self._size = size
        self._compiled: OrderedDict[Hashable, Compiled] = OrderedDict()

    def __len__(self) -> int:
        return len(self._compiled)

    def driver_statement(
        self, key: Hashable, statement: Executable, dialect: Dialect, values: Mapping[str, Any]
    ) -> tuple[str, list[Any]]:
        """`statement` (compiled under `key` the first time) with `values` bound: SQL with
        the dialect's positional placeholders ($1, $2, ... or ?) and its arguments in that
        order, every value an argument, never SQL text."""
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = Compiled(statement, dialect)
            self._compiled[key] = compiled
            if len(self._compiled) > self._size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled.bound(values)


class Compiled:
    """A statement compiled for `dialect`, with the bind processor of each of its bound
    parameters (an expanded IN list's elements get theirs from the expanded state) and,
    when it returns rows, the result processor of each column it returns."""

    def __init__(self, statement: Executable, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler), "a SELECT, INSERT or UPDATE compiles with the SQL compiler"
        # A column default computed in Python would be left out: SQLAlchemy's execution
        # context computes those, the driver does not.
        if compiled.insert_prefetch or compiled.update_prefetch:  # not an assert: python -O keeps it
            raise ValueError("a statement with Python-side column defaults needs SQLAlchemy's execution")
        self.compiled = compiled
        self.processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()
        }
        # The bind processor of each positional parameter in order, when no parameter
        # changes the SQL per call (an expanding IN list, a literal-rendered value).
        binds = compiled.binds
        plain = compiled.positiontup is not None and not any(
            bind.expanding or bind.literal_execute for bind in binds.values()
        )
        names = compiled.positiontup or []
        self._plain = [(name, self.processors.get(name)) for name in names] if plain else None
        self._plain_names = frozenset(names)
        # What it returns: a SELECT's columns, or an INSERT's or UPDATE's RETURNING (else none).
        self._returned = statement.exported_columns  # type: ignore[attr-defined]
        self.labels: list[str] = list(self._returned.keys())
        self._dialect = dialect
        self._readers: list[Callable[[Any], Any] | None] | None = None

    def bound(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        plain = self._plain
        if plain is not None and self._plain_names <= values.keys():
            # Every parameter given and none expanding: the compiled SQL as it is, half
            # the cost of constructing its expanded state (the SQLite writer's statements).
            return self.compiled.string, [
                values[name] if processor is None else processor(values[name]) for name, processor in plain
            ]
        state = self.compiled.construct_expanded_state(dict(values))
        assert state.positiontup is not None, "the driver's paramstyle is positional"
        args = []
        for name in state.positiontup:
            value = state.parameters[name]
            processor = state.processors.get(name) or self.processors.get(name)
            args.append(value if processor is None else processor(value))
        return state.statement, args

    def records(self, rows: Sequence[Sequence[Any]]) -> list[Record]:
        """The driver's rows of this statement as SQLAlchemy reads them, by label, each
        value through its type's result processor (for a driver that returns the values
        SQLAlchemy's own processing starts from: pysqlite's, not asyncpg's)."""
        readers = self._readers
        if readers is None:
            dialect = self._dialect
            readers = self._readers = [
                column.type.dialect_impl(dialect).result_processor(dialect, None) for column in self._returned
            ]
        labels = self.labels
        return [
            Record(
                zip(
                    labels,
                    [value if read is None else read(value) for read, value in zip(readers, row, strict=True)],
                    strict=True,
                )
            )
            for row in rows
        ]


async def execute_prepared(connection: AsyncConnection, statement: Executable, values: Mapping[str, Any]) -> Any:
    """`connection.execute(statement, values)`, for a statement built once (at import)
    and executed with its values as parameters, never with values inside it. On the
    SQLite writer thread's connection (the one with `driver_statements`:
    server/db/sqlite_writer.py InlineConnection) it runs on the sqlite3 connection
    itself, in the same transaction, compiled once (for the keys of `values`, as
    SQLAlchemy's execution compiles an INSERT executed with a dict); its rows come back
    as Records. A driver error is raised as SQLAlchemy's exception for it, as from any
    other statement. Elsewhere SQLAlchemy executes it as usual."""
    compiled_statements = getattr(connection, "driver_statements", None)
    if compiled_statements is None:
        return await connection.execute(statement, values)
    sync = connection.sync_connection
    assert sync is not None, "the writer thread's connection is open"
    key = (statement, tuple(values))
    compiled = compiled_statements.get(key)
    if compiled is None:
        compiled = compiled_statements[key] = Compiled(statement, sync.dialect, column_keys=tuple(values))
    sql, args = compiled.bound(values)
    dbapi = sync.dialect.loaded_dbapi
    try:
        cursor = sync.connection.driver_connection.execute(sql, args)  # type: ignore[union-attr]
        rows = cursor.fetchall() if compiled.labels else []
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, args, exc, dbapi.Error, dialect=sync.dialect) from exc
    return DriverResult(compiled.records(rows), cursor.rowcount)


class DriverResult:
    """What callers use of a Result, for a statement run on the driver."""

    def __init__(self, records: list[Record], rowcount: int) -> None:
        self._records = records
        self.rowcount = rowcount

    def first(self) -> Record | None:
        return self._records[0] if self._records else None

    def all(self) -> list[Record]:
        return self._records
