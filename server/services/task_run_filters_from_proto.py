"""ListTaskRunsRequest -> (TaskRunFilter, TaskRunSort, PageRequest), with validation.

The filter message itself is read by filters_from_proto.task_run_filter (shared with the
cross-entity filters of ListFlows / ListFlowRuns); this module adds the task-run sort.
It can be folded into filters_from_proto once both are merged."""

from __future__ import annotations

from flowrun.v1 import filters_pb2, task_run_service_pb2
from server.domain.filters import PageRequest, TaskRunFilter
from server.domain.task_runs import TaskRunSort
from server.errors import InvalidArgument
from server.services import filters_from_proto

_TASK_RUN_SORTS: dict[int, TaskRunSort] = {
    number: TaskRunSort(name.removeprefix("TASK_RUN_SORT_"))
    for name, number in filters_pb2.TaskRunSort.items()
    if number != filters_pb2.TASK_RUN_SORT_UNSPECIFIED
}
_TASK_RUN_SORTS[filters_pb2.TASK_RUN_SORT_UNSPECIFIED] = TaskRunSort.ID_DESC


def task_run_sort(value: int) -> TaskRunSort:
    """TaskRunSort enum number -> TaskRunSort; UNSPECIFIED is ID_DESC."""
    try:
        return _TASK_RUN_SORTS[value]
    except KeyError:
        raise InvalidArgument.field("sort", f"unknown TaskRunSort value {value}") from None


def list_task_runs_request(
    request: task_run_service_pb2.ListTaskRunsRequest,
) -> tuple[TaskRunFilter | None, TaskRunSort, PageRequest]:
    return (
        filters_from_proto.task_run_filter(request, "task_run_filter"),
        task_run_sort(request.sort),
        filters_from_proto.page_request(request),
    )
