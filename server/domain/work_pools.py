"""Work pools and their work queues, which flow runs and deployments are queued on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_QUEUE_NAME = "default"
DEFAULT_POOL_TYPE = "process"
HIGHEST_PRIORITY = 1


@dataclass(slots=True)
class WorkPool:
    id: str
    created: datetime
    updated: datetime
    name: str
    type: str
    description: str | None = None
    is_paused: bool = False
    concurrency_limit: int | None = None
    default_queue_id: str | None = None


@dataclass(slots=True)
class WorkPoolCreate:
    name: str
    type: str = DEFAULT_POOL_TYPE
    description: str | None = None
    is_paused: bool = False
    concurrency_limit: int | None = None


@dataclass(slots=True)
class WorkQueue:
    id: str
    created: datetime
    updated: datetime
    name: str
    work_pool_id: str
    work_pool_name: str
    priority: int = HIGHEST_PRIORITY
    concurrency_limit: int | None = None
    is_paused: bool = False
    description: str | None = None


@dataclass(slots=True)
class WorkQueueCreate:
    work_pool_name: str
    name: str
    priority: int = HIGHEST_PRIORITY
    concurrency_limit: int | None = None
    is_paused: bool = False
    description: str | None = None
