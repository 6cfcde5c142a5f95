"""The global bookkeeping transforms (Prefect's GlobalFlowPolicy). They run on every
transition, forced or not, after the policy's rules and see the final proposal; each
does nothing when the proposal was nullified (REJECT to current, WAIT, ABORT)."""

from __future__ import annotations

from datetime import timedelta

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import StateType
from flowrun.server.orchestration.context import FlowRunContext, OrchestrationContext, RunT
from flowrun.server.orchestration.rules import GlobalTransform, Policy

ONE_MICROSECOND = timedelta(microseconds=1)


class EnsureFlowRunStateTimestampIsUnique(GlobalTransform[RunT]):
    """A run's history is ordered by timestamp and (run, timestamp) is unique. The
    reference nudges an equal timestamp by 1 µs; flowrun also keeps the history strictly
    increasing when clocks of several replicas disagree, without a query: the current
    state is already in hand."""

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        proposed = context.proposed_state
        if proposed is None or context.initial_state is None:
            return
        floor = context.initial_state.timestamp + ONE_MICROSECOND
        if proposed.timestamp < floor:
            proposed.timestamp = floor


class SetRunStateType(GlobalTransform[RunT]):
    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        if context.proposed_state is not None:
            context.run.state_type = context.proposed_state.type


class SetRunStateName(GlobalTransform[RunT]):
    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        if context.proposed_state is not None:
            context.run.state_name = context.proposed_state.name


class SetRunStateTimestamp(GlobalTransform[RunT]):
    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        if context.proposed_state is not None:
            context.run.state_timestamp = context.proposed_state.timestamp


class SetStartTime(GlobalTransform[RunT]):
    """The first RUNNING state starts the run."""

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        proposed = context.proposed_state
        if proposed is None:
            return
        if proposed.type == StateType.RUNNING and context.run.start_time is None:
            context.run.start_time = proposed.timestamp


class SetEndTime(GlobalTransform[RunT]):
    """Entering a terminal state ends the run (and starts it, if it never ran); leaving
    one clears the end time. Terminal -> terminal keeps the first end time."""

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        run, proposed = context.run, context.proposed_state
        if proposed is None:
            return
        if context.initial_state is not None and context.initial_state.is_terminal and not proposed.is_terminal:
            run.end_time = None
        if proposed.is_terminal and run.end_time is None:
            if run.start_time is None:
                run.start_time = proposed.timestamp
            run.end_time = proposed.timestamp


class IncrementRunTime(GlobalTransform[RunT]):
    """Leaving RUNNING adds the stretch just finished to total_run_time."""

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        initial, proposed = context.initial_state, context.proposed_state
        if proposed is None:
            return
        if initial is not None and initial.type == StateType.RUNNING:
            elapsed = proposed.timestamp - initial.timestamp
            context.run.total_run_time += elapsed.total_seconds()


class SetExpectedStartTime(GlobalTransform[RunT]):
    """Set once, by the first state: its scheduled time if SCHEDULED, else its timestamp."""

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        proposed = context.proposed_state
        if proposed is None or context.run.expected_start_time is not None:
            return
        if proposed.type == StateType.SCHEDULED:
            context.run.expected_start_time = proposed.state_details.scheduled_time
        else:
            context.run.expected_start_time = proposed.timestamp


class SetNextScheduledStartTime(GlobalTransform[RunT]):
    """The scheduled time while the run is SCHEDULED, else unset."""

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        proposed = context.proposed_state
        if proposed is None:
            return
        if context.initial_type == StateType.SCHEDULED:
            context.run.next_scheduled_start_time = None
        if proposed.type == StateType.SCHEDULED:
            context.run.next_scheduled_start_time = proposed.state_details.scheduled_time


class UpdateStateDetails(GlobalTransform[FlowRun]):
    async def before_transition(self, context: FlowRunContext) -> None:
        if context.proposed_state is not None:
            context.proposed_state.state_details.flow_run_id = context.run.id


class UpdateSubflowStateDetails(GlobalTransform[FlowRun]):
    """A subflow run's states point at the task run that represents it in the parent."""

    async def before_transition(self, context: FlowRunContext) -> None:
        if context.proposed_state is not None and context.run.parent_task_run_id:
            context.proposed_state.state_details.task_run_id = context.run.parent_task_run_id


class IncrementFlowRunCount(GlobalTransform[FlowRun]):
    """Each entry into RUNNING counts, except the one resuming from a suspension."""

    async def before_transition(self, context: FlowRunContext) -> None:
        if context.proposed_state is None or context.proposed_state.type != StateType.RUNNING:
            return
        if context.run.empirical_policy.resuming:
            return
        context.run.run_count += 1


class RemoveResumingIndicator(GlobalTransform[FlowRun]):
    async def before_transition(self, context: FlowRunContext) -> None:
        proposed = context.proposed_state
        if proposed is None:
            return
        policy = context.run.empirical_policy
        if policy.resuming and (proposed.type == StateType.RUNNING or proposed.is_terminal):
            policy.resuming = False


#: The bookkeeping flow runs and task runs share: state columns and timing.
RUN_BOOKKEEPING: Policy = (
    EnsureFlowRunStateTimestampIsUnique,
    SetRunStateType,
    SetRunStateName,
    SetRunStateTimestamp,
    SetStartTime,
    SetEndTime,
    IncrementRunTime,
    SetExpectedStartTime,
    SetNextScheduledStartTime,
)
