"""Indexes for tag filters: GIN on flow.tags and flow_run.tags (PostgreSQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_flow_run__tags", "flow_run", ["tags"], postgresql_using="gin")
    op.create_index("ix_flow__tags", "flow", ["tags"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_flow__tags", table_name="flow")
    op.drop_index("ix_flow_run__tags", table_name="flow_run")
