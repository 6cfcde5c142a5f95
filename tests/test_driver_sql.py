"""server/repositories/driver_sql.py: a SELECT compiled once per key, then bound with
each call's values as asyncpg takes them ($n arguments in order, IN lists expanded, each
value through its type's bind processor). Compile only: no database."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from flowrun.server.db.tables import flow_run
from flowrun.server.repositories.driver_sql import CompiledStatements

DIALECT = asyncpg_dialect()


def _statement(states: list[str], labels: dict):
    return (
        select(flow_run.c.name)
        .where(flow_run.c.state_type.in_(states), flow_run.c.labels == labels)
        .limit(bindparam("page_limit", 1))
    )


def test_values_are_bound_through_their_types_and_in_lists_expanded():
    sql, args = CompiledStatements(4).driver_statement("k", _statement(["RUNNING", "FAILED"], {"a": 1}), DIALECT, {})
    assert "$4" in sql and "$5" not in sql and "POSTCOMPILE" not in sql
    assert sorted(args, key=repr) == sorted(["RUNNING", "FAILED", json.dumps({"a": 1}), 1], key=repr)


def test_the_elements_of_an_in_list_are_bound_through_their_type():
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    _, args = CompiledStatements(4).driver_statement(
        "k", select(flow_run.c.name).where(flow_run.c.id.in_(ids)), DIALECT, {}
    )
    assert args == [str(ids[0]), str(ids[1])]  # UUIDText binds text


def test_a_key_compiles_once_and_binds_each_calls_values():
    statements = CompiledStatements(4)
    first = statements.driver_statement("k", _statement(["RUNNING"], {}), DIALECT, {"page_limit": 5})
    # The same key: the first compilation is used (the caller's key promises the same
    # statement; this one differs only to show it is not compiled), and only the named
    # values are bound again.
    again = statements.driver_statement("k", _statement(["FAILED"], {}), DIALECT, {"page_limit": 7})
    assert again[0] == first[0]
    assert "RUNNING" in again[1] and "FAILED" not in again[1]
    assert 5 in first[1] and 7 in again[1] and 5 not in again[1]
    assert len(statements) == 1


def test_only_the_most_recently_used_keys_are_kept():
    statements = CompiledStatements(2)
    for key in ("a", "b", "a", "c"):
        statements.driver_statement(key, _statement(["RUNNING"], {}), DIALECT, {})
    assert len(statements) == 2
    # "b" was the least recently used: compiled again (from this statement) when asked.
    sql, args = statements.driver_statement("b", _statement(["FAILED", "CRASHED"], {}), DIALECT, {})
    assert "FAILED" in args and "CRASHED" in args
