"""Task runs, as far as flow runs need them: the dependency map of a flow run and the
nodes of its graph. (Creating and orchestrating task runs comes with their own service.)"""

from __future__ import annotations

from sqlalchemy import select

from server.db.tables import task_run, task_run_state
from server.domain.task_runs import TaskRunDependency
from server.repositories.base import Repository
from server.repositories.flow_run_states import state_from_row

_state_columns = [column.label(f"current_state_{column.name}") for column in task_run_state.c]


class TaskRunRepository(Repository):
    async def dependencies(self, flow_run_id: str) -> list[TaskRunDependency]:
        """Every task run of the flow run (newest id first) with the ids it depends on:
        the union of all task_inputs lists that name a task run, __parents__ included."""
        query = (
            select(task_run, *_state_columns)
            .select_from(task_run.outerjoin(task_run_state, task_run_state.c.id == task_run.c.state_id))
            .where(task_run.c.flow_run_id == flow_run_id)
            .order_by(task_run.c.id.desc())
        )
        result = []
        for row in await self.connection.execute(query):
            upstream: dict[str, None] = {}
            for inputs in (row.task_inputs or {}).values():
                for item in inputs:
                    if item.get("input_type") == "task_run" and item.get("id"):
                        upstream[str(item["id"])] = None
            state = state_from_row(row, "current_state_") if row.current_state_id else None
            result.append(
                TaskRunDependency(
                    id=row.id,
                    name=row.name,
                    upstream_task_run_ids=list(upstream),
                    state=state,
                    expected_start_time=row.expected_start_time,
                    start_time=row.start_time,
                    end_time=row.end_time,
                    total_run_time=row.total_run_time,
                    state_type=row.state_type,
                    state_timestamp=row.state_timestamp,
                )
            )
        return result
