"""An index for ListFlowRuns in START_TIME_DESC order (issue 15, item 5): the order's
expression coalesce(start_time, expected_start_time, <far past>) (the far past stands in
for a run with neither time, so it comes last), then id. 0008's index on the two-argument
coalesce serves the start-time filter but never this order, whose expression has a third
argument (until now a bound parameter, which no index expression can equal), so a one-day
range sorted by start time read the whole day through 0008's index
and sorted it (~180 ms on 1,000,000 runs). The repository writes the far past as a
constant of the SQL (server/db/time_order.py far_past, spelled as here: -infinity on
PostgreSQL), since an index serves only an expression equal to its own, and writes the
start-time filter's range on the order's expression, so the page is an index range read
backwards.

Each dialect writes the far past in its own form (server/db/time_order.py; SQLite's is
its stored text), so SQLite's planner can read the order from the index as well. On a
large flow_run, CREATE INDEX blocks writes to the table while it builds; to avoid that,
build it beforehand with CREATE INDEX CONCURRENTLY under the same name (this migration
skips an index that already exists).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The repository's START_TIME_DESC expression, to the letter (time_order.py's far past,
# copied: a migration does not change when the code does).
FAR_PAST = {"postgresql": "'-infinity'::timestamptz", "sqlite": "'0001-01-01 00:00:00.000000'"}
INDEX = "ix_flow_run__start_time_order"


def upgrade() -> None:
    far_past = FAR_PAST[op.get_bind().dialect.name]
    order = sa.text(f"coalesce(start_time, expected_start_time, {far_past})")
    op.create_index(INDEX, "flow_run", [order, "id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="flow_run", if_exists=True)
