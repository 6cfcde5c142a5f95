"""The stand-ins for a missing time in a time order, as constants of the SQL.

A time order must be total, so a row without the time sorts by a stand-in: the far past
in a descending order, the far future in an ascending one (the ends of
google.protobuf.Timestamp's range), so such rows come last either way. The stand-in is
written into the SQL as a constant, never bound as a parameter: an index serves an order
only when the query's expression equals the index's, constants included (tables.py and
migration 0009 index coalesce(start_time, expected_start_time, far_past())), and a bound
parameter equals nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from flowrun.server.db.types import Timestamp

FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)

# Their text in each dialect, as migration 0009 writes them too. On PostgreSQL they are
# -infinity and infinity, because asyncpg binds datetime.min and datetime.max (which
# FAR_PAST and FAR_FUTURE are) as those: a page token's key read back from a row that
# sorted by a stand-in must compare equal to the stand-in. SQLite stores times as naive
# UTC text in SQLAlchemy's fixed format (types.py), so text order is time order.
FAR_PAST_POSTGRESQL = "'-infinity'::timestamptz"
FAR_FUTURE_POSTGRESQL = "'infinity'::timestamptz"
FAR_PAST_SQLITE = "'0001-01-01 00:00:00.000000'"
FAR_FUTURE_SQLITE = "'9999-12-31 23:59:59.999999'"


class far_past(FunctionElement[datetime]):
    """FAR_PAST, written into the SQL."""

    type = Timestamp()
    inherit_cache = True


class far_future(FunctionElement[datetime]):
    """FAR_FUTURE, written into the SQL."""

    type = Timestamp()
    inherit_cache = True


@compiles(far_past)
def _far_past_sqlite(element: far_past, compiler, **kw) -> str:
    return FAR_PAST_SQLITE


@compiles(far_future)
def _far_future_sqlite(element: far_future, compiler, **kw) -> str:
    return FAR_FUTURE_SQLITE


@compiles(far_past, "postgresql")
def _far_past_postgresql(element: far_past, compiler, **kw) -> str:
    return FAR_PAST_POSTGRESQL


@compiles(far_future, "postgresql")
def _far_future_postgresql(element: far_future, compiler, **kw) -> str:
    return FAR_FUTURE_POSTGRESQL
