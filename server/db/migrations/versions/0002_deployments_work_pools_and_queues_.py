"""Deployments with concurrency limits, work pools and queues, concurrency leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:38:31.932427
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowrun.server.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_pool",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("default_queue_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_pool")),
        sa.UniqueConstraint("name", name=op.f("uq_work_pool__name")),
    )
    with op.batch_alter_table("work_pool", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_pool__updated"), ["updated"], unique=False)

    op.create_table(
        "work_queue",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("work_pool_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_pool_id"], ["work_pool.id"], name=op.f("fk_work_queue__work_pool_id__work_pool"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_queue")),
        sa.UniqueConstraint("work_pool_id", "name", name=op.f("uq_work_queue__work_pool_id_name")),
    )
    with op.batch_alter_table("work_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_queue__updated"), ["updated"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_queue__work_pool_id"), ["work_pool_id"], unique=False)

    op.create_table(
        "deployment",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("flow_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("version", sa.String(), nullable=True),
        sa.Column("work_queue_name", sa.String(), nullable=True),
        sa.Column("work_queue_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("tags", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("labels", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.Column("parameters", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("job_variables", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("collision_strategy", sa.String(length=16), nullable=False),
        sa.Column("grace_period_seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flow.id"], name=op.f("fk_deployment__flow_id__flow"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["work_queue_id"],
            ["work_queue.id"],
            name=op.f("fk_deployment__work_queue_id__work_queue"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
        sa.UniqueConstraint("flow_id", "name", name=op.f("uq_deployment__flow_id_name")),
    )
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment__flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment__updated"), ["updated"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment__work_queue_id"), ["work_queue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment__work_queue_name"), ["work_queue_name"], unique=False)

    op.create_table(
        "concurrency_lease",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("deployment_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("flow_run_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("expiration", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
            name=op.f("fk_concurrency_lease__deployment_id__deployment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_run.id"],
            name=op.f("fk_concurrency_lease__flow_run_id__flow_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_lease")),
    )
    with op.batch_alter_table("concurrency_lease", schema=None) as batch_op:
        batch_op.create_index(
            "ix_concurrency_lease__deployment_id_expiration", ["deployment_id", "expiration"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_concurrency_lease__expiration"), ["expiration"], unique=False)
        batch_op.create_index(batch_op.f("ix_concurrency_lease__flow_run_id"), ["flow_run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("concurrency_lease", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concurrency_lease__flow_run_id"))
        batch_op.drop_index(batch_op.f("ix_concurrency_lease__expiration"))
        batch_op.drop_index("ix_concurrency_lease__deployment_id_expiration")

    op.drop_table("concurrency_lease")
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment__work_queue_name"))
        batch_op.drop_index(batch_op.f("ix_deployment__work_queue_id"))
        batch_op.drop_index(batch_op.f("ix_deployment__updated"))
        batch_op.drop_index(batch_op.f("ix_deployment__flow_id"))

    op.drop_table("deployment")
    with op.batch_alter_table("work_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_queue__work_pool_id"))
        batch_op.drop_index(batch_op.f("ix_work_queue__updated"))

    op.drop_table("work_queue")
    with op.batch_alter_table("work_pool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_pool__updated"))

    op.drop_table("work_pool")
