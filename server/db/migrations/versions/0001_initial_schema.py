"""Initial schema: flows, flow runs, task runs and their state histories.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:27:24.247749
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowrun.server.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tags", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("labels", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow")),
        sa.UniqueConstraint("name", name=op.f("uq_flow__name")),
    )
    with op.batch_alter_table("flow", schema=None) as batch_op:
        batch_op.create_index("ix_flow__created", ["created"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow__updated"), ["updated"], unique=False)

    op.create_table(
        "flow_run",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("state_type", sa.String(length=16), nullable=True),
        sa.Column("state_name", sa.String(), nullable=True),
        sa.Column("state_timestamp", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("expected_start_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("next_scheduled_start_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("start_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("end_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("total_run_time", sa.Float(), nullable=False),
        sa.Column("flow_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("deployment_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.Column("deployment_version", sa.String(), nullable=True),
        sa.Column("work_queue_name", sa.String(), nullable=True),
        sa.Column("work_queue_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.Column("flow_version", sa.String(), nullable=True),
        sa.Column("parameters", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("context", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("empirical_policy", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("tags", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("labels", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.Column("created_by", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.Column("infrastructure_pid", sa.String(), nullable=True),
        sa.Column("job_variables", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.Column("infrastructure_document_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.Column("parent_task_run_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.Column("auto_scheduled", sa.Boolean(), nullable=False),
        sa.Column("state_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.ForeignKeyConstraint(["flow_id"], ["flow.id"], name=op.f("fk_flow_run__flow_id__flow"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run")),
        sa.UniqueConstraint("flow_id", "idempotency_key", name=op.f("uq_flow_run__flow_id_idempotency_key")),
    )
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_run__deployment_id"), ["deployment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__end_time"), ["end_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__expected_start_time"), ["expected_start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__flow_version"), ["flow_version"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__next_scheduled_start_time"), ["next_scheduled_start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_run__parent_task_run_id"), ["parent_task_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__start_time"), ["start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__state_id"), ["state_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__state_name"), ["state_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__state_type"), ["state_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__updated"), ["updated"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__work_queue_name"), ["work_queue_name"], unique=False)

    op.create_table(
        "flow_run_state",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("flow_run_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("timestamp", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("state_details", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("data", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_run.id"], name=op.f("fk_flow_run_state__flow_run_id__flow_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run_state")),
        sa.UniqueConstraint("flow_run_id", "timestamp", name=op.f("uq_flow_run_state__flow_run_id_timestamp")),
    )
    op.create_table(
        "task_run",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("state_type", sa.String(length=16), nullable=True),
        sa.Column("state_name", sa.String(), nullable=True),
        sa.Column("state_timestamp", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("expected_start_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("next_scheduled_start_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("start_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("end_time", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("total_run_time", sa.Float(), nullable=False),
        sa.Column("flow_run_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.Column("task_key", sa.String(), nullable=False),
        sa.Column("dynamic_key", sa.String(), nullable=False),
        sa.Column("cache_key", sa.String(), nullable=True),
        sa.Column("cache_expiration", flowrun.server.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("task_version", sa.String(), nullable=True),
        sa.Column("flow_run_run_count", sa.Integer(), nullable=False),
        sa.Column("empirical_policy", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("task_inputs", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("tags", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("labels", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.Column("state_id", flowrun.server.db.types.UUIDText(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_run.id"], name=op.f("fk_task_run__flow_run_id__flow_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run")),
        sa.UniqueConstraint(
            "flow_run_id", "task_key", "dynamic_key", name=op.f("uq_task_run__flow_run_id_task_key_dynamic_key")
        ),
    )
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_run__end_time"), ["end_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__expected_start_time"), ["expected_start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_task_run__next_scheduled_start_time"), ["next_scheduled_start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_task_run__start_time"), ["start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__state_name"), ["state_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__state_type"), ["state_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__updated"), ["updated"], unique=False)

    op.create_table(
        "task_run_state",
        sa.Column("id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("created", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("task_run_id", flowrun.server.db.types.UUIDText(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("timestamp", flowrun.server.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("state_details", flowrun.server.db.types.JSONColumn, nullable=False),
        sa.Column("data", flowrun.server.db.types.JSONColumn, nullable=True),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_run.id"], name=op.f("fk_task_run_state__task_run_id__task_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run_state")),
        sa.UniqueConstraint("task_run_id", "timestamp", name=op.f("uq_task_run_state__task_run_id_timestamp")),
    )


def downgrade() -> None:
    op.drop_table("task_run_state")
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_run__updated"))
        batch_op.drop_index(batch_op.f("ix_task_run__state_type"))
        batch_op.drop_index(batch_op.f("ix_task_run__state_name"))
        batch_op.drop_index(batch_op.f("ix_task_run__start_time"))
        batch_op.drop_index(batch_op.f("ix_task_run__next_scheduled_start_time"))
        batch_op.drop_index(batch_op.f("ix_task_run__name"))
        batch_op.drop_index(batch_op.f("ix_task_run__flow_run_id"))
        batch_op.drop_index(batch_op.f("ix_task_run__expected_start_time"))
        batch_op.drop_index(batch_op.f("ix_task_run__end_time"))

    op.drop_table("task_run")
    op.drop_table("flow_run_state")
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_run__work_queue_name"))
        batch_op.drop_index(batch_op.f("ix_flow_run__updated"))
        batch_op.drop_index(batch_op.f("ix_flow_run__state_type"))
        batch_op.drop_index(batch_op.f("ix_flow_run__state_name"))
        batch_op.drop_index(batch_op.f("ix_flow_run__state_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__parent_task_run_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__next_scheduled_start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__name"))
        batch_op.drop_index(batch_op.f("ix_flow_run__flow_version"))
        batch_op.drop_index(batch_op.f("ix_flow_run__flow_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__expected_start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__end_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__deployment_id"))

    op.drop_table("flow_run")
    with op.batch_alter_table("flow", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow__updated"))
        batch_op.drop_index("ix_flow__created")

    op.drop_table("flow")
