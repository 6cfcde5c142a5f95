"""The flow run graph: task runs and subflow runs as nodes, data and nesting as edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flowrun.server.domain.states import StateType


@dataclass(slots=True)
class GraphNode:
    kind: str  # "task-run" | "flow-run"
    id: str
    label: str
    state_type: StateType | None
    start_time: datetime
    end_time: datetime | None
    parent_ids: list[str] = field(default_factory=list)
    child_ids: list[str] = field(default_factory=list)
    encapsulating_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class GraphState:
    id: str
    timestamp: datetime
    type: StateType
    name: str


@dataclass(slots=True)
class Graph:
    start_time: datetime | None
    end_time: datetime | None
    root_node_ids: list[str]
    nodes: list[GraphNode]
    states: list[GraphState]
