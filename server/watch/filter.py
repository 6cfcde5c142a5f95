"""Which events a watch stream sends: the supported part of FlowRunFilter, evaluated
against the run as each event describes it (not as it is when the event is read).

The semantics are ListFlowRuns' (protos/flowrun/v1/filters.proto): an empty `any` is
ignored unless strict; `not_any` matches an unset value; criteria combine with AND."""

from __future__ import annotations

from dataclasses import dataclass

from flowrun.server.domain.events import FlowRunEvent
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import StateType


@dataclass(frozen=True)
class ValueFilter:
    """On one optional value (an id or a state type)."""

    any: frozenset[str] | None = None  # None: not applied
    not_any: frozenset[str] = frozenset()
    is_null: bool | None = None

    def matches(self, value: str | None) -> bool:
        if self.any is not None and value not in self.any:
            return False
        if value is not None and value in self.not_any:
            return False
        return self.is_null is None or (value is None) == self.is_null


@dataclass(frozen=True)
class TagsFilter:
    all: frozenset[str] = frozenset()
    any: frozenset[str] | None = None
    is_null: bool | None = None

    def matches(self, tags: list[str]) -> bool:
        present = set(tags)
        if not self.all <= present:
            return False
        if self.any is not None and not (self.any & present):
            return False
        return self.is_null is None or (not present) == self.is_null


@dataclass(frozen=True)
class WatchFilter:
    """Every criterion must hold; an empty filter matches every event."""

    id: ValueFilter | None = None
    flow_id: ValueFilter | None = None
    deployment_id: ValueFilter | None = None
    tags: TagsFilter | None = None
    state_type: ValueFilter | None = None

    def matches(self, event: FlowRunEvent) -> bool:
        return self.matches_run(event.run)

    def matches_run(self, run: FlowRun) -> bool:
        checks = (
            (self.id, run.id),
            (self.flow_id, run.flow_id),
            (self.deployment_id, run.deployment_id),
            (self.state_type, run.state_type.value if isinstance(run.state_type, StateType) else None),
        )
        if any(criterion is not None and not criterion.matches(value) for criterion, value in checks):
            return False
        return self.tags is None or self.tags.matches(run.tags)


def only_run(flow_run_id: str) -> WatchFilter:
    return WatchFilter(id=ValueFilter(any=frozenset({flow_run_id})))
