"""SQLAlchemy SELECTs as the SQL and arguments asyncpg takes, for reads whose rows are
fetched through the asyncpg connection itself: SQLAlchemy's result processing (a Row and
a Python call per typed value, e.g. every timestamp) costs more than the SQL of a large
page. Built only from public APIs: `compile()` with the engine's own dialect (the same
SQL SQLAlchemy would send) and `construct_expanded_state`, which expands IN lists into
one bound argument per element and gives each value's bind processor, as SQLAlchemy's
execution applies them before handing values to the driver.

Compiling a page's statement costs about as much as SQLAlchemy's result processing
saves (1.5 ms for a list of runs), so statements are compiled once per query and only
the values that change from call to call are bound again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler


class CompiledStatements:
    """The `size` most recently used compiled statements, by a caller's key. The key must
    name everything the statement is built from except `values` (the bound values passed
    on every call, by name): equal keys must mean the same SQL and the same other values.
    (One event loop per process: no lock.)"""

    def __init__(self, size: int) -> None:
        self._size = size
        self._compiled: OrderedDict[Hashable, _Compiled] = OrderedDict()

    def __len__(self) -> int:
        return len(self._compiled)

    def driver_statement(
        self, key: Hashable, statement: Select, dialect: Dialect, values: Mapping[str, Any]
    ) -> tuple[str, list[Any]]:
        """`statement` (compiled under `key` the first time) with `values` bound: SQL with
        $1, $2, ... and its arguments in that order, every value an argument, never SQL
        text."""
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = _Compiled(statement, dialect)
            self._compiled[key] = compiled
            if len(self._compiled) > self._size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled.bound(values)


class _Compiled:
    """A statement compiled for `dialect`, with the bind processor of each of its bound
    parameters (an expanded IN list's elements get theirs from the expanded state)."""

    def __init__(self, statement: Select, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler), "a SELECT compiles with the SQL compiler"
        self.compiled = compiled
        self.processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()
        }

    def bound(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        state = self.compiled.construct_expanded_state(dict(values))
        assert state.positiontup is not None, "PostgreSQL's asyncpg dialect is positional"
        args = []
        for name in state.positiontup:
            value = state.parameters[name]
            processor = state.processors.get(name) or self.processors.get(name)
            args.append(value if processor is None else processor(value))
        return state.statement, args
