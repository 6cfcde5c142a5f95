"""Task-run orchestration: the flow-run framework (context, rules, engine) applied to
task runs, with their own policies.

flowrun gives task runs no core policy: every proposal is handled as forced, by the
minimal rule that protects a COMPLETED result (PreventResultDataLoss), then the task
bookkeeping (Prefect's GlobalTaskPolicy, plus flowrun's strictly increasing state
timestamps). The reference's task-concurrency and background-task policies are not
implemented.

Both SetTaskRunState and the subflow mirroring after-hook (subflow_rules) come through
`set_task_run_state`, inside the caller's unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from server import errors
from server.domain.states import State, StateType
from server.domain.task_runs import TaskRun
from server.orchestration.context import OrchestrationContext
from server.orchestration.engine import orchestrate
from server.orchestration.minimal_rules import PreventResultDataLoss
from server.orchestration.policies import RUN_BOOKKEEPING, Policy
from server.orchestration.rules import GlobalTransform

if TYPE_CHECKING:
    from server.repositories import Repositories


@dataclass(eq=False)
class TaskRunOrchestrationContext(OrchestrationContext):
    """The orchestration context of one task-run proposal: `run` is the locked task run
    and validation appends to the task run's state history."""

    run: TaskRun  # type: ignore[assignment]

    async def validate(self) -> None:
        proposed = self.proposed_state
        if proposed is None:
            self.validated_state = self.initial_state
            return
        await self.repos.task_runs.insert_state(self.run.id, proposed, self.now)
        self.run.state_id = proposed.id
        self.run.state = proposed
        self.validated_state = proposed


class UpdateTaskRunStateDetails(GlobalTransform):
    """A task run's states name the task run and its flow run."""

    async def before_transition(self, context: OrchestrationContext) -> None:
        if not self.nullified:
            details = context.proposed_state.state_details
            details.flow_run_id = context.run.flow_run_id
            details.task_run_id = context.run.id


class IncrementTaskRunCount(GlobalTransform):
    """Each entry into RUNNING counts (task runs cannot be paused or resumed)."""

    async def before_transition(self, context: OrchestrationContext) -> None:
        if not self.nullified and context.proposed_state.type == StateType.RUNNING:
            context.run.run_count += 1


#: Every task-run proposal: forced or not, as the service contract documents.
TASK_RUN_POLICY: Policy = (PreventResultDataLoss,)

#: The task-run bookkeeping, after the policy, always.
TASK_RUN_GLOBAL_POLICY: Policy = (
    *RUN_BOOKKEEPING,
    UpdateTaskRunStateDetails,
    IncrementTaskRunCount,
)


async def orchestrate_task_run(
    repos: Repositories, run: TaskRun, proposed: State, now: datetime, *, force: bool = True
) -> TaskRunOrchestrationContext:
    """Applies the task-run policies to `proposed` for `run` (locked, or created in this
    transaction), stores the outcome and writes the run's bookkeeping back."""
    context = TaskRunOrchestrationContext(
        run=run, initial_state=run.state, proposed_state=proposed, repos=repos, now=now, force=force
    )
    await orchestrate(context, TASK_RUN_POLICY, context.validate, TASK_RUN_GLOBAL_POLICY)
    if context.state_written:
        await repos.task_runs.save_orchestration(run, now)
    return context


async def set_task_run_state(
    repos: Repositories, task_run_id: str, proposed: State, now: datetime, *, force: bool = True
) -> TaskRunOrchestrationContext:
    """Locks the task run and orchestrates `proposed`. Raises NotFound for an unknown
    task run."""
    run = await repos.task_runs.get_for_orchestration(task_run_id)
    if run is None:
        raise errors.task_run_not_found(task_run_id)
    return await orchestrate_task_run(repos, run, proposed, now, force=force)
