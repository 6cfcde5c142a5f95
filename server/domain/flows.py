"""Flows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Labels = dict[str, Any]


@dataclass(slots=True)
class Flow:
    id: str
    created: datetime
    updated: datetime
    name: str
    tags: list[str] = field(default_factory=list)
    labels: Labels | None = None


@dataclass(slots=True)
class FlowCreate:
    name: str
    tags: list[str] = field(default_factory=list)
    labels: Labels = field(default_factory=dict)
