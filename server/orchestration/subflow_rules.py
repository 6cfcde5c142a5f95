"""Subflow bookkeeping: a subflow run is represented in its parent flow run by a task
run (the run's parent_task_run_id), whose state mirrors the subflow's."""

from __future__ import annotations

from flowrun.server import errors
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.orchestration.context import FlowRunContext
from flowrun.server.orchestration.rules import GlobalTransform
from flowrun.server.orchestration.task_runs import TASK_RUNS
from flowrun.server.orchestration.transitions import set_state


class UpdateSubflowParentTask(GlobalTransform[FlowRun]):
    """After a subflow run's state is validated, the parent task run is force-set to a
    fresh copy of it (new id and timestamp) whose child_flow_run_id names the subflow
    run, in the same transaction (spec 4.8 item 11).

    Runs without a parent task return on the first check. A parent task run that no
    longer exists is skipped (set_state checks before it writes anything): the
    reference would fail the subflow's own transition with a 404 instead."""

    async def after_transition(self, context: FlowRunContext) -> None:
        parent_task_run_id = context.run.parent_task_run_id
        if not parent_task_run_id or self.nullified or context.validated_state is None:
            return
        mirrored = context.validated_state.fresh_copy(context.now)
        mirrored.state_details.child_flow_run_id = context.run.id
        try:
            await set_state(
                context.repos,
                TASK_RUNS,
                parent_task_run_id,
                mirrored,
                context.now,
                force=True,
                settings=context.settings,
            )
        except errors.NotFound:
            return
