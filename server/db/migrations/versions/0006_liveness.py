"""Liveness: a flow run's heartbeat timeout, last heartbeat and heartbeat deadline (with
the index the zombie sweep scans), and a deployment's heartbeat timeout for its runs.

Every column is nullable and starts NULL: existing runs and deployments have heartbeat
checking off (NULL timeout), and no run has a deadline, so nothing is crashed by the
upgrade itself. The late-runs sweep uses the existing next_scheduled_start_time index,
the pause sweep the state_type index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowrun.server.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_timeout_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("last_heartbeat_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("heartbeat_deadline", flowrun.server.db.types.Timestamp(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_flow_run__heartbeat_deadline"), ["heartbeat_deadline"], unique=False)
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_timeout_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_timeout_seconds")
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_run__heartbeat_deadline"))
        batch_op.drop_column("heartbeat_deadline")
        batch_op.drop_column("last_heartbeat_time")
        batch_op.drop_column("heartbeat_timeout_seconds")
