"""In-memory stand-ins for exactly the repository methods orchestration calls, so the
policy engine (transitions.set_state and every rule) runs without a database: thousands
of proposals in seconds, on an injected clock.

What orchestration uses, and so all that is faked here:
  flow_runs / task_runs: get_for_orchestration, save_transition, save_policy
  leases:                slot_policy, try_acquire, renew, release, release_all

They keep the real repositories' semantics (server/repositories/*.py):
- a read returns a fresh copy, and only save_transition / save_policy change what is
  stored: a rule that changes the loaded run and then gives up writes nothing;
- a stored state is what its row would hold: unpersisted result data is dropped and the
  details round-trip through their JSON; (run, timestamp) is unique in a history, as the
  table's UNIQUE constraint makes it;
- a deployment's active slots are its unexpired leases: try_acquire counts them against
  the limit, renew extends only a live lease of that run, release deletes one lease of
  the run, release_all every lease of the run.

There is no transaction: nothing is rolled back when set_state raises. Setup helpers
(add_*, delete_state) build what other RPCs would have built, directly; `proposal`
stamps a proposed state the way the SetState decoders do."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from flowrun.server.db.tables import ORCHESTRATED_RUN_COLUMNS
from flowrun.server.domain.deployments import CollisionStrategy
from flowrun.server.domain.flow_runs import FlowRun, FlowRunPolicy
from flowrun.server.domain.states import State, StateDetails, StateType, is_persisted_data
from flowrun.server.domain.task_runs import TaskRun, TaskRunPolicy
from flowrun.server.repositories.concurrency_leases import SlotPolicy

Run = TypeVar("Run", FlowRun, TaskRun)


class UniqueViolation(Exception):
    """What the database's UNIQUE (run, timestamp) constraint on state histories raises."""


def stored_state(state: State) -> State:
    """The state as it would come back from its history row."""
    return State(
        id=state.id,
        type=state.type,
        name=state.name,
        timestamp=state.timestamp,
        message=state.message,
        data=copy.deepcopy(state.data) if is_persisted_data(state.data) else None,
        state_details=StateDetails.from_json(state.state_details.to_json()),
    )


def copied_state(state: State) -> State:
    """An independent copy (copy.deepcopy is several times slower on these dataclasses)."""
    data = state.data if state.data is None or isinstance(state.data, str) else copy.deepcopy(state.data)
    return replace(state, data=data, state_details=state.state_details.copy())


class MemoryRunRepository(Generic[Run]):
    """The flow-run or task-run repository: runs by id and each run's state history."""

    def __init__(self, policy_type: type[FlowRunPolicy] | type[TaskRunPolicy]) -> None:
        self._policy_type = policy_type
        self._runs: dict[str, Run] = {}
        self._histories: dict[str, list[State]] = {}

    # What orchestration calls.
    async def get_for_orchestration(self, run_id: str) -> Run | None:
        return self.get(run_id)

    async def save_transition(self, run: Run, state: State, policy: dict[str, Any], now: datetime) -> None:
        history = self._histories[run.id]
        if any(old.timestamp == state.timestamp for old in history):
            raise UniqueViolation(f"run {run.id} already has a state at {state.timestamp.isoformat()}")
        history.append(stored_state(state))
        stored = self._runs[run.id]
        for name in ORCHESTRATED_RUN_COLUMNS:  # immutable values: no copy needed
            setattr(stored, name, getattr(run, name))
        stored.empirical_policy = self._policy_type.from_json(policy)
        stored.updated = now

    async def save_policy(self, run_id: str, policy: dict[str, Any], now: datetime) -> None:
        stored = self._runs[run_id]
        stored.empirical_policy = self._policy_type.from_json(policy)
        stored.updated = now

    # For setup and assertions.
    def add(self, run: Run) -> Run:
        """Stores a new run (no state yet) as the repository's create would."""
        self._runs[run.id] = copy.deepcopy(replace(run, state=None, state_id=None))
        self._histories[run.id] = []
        return self.get(run.id)

    def get(self, run_id: str) -> Run | None:
        """A fresh copy of the stored run with its current state (the join of a read).
        Orchestration changes only the policy and the state columns of the copy; the
        JSON fields it never touches (parameters, labels, ...) are shared, not copied."""
        stored = self._runs.get(run_id)
        if stored is None:
            return None
        current = next((s for s in reversed(self._histories[run_id]) if s.id == stored.state_id), None)
        return replace(
            stored,
            empirical_policy=self._policy_type.from_json(stored.empirical_policy.to_json()),
            tags=list(stored.tags),
            state=copied_state(current) if current is not None else None,
        )

    def history(self, run_id: str) -> list[State]:
        """The run's states in timestamp order, as ListFlowRunStates reads them."""
        return sorted((copied_state(s) for s in self._histories[run_id]), key=lambda s: s.timestamp)

    def delete_state(self, run_id: str, state_id: str) -> None:
        """As DeleteFlowRunState: the run keeps state_type and state_name but loses its
        state pointer when the state was current."""
        self._histories[run_id] = [s for s in self._histories[run_id] if s.id != state_id]
        if self._runs[run_id].state_id == state_id:
            self._runs[run_id].state_id = None


@dataclass
class Lease:
    deployment_id: str
    flow_run_id: str
    expiration: datetime


@dataclass
class MemoryLeaseRepository:
    """Deployment concurrency slots as leases; deployments are only their SlotPolicy."""

    deployments: dict[str, SlotPolicy] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)

    async def slot_policy(self, deployment_id: str, *, lock: bool) -> SlotPolicy | None:
        return self.deployments.get(deployment_id)  # one task at a time: nothing to lock

    async def try_acquire(
        self, deployment_id: str, limit: int, flow_run_id: str, now: datetime, ttl_seconds: int
    ) -> str | None:
        if self.active(deployment_id, now) >= limit:
            return None
        lease_id = str(uuid.uuid4())
        self.leases[lease_id] = Lease(deployment_id, flow_run_id, now + timedelta(seconds=ttl_seconds))
        return lease_id

    async def renew(self, lease_id: str, flow_run_id: str, now: datetime, ttl_seconds: int) -> bool:
        lease = self.leases.get(lease_id)
        if lease is None or lease.expiration < now or lease.flow_run_id != flow_run_id:
            return False
        lease.expiration = now + timedelta(seconds=ttl_seconds)
        return True

    async def release(self, lease_id: str, flow_run_id: str) -> bool:
        lease = self.leases.get(lease_id)
        if lease is None or lease.flow_run_id != flow_run_id:
            return False
        del self.leases[lease_id]
        return True

    async def release_all(self, flow_run_id: str) -> int:
        mine = [lease_id for lease_id, lease in self.leases.items() if lease.flow_run_id == flow_run_id]
        for lease_id in mine:
            del self.leases[lease_id]
        return len(mine)

    # For setup and assertions.
    def add_deployment(
        self,
        limit: int | None = None,
        collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE,
        grace_period_seconds: int | None = None,
    ) -> str:
        deployment_id = str(uuid.uuid4())
        self.deployments[deployment_id] = SlotPolicy(limit, collision_strategy, grace_period_seconds)
        return deployment_id

    def active(self, deployment_id: str, now: datetime) -> int:
        """The deployment's active slots: its unexpired leases (expiration >= now)."""
        return sum(
            1 for lease in self.leases.values() if lease.deployment_id == deployment_id and lease.expiration >= now
        )


@dataclass
class MemoryEventRepository:
    """The outbox set_state appends a flow run's events to: (kind, run id, state type,
    previous state type), in order."""

    appended: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)

    async def append(self, kind: Any, run: FlowRun, now: datetime, *, state: Any = None, previous: Any = None) -> None:
        self.appended.append((str(kind), run.id, state.type.value if state else None, previous and previous.value))


class MemoryRepositories:
    """Stands in for server.repositories.Repositories in set_state and the rules."""

    def __init__(self) -> None:
        self.flow_runs: MemoryRunRepository[FlowRun] = MemoryRunRepository(FlowRunPolicy)
        self.task_runs: MemoryRunRepository[TaskRun] = MemoryRunRepository(TaskRunPolicy)
        self.leases = MemoryLeaseRepository()
        self.flow_run_events = MemoryEventRepository()

    def add_flow_run(self, now: datetime, **fields: Any) -> FlowRun:
        """A new flow run without a state (give it one with set_state, as CreateFlowRun does)."""
        fields.setdefault("flow_id", str(uuid.uuid4()))
        fields.setdefault("name", "memory-run")
        return self.flow_runs.add(FlowRun(id=str(uuid.uuid4()), created=now, updated=now, **fields))

    def add_task_run(self, now: datetime, flow_run_id: str, task_key: str = "task", **fields: Any) -> TaskRun:
        """A new task run without a state (give it one with set_state, as CreateTaskRun does)."""
        fields.setdefault("dynamic_key", "")
        return self.task_runs.add(
            TaskRun(
                id=str(uuid.uuid4()),
                created=now,
                updated=now,
                name=task_key,
                flow_run_id=flow_run_id,
                task_key=task_key,
                **fields,
            )
        )


def proposal(
    state_type: StateType | str,
    now: datetime,
    name: str = "",
    *,
    message: str | None = None,
    data: Any = None,
    **details: Any,
) -> State:
    """A proposed state as SetFlowRunState/SetTaskRunState decode it
    (from_proto.proposed_state): stamped `now`, the type's default name when none is
    given, and a SCHEDULED state without a scheduled time is due now."""
    state_type = StateType(state_type)
    state_details = StateDetails(**details)
    if state_type == StateType.SCHEDULED and state_details.scheduled_time is None:
        state_details.scheduled_time = now
    return State(
        type=state_type,
        name=name or state_type.default_name,
        timestamp=now,
        message=message or None,
        data=copy.deepcopy(data),
        state_details=state_details,
    )
