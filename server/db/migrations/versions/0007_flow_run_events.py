"""flow_run_event: the outbox of flow-run changes that WatchFlowRuns streams, and
flow_run_event_horizon: how far retention has deleted it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowrun.server.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_run_event",
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("xid", sa.BigInteger(), nullable=True),
        sa.Column("occurred", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("flow_run_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_flow_run_event")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_flow_run_event__occurred"), "flow_run_event", ["occurred"], unique=False)
    op.create_index(op.f("ix_flow_run_event__xid"), "flow_run_event", ["xid"], unique=False)
    op.create_table(
        "flow_run_event_horizon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run_event_horizon")),
    )


def downgrade() -> None:
    op.drop_table("flow_run_event_horizon")
    op.drop_index(op.f("ix_flow_run_event__xid"), table_name="flow_run_event")
    op.drop_index(op.f("ix_flow_run_event__occurred"), table_name="flow_run_event")
    op.drop_table("flow_run_event")
