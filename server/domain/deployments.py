"""Deployments: named ways to run a flow, optionally limiting how many of their runs are
active at once, and the leases that hold those slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class CollisionStrategy(StrEnum):
    """What a run that finds no free slot does: wait (ENQUEUE) or give up (CANCEL_NEW)."""

    ENQUEUE = "ENQUEUE"
    CANCEL_NEW = "CANCEL_NEW"


@dataclass(slots=True)
class Deployment:
    id: str
    created: datetime
    updated: datetime
    name: str
    flow_id: str
    version: str | None = None
    # The queue's name when the deployment has a queue, else the stored name.
    work_queue_name: str | None = None
    work_queue_id: str | None = None
    work_pool_name: str | None = None
    paused: bool = False
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    job_variables: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = None
    collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE
    grace_period_seconds: int | None = None
    active_slots: int = 0
    # Heartbeat timeout of its runs that set none; None: the server default; 0: off.
    heartbeat_timeout_seconds: int | None = None


@dataclass(slots=True)
class DeploymentCreate:
    flow_id: str
    name: str
    version: str | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    paused: bool = False
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    job_variables: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = None
    collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE
    grace_period_seconds: int | None = None
    heartbeat_timeout_seconds: int | None = None


@dataclass(slots=True)
class LeaseRenewal:
    """A renewed lease: held until `expiration`, which is `ttl_seconds` after the renewal."""

    lease_id: str
    expiration: datetime
    ttl_seconds: int
