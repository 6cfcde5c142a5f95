"""Task-run orchestration: the flow-run framework (context, rules, engine) applied to
task runs, with their own policies.

flowrun gives task runs no core policy: every proposal is handled as forced, by the
minimal rule that protects a COMPLETED result (PreventResultDataLoss), then the task
bookkeeping (Prefect's GlobalTaskPolicy, plus flowrun's strictly increasing state
timestamps). The reference's task-concurrency and background-task policies are not
implemented."""

from __future__ import annotations

from operator import attrgetter

from flowrun.server import errors
from flowrun.server.domain.states import StateType
from flowrun.server.domain.task_runs import TaskRun
from flowrun.server.orchestration.bookkeeping import RUN_BOOKKEEPING
from flowrun.server.orchestration.context import TaskRunContext
from flowrun.server.orchestration.minimal_rules import PreventResultDataLoss
from flowrun.server.orchestration.rules import GlobalTransform, Policy
from flowrun.server.orchestration.transitions import RunKind


class UpdateTaskRunStateDetails(GlobalTransform[TaskRun]):
    """A task run's states name the task run and its flow run."""

    async def before_transition(self, context: TaskRunContext) -> None:
        if context.proposed_state is not None:
            details = context.proposed_state.state_details
            details.flow_run_id = context.run.flow_run_id
            details.task_run_id = context.run.id


class IncrementTaskRunCount(GlobalTransform[TaskRun]):
    """Each entry into RUNNING counts (task runs cannot be paused or resumed)."""

    async def before_transition(self, context: TaskRunContext) -> None:
        if context.proposed_state is not None and context.proposed_state.type == StateType.RUNNING:
            context.run.run_count += 1


#: Every task-run proposal: forced or not, as the service contract documents.
TASK_RUN_POLICY: Policy = (PreventResultDataLoss,)

#: The task-run bookkeeping, after the policy, always.
TASK_RUN_BOOKKEEPING: Policy = (
    *RUN_BOOKKEEPING,
    UpdateTaskRunStateDetails,
    IncrementTaskRunCount,
)


def task_run_policy(force: bool) -> Policy:
    return TASK_RUN_POLICY


TASK_RUNS = RunKind(
    name="task_run",
    store=attrgetter("task_runs"),
    not_found=errors.task_run_not_found,
    policy=task_run_policy,
    bookkeeping=TASK_RUN_BOOKKEEPING,
)
