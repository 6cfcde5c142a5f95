"""The schema as SQLAlchemy Core tables. Alembic migrations create it; these definitions
are what the repositories query. Keep both in step (tests compare them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from flowrun.server.db.time_order import far_past
from flowrun.server.db.types import JSONColumn, Timestamp, UUIDText

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s__%(column_0_N_name)s",
        "uq": "uq_%(table_name)s__%(column_0_N_name)s",
        "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _base_columns() -> list[Column]:
    return [
        Column("id", UUIDText, primary_key=True),
        Column("created", Timestamp, nullable=False),
        Column("updated", Timestamp, nullable=False, index=True),
    ]


def _run_columns(*, start_time_index: bool = True) -> list[Column]:
    """Columns shared by flow runs and task runs."""
    return [
        Column("name", String, nullable=False, index=True),
        Column("state_type", String(16), index=True),
        Column("state_name", String, index=True),
        Column("state_timestamp", Timestamp),
        Column("run_count", Integer, nullable=False, default=0),
        Column("expected_start_time", Timestamp, index=True),
        Column("next_scheduled_start_time", Timestamp, index=True),
        Column("start_time", Timestamp, index=start_time_index),
        Column("end_time", Timestamp, index=True),
        Column("total_run_time", Float, nullable=False, default=0.0),  # seconds
    ]


def _state_history(name: str, *, owner: str) -> Table:
    """The append-only state history of a flow run or task run: one row per state,
    timestamps unique per run (the history's order)."""
    owner_id = f"{owner}_id"
    return Table(
        name,
        metadata,
        Column("id", UUIDText, primary_key=True),
        Column("created", Timestamp, nullable=False),
        Column(owner_id, UUIDText, ForeignKey(f"{owner}.id", ondelete="CASCADE"), nullable=False),
        Column("type", String(16), nullable=False),
        Column("timestamp", Timestamp, nullable=False),
        Column("name", String, nullable=False),
        Column("message", Text),
        Column("state_details", JSONColumn, nullable=False),
        Column("data", JSONColumn),
        UniqueConstraint(owner_id, "timestamp"),
    )


# Columns of a flow run or task run that orchestration writes back after a transition.
ORCHESTRATED_RUN_COLUMNS = (
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
)


flow = Table(
    "flow",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, unique=True),
    Column("tags", JSONColumn, nullable=False),
    Column("labels", JSONColumn),
    Index("ix_flow__created", "created"),
    Index("ix_flow__tags", "tags", postgresql_using="gin"),
)

flow_run = Table(
    "flow_run",
    metadata,
    *_base_columns(),
    # Its start-time filter reads coalesce(start_time, expected_start_time): indexed below.
    *_run_columns(start_time_index=False),
    Column("flow_id", UUIDText, ForeignKey("flow.id", ondelete="CASCADE"), nullable=False),
    Column("deployment_id", UUIDText),
    Column("deployment_version", String),
    Column("work_queue_name", String, index=True),
    Column("work_queue_id", UUIDText),
    Column("flow_version", String, index=True),
    Column("parameters", JSONColumn, nullable=False),
    Column("idempotency_key", String),
    Column("context", JSONColumn, nullable=False),
    Column("empirical_policy", JSONColumn, nullable=False),
    Column("tags", JSONColumn, nullable=False),
    Column("labels", JSONColumn),
    Column("created_by", JSONColumn),
    Column("infrastructure_pid", String),
    Column("job_variables", JSONColumn),
    Column("infrastructure_document_id", UUIDText),
    # No FK to task_run: flow_run -> task_run -> flow_run would be a cycle, and FK cycles
    # deadlock concurrent deletes. Existence is checked at creation instead.
    Column("parent_task_run_id", UUIDText, index=True),
    Column("auto_scheduled", Boolean, nullable=False, default=False),
    # No FK to flow_run_state: that would be a cycle (flow_run_state -> flow_run), which
    # deadlocks concurrent deletes. Deleting a state clears the pointer in the same
    # transaction instead.
    Column("state_id", UUIDText, index=True),
    # Liveness (server/liveness/): the run's heartbeat timeout (NULL: off), its last
    # heartbeat, and while it is RUNNING with a timeout the time the zombie sweep may
    # crash it (indexed: the sweep's range scan; NULL outside RUNNING).
    Column("heartbeat_timeout_seconds", Integer),
    Column("last_heartbeat_time", Timestamp),
    Column("heartbeat_deadline", Timestamp, index=True),
    UniqueConstraint("flow_id", "idempotency_key"),
    # Tag filters (all/any) use jsonb ?& / ?| on PostgreSQL, which a GIN index serves;
    # SQLite gets a plain index it will not use for them.
    Index("ix_flow_run__tags", "tags", postgresql_using="gin"),
    # ListFlowRuns by flow, deployment or state type in the default order (ID_DESC): the
    # index read backwards from the page token is the page (migration 0008). The flow and
    # deployment indexes carry the state type (and the flow's the expected start time), so
    # a count by flow or deployment with a state or time filter is an index-only scan.
    # SetState never updates flow_run in place (it changes indexed columns), so every
    # index gets an entry per transition whatever it includes.
    Index("ix_flow_run__flow_id_id", "flow_id", "id", postgresql_include=["state_type", "expected_start_time"]),
    Index("ix_flow_run__deployment_id_id", "deployment_id", "id", postgresql_include=["state_type"]),
    Index("ix_flow_run__state_type_id", "state_type", "id"),
)

# The start-time filter's expression (server/repositories/filters.py), with its columns
# included so that a count over a time range is an index-only scan.
Index(
    "ix_flow_run__start_or_expected_time",
    func.coalesce(flow_run.c.start_time, flow_run.c.expected_start_time),
    postgresql_include=["start_time", "expected_start_time"],
)

# The START_TIME_DESC order of ListFlowRuns (server/repositories/paging.py), to the letter
# (time_order.py: the far past is a constant of the SQL), so a page is read in order.
Index(
    "ix_flow_run__start_time_order",
    func.coalesce(flow_run.c.start_time, flow_run.c.expected_start_time, far_past()),
    flow_run.c.id,
)

flow_run_state = _state_history("flow_run_state", owner="flow_run")

task_run = Table(
    "task_run",
    metadata,
    *_base_columns(),
    *_run_columns(),
    Column("flow_run_id", UUIDText, ForeignKey("flow_run.id", ondelete="CASCADE"), index=True),
    Column("task_key", String, nullable=False),
    Column("dynamic_key", String, nullable=False),
    Column("cache_key", String),
    Column("cache_expiration", Timestamp),
    Column("task_version", String),
    Column("flow_run_run_count", Integer, nullable=False, default=0),
    Column("empirical_policy", JSONColumn, nullable=False),
    Column("task_inputs", JSONColumn, nullable=False),
    Column("tags", JSONColumn, nullable=False),
    Column("labels", JSONColumn),
    Column("state_id", UUIDText),
    UniqueConstraint("flow_run_id", "task_key", "dynamic_key"),
)

task_run_state = _state_history("task_run_state", owner="task_run")

work_pool = Table(
    "work_pool",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, unique=True),
    Column("type", String, nullable=False),
    Column("description", Text),
    Column("is_paused", Boolean, nullable=False, default=False),
    Column("concurrency_limit", Integer),
    # No FK to work_queue: pool -> queue -> pool would be a cycle.
    Column("default_queue_id", UUIDText),
)

work_queue = Table(
    "work_queue",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    Column("work_pool_id", UUIDText, ForeignKey("work_pool.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("priority", Integer, nullable=False, default=1),
    Column("concurrency_limit", Integer),
    Column("is_paused", Boolean, nullable=False, default=False),
    Column("description", Text),
    UniqueConstraint("work_pool_id", "name"),
)

deployment = Table(
    "deployment",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    Column("flow_id", UUIDText, ForeignKey("flow.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("version", String),
    Column("work_queue_name", String, index=True),
    Column("work_queue_id", UUIDText, ForeignKey("work_queue.id", ondelete="SET NULL"), index=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("tags", JSONColumn, nullable=False),
    Column("labels", JSONColumn),
    Column("parameters", JSONColumn, nullable=False),
    Column("job_variables", JSONColumn, nullable=False),
    Column("concurrency_limit", Integer),
    Column("collision_strategy", String(16), nullable=False, default="ENQUEUE"),
    Column("grace_period_seconds", Integer),
    # Heartbeat timeout of its runs that set none; NULL: the server default, 0: off.
    Column("heartbeat_timeout_seconds", Integer),
    UniqueConstraint("flow_id", "name"),
)

# A deployment concurrency slot is a lease row; a deployment's active slots are its
# unexpired leases, counted under the deployment's row lock, so the count cannot drift.
concurrency_lease = Table(
    "concurrency_lease",
    metadata,
    Column("id", UUIDText, primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("deployment_id", UUIDText, ForeignKey("deployment.id", ondelete="CASCADE"), nullable=False),
    Column("flow_run_id", UUIDText, ForeignKey("flow_run.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("expiration", Timestamp, nullable=False, index=True),
    Index("ix_concurrency_lease__deployment_id_expiration", "deployment_id", "expiration"),
)

# Keys the server generates once and every replica and worker shares, by name (the
# page-token signing key when FLOWRUN_PAGE_TOKEN_SECRET is unset). Never updated: the
# first process to insert a name wins and every other one reads its value.
server_secret = Table(
    "server_secret",
    metadata,
    Column("name", String, primary_key=True),
    Column("value", Text, nullable=False),
    Column("created", Timestamp, nullable=False),
)

# The outbox of flow-run changes (server/watch/): one row per change, inserted in the
# change's own transaction. `sequence` orders them (AUTOINCREMENT on SQLite: never
# reused after deletes); `xid` is the writing transaction's id on PostgreSQL;
# `payload` is the event as JSON text (server/domain/events.py), never queried inside.
EVENT_SEQUENCE = BigInteger().with_variant(Integer, "sqlite")
flow_run_event = Table(
    "flow_run_event",
    metadata,
    Column("sequence", EVENT_SEQUENCE, primary_key=True, autoincrement=True),
    Column("xid", BigInteger, index=True),
    Column("occurred", Timestamp, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("flow_run_id", UUIDText, nullable=False),
    Column("payload", Text, nullable=False),
    sqlite_autoincrement=True,
)

# How far retention has deleted events: one row (id 1). A cursor before
# `pruned_through` asks for events that are gone (OUT_OF_RANGE).
flow_run_event_horizon = Table(
    "flow_run_event_horizon",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("pruned_through", BigInteger, nullable=False),
)
