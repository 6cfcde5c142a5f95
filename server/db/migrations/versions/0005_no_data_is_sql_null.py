"""No data is SQL NULL: rows written through SQLAlchemy stored a missing JSON value as
the JSON value null, rows written through the asyncpg hot path as SQL NULL. Both read
back as None; from now on every path writes SQL NULL (server/db/types.py), and this
rewrites the JSON nulls stored before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Every nullable JSON column at revision 0004.
NULLABLE_JSON_COLUMNS = (
    ("flow", "labels"),
    ("flow_run", "labels"),
    ("flow_run", "created_by"),
    ("flow_run", "job_variables"),
    ("deployment", "labels"),
    ("flow_run_state", "data"),
    ("task_run", "labels"),
    ("task_run_state", "data"),
)


def upgrade() -> None:
    json_null = "'null'" if op.get_bind().dialect.name == "sqlite" else "'null'::jsonb"
    for table, column in NULLABLE_JSON_COLUMNS:
        op.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = {json_null}")


def downgrade() -> None:
    """Nothing to undo: SQL NULL and JSON null read back the same."""
