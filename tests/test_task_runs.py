"""TaskRunService through the public API, on both backends: idempotent creation, reads,
filtered and sorted pages, and orchestrated state changes with their bookkeeping."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from flowrun.v1 import filters_pb2, state_pb2, task_run_pb2, task_run_service_pb2_grpc
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.helpers.rich_errors import expect_error

RESULT = {"type": "reference", "storage_key": "results/abc"}  # persisted result metadata
DATA_LOSS = "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not."


@pytest.fixture(scope="session")
def tasks(channel) -> task_run_service_pb2_grpc.TaskRunServiceStub:
    return task_run_service_pb2_grpc.TaskRunServiceStub(channel)


async def new_flow_run(flows, runs, unique: str) -> str:
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"tasks-{unique}"))).flow
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run.id


def state(state_type: int, **kwargs) -> state_pb2.StateCreate:
    return state_pb2.StateCreate(type=state_type, **kwargs)


def json_value(value) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


async def set_state(tasks, task_run_id: str, state_type: int, *, force: bool = False, **kwargs):
    return await tasks.SetTaskRunState(
        tasks_pb.SetTaskRunStateRequest(task_run_id=task_run_id, state=state(state_type, **kwargs), force=force)
    )


def inputs(*items: task_run_pb2.TaskRunInput) -> task_run_pb2.TaskRunInputs:
    return task_run_pb2.TaskRunInputs(inputs=list(items))


# -- CreateTaskRun ------------------------------------------------------------------------


async def test_create_starts_pending_with_bookkeeping_and_round_trips_fields(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    upstream, other_flow_run = str(uuid.uuid4()), str(uuid.uuid4())
    request = tasks_pb.CreateTaskRunRequest(
        flow_run_id=flow_run_id,
        task_key="extract-1a2b",
        dynamic_key="0",
        cache_key="ck",
        task_version="1.2",
        tags=["etl", "nightly"],
        empirical_policy=task_run_pb2.TaskRunPolicy(
            retries=2, retry_delay=Duration(seconds=5), retry_jitter_factor=0.5
        ),
        task_inputs={
            "x": inputs(task_run_pb2.TaskRunInput(task_run_id=upstream)),
            "y": inputs(
                task_run_pb2.TaskRunInput(parameter="limit"),
                task_run_pb2.TaskRunInput(constant_type="int"),
                task_run_pb2.TaskRunInput(flow_run_id=other_flow_run.upper()),
            ),
            "__parents__": inputs(task_run_pb2.TaskRunInput(task_run_id=upstream)),
        },
    )
    request.labels.update({"team": "data", "tier": 1})
    created = await tasks.CreateTaskRun(request)
    run = created.task_run
    assert created.created
    uuid.UUID(run.id)
    assert run.flow_run_id == flow_run_id
    assert (run.task_key, run.dynamic_key, run.name) == ("extract-1a2b", "0", "extract-1a2b")  # name defaults to key
    assert (run.cache_key, run.task_version, list(run.tags)) == ("ck", "1.2", ["etl", "nightly"])
    assert json_format.MessageToDict(run.labels) == {"team": "data", "tier": 1}
    assert run.empirical_policy.retries == 2 and run.empirical_policy.retry_delay.seconds == 5
    assert run.empirical_policy.retry_jitter_factor == 0.5
    assert list(run.task_inputs["x"].inputs) == [task_run_pb2.TaskRunInput(task_run_id=upstream)]
    assert list(run.task_inputs["y"].inputs) == [
        task_run_pb2.TaskRunInput(parameter="limit"),
        task_run_pb2.TaskRunInput(constant_type="int"),
        task_run_pb2.TaskRunInput(flow_run_id=other_flow_run),  # canonical lowercase
    ]
    assert list(run.task_inputs["__parents__"].inputs) == [task_run_pb2.TaskRunInput(task_run_id=upstream)]

    assert run.state.type == state_pb2.STATE_TYPE_PENDING and run.state.name == "Pending"
    assert run.state_type == state_pb2.STATE_TYPE_PENDING and run.state_name == "Pending"
    assert run.state_id == run.state.id
    assert run.state.state_details.task_run_id == run.id
    assert run.state.state_details.flow_run_id == flow_run_id
    assert run.expected_start_time == run.state.timestamp
    assert run.run_count == 0 and not run.HasField("start_time")

    fetched = (await tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id))).task_run
    assert fetched == run


async def test_create_is_idempotent_per_flow_run_task_key_and_dynamic_key(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    first = await tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t", name="one"))
    again = await tasks.CreateTaskRun(
        tasks_pb.CreateTaskRunRequest(
            flow_run_id=flow_run_id, task_key="t", name="two", tags=["x"], state=state(state_pb2.STATE_TYPE_RUNNING)
        )
    )
    assert first.created and not again.created
    assert again.task_run == first.task_run  # unchanged: name, tags and state of the retry are ignored
    other_key = await tasks.CreateTaskRun(
        tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t", dynamic_key="1")
    )
    assert other_key.created and other_key.task_run.id != first.task_run.id


async def test_concurrent_creates_of_one_key_make_one_task_run(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    request = tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="race")
    results = await asyncio.gather(*(tasks.CreateTaskRun(request) for _ in range(8)))
    assert sum(result.created for result in results) == 1
    assert len({result.task_run.id for result in results}) == 1


async def test_create_in_running_state_counts_the_run(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    run = (
        await tasks.CreateTaskRun(
            tasks_pb.CreateTaskRunRequest(
                flow_run_id=flow_run_id, task_key="t", state=state(state_pb2.STATE_TYPE_RUNNING, name="Retrying")
            )
        )
    ).task_run
    assert (run.state.type, run.state.name) == (state_pb2.STATE_TYPE_RUNNING, "Retrying")
    assert run.run_count == 1
    assert run.start_time == run.state.timestamp == run.expected_start_time


async def test_create_rejects_bad_input(tasks):
    error = await expect_error(tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id="nope")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.reason == "INVALID_ARGUMENT"
    assert set(error.field_violations) == {"flow_run_id", "task_key"}

    bad_inputs = tasks_pb.CreateTaskRunRequest(
        flow_run_id=str(uuid.uuid4()),
        task_key="t",
        task_inputs={"x": inputs(task_run_pb2.TaskRunInput(task_run_id="not-a-uuid"), task_run_pb2.TaskRunInput())},
        state=state(state_pb2.STATE_TYPE_UNSPECIFIED),
    )
    error = await expect_error(tasks.CreateTaskRun(bad_inputs))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.field_violations) == {
        "task_inputs['x'].inputs[0].task_run_id",
        "task_inputs['x'].inputs[1]",
        "state.type",
    }


async def test_create_in_unknown_flow_run_is_not_found(tasks):
    flow_run_id = str(uuid.uuid4())
    error = await expect_error(
        tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t"))
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_RUN_NOT_FOUND" and error.metadata == {"flow_run_id": flow_run_id}


# -- GetTaskRun ----------------------------------------------------------------------------


async def test_get_errors(tasks):
    missing = str(uuid.uuid4())
    error = await expect_error(tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=missing)))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "TASK_RUN_NOT_FOUND" and error.metadata == {"task_run_id": missing}
    error = await expect_error(tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id="x")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and set(error.field_violations) == {"task_run_id"}


# -- ListTaskRuns ---------------------------------------------------------------------------


async def make_task_runs(flows, runs, tasks, unique: str, names: list[str]) -> tuple[str, list[task_run_pb2.TaskRun]]:
    flow_run_id = await new_flow_run(flows, runs, unique)
    made = []
    for index, name in enumerate(names):
        request = tasks_pb.CreateTaskRunRequest(
            flow_run_id=flow_run_id, task_key=f"k{index}", name=name, tags=["even" if index % 2 == 0 else "odd"]
        )
        made.append((await tasks.CreateTaskRun(request)).task_run)
    return flow_run_id, made


def of_flow_run(flow_run_id: str, **kwargs) -> filters_pb2.TaskRunFilter:
    return filters_pb2.TaskRunFilter(flow_run_id=filters_pb2.IdFilter(any=[flow_run_id]), **kwargs)


async def list_all(tasks, task_run_filter, sort=0, page_size=2) -> tuple[list[task_run_pb2.TaskRun], int]:
    found, pages, token = [], 0, ""
    while True:
        page = await tasks.ListTaskRuns(
            tasks_pb.ListTaskRunsRequest(
                task_run_filter=task_run_filter, sort=sort, page_size=page_size, page_token=token
            )
        )
        found.extend(page.task_runs)
        pages += 1
        token = page.next_page_token
        if not token:
            return found, pages


async def test_list_pages_through_every_sort(flows, runs, tasks, unique):
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    flow_run_id, made = await make_task_runs(flows, runs, tasks, unique, names)
    by_id = {run.id: run for run in made}

    found, pages = await list_all(tasks, of_flow_run(flow_run_id))
    assert pages == 3
    assert [run.id for run in found] == sorted(by_id, reverse=True)  # default: id descending

    found, _ = await list_all(tasks, of_flow_run(flow_run_id), sort=filters_pb2.TASK_RUN_SORT_NAME_ASC)
    assert [run.name for run in found] == sorted(names)
    found, _ = await list_all(tasks, of_flow_run(flow_run_id), sort=filters_pb2.TASK_RUN_SORT_NAME_DESC)
    assert [run.name for run in found] == sorted(names, reverse=True)

    # Created one after the other: expected start times follow creation order.
    found, _ = await list_all(tasks, of_flow_run(flow_run_id), sort=filters_pb2.TASK_RUN_SORT_EXPECTED_START_TIME_ASC)
    assert [run.name for run in found] == names
    found, _ = await list_all(tasks, of_flow_run(flow_run_id), sort=filters_pb2.TASK_RUN_SORT_EXPECTED_START_TIME_DESC)
    assert [run.name for run in found] == names[::-1]

    # Only one task run has an end time / a next scheduled time; the others come last.
    await set_state(tasks, made[3].id, state_pb2.STATE_TYPE_COMPLETED)
    found, _ = await list_all(tasks, of_flow_run(flow_run_id), sort=filters_pb2.TASK_RUN_SORT_END_TIME_DESC)
    assert found[0].name == "charlie" and len(found) == 5
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    await set_state(
        tasks, made[4].id, state_pb2.STATE_TYPE_SCHEDULED, state_details=state_pb2.StateDetails(scheduled_time=later)
    )
    found, _ = await list_all(
        tasks, of_flow_run(flow_run_id), sort=filters_pb2.TASK_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC
    )
    assert found[0].name == "bravo" and found[0].next_scheduled_start_time == later and len(found) == 5


async def test_list_filters(flows, runs, tasks, unique):
    flow_run_id, made = await make_task_runs(flows, runs, tasks, unique, ["load-a", "load-b", "save-c"])
    await set_state(tasks, made[0].id, state_pb2.STATE_TYPE_RUNNING)

    async def names(**kwargs) -> list[str]:
        page = await tasks.ListTaskRuns(
            tasks_pb.ListTaskRunsRequest(
                task_run_filter=of_flow_run(flow_run_id, **kwargs), sort=filters_pb2.TASK_RUN_SORT_NAME_ASC
            )
        )
        return [run.name for run in page.task_runs]

    assert await names() == ["load-a", "load-b", "save-c"]
    assert await names(name=filters_pb2.StringFilter(like="LOAD")) == ["load-a", "load-b"]
    assert await names(name=filters_pb2.StringFilter(any=["save-c"])) == ["save-c"]
    assert await names(id=filters_pb2.IdFilter(any=[made[1].id])) == ["load-b"]
    assert await names(tags=filters_pb2.TagsFilter(all=["even"])) == ["load-a", "save-c"]
    running = filters_pb2.TaskRunStateFilter(type=filters_pb2.StateTypeFilter(any=[state_pb2.STATE_TYPE_RUNNING]))
    assert await names(state=running) == ["load-a"]
    pending = filters_pb2.TaskRunStateFilter(name=filters_pb2.StringFilter(any=["Pending"]))
    assert await names(state=pending) == ["load-b", "save-c"]
    assert await names(start_time=filters_pb2.TimeFilter(is_null=False)) == ["load-a"]
    assert await names(end_time=filters_pb2.TimeFilter(is_null=True)) == ["load-a", "load-b", "save-c"]
    assert await names(subflow_runs=filters_pb2.SubflowRunsFilter(exists=True)) == []
    assert await names(subflow_runs=filters_pb2.SubflowRunsFilter(exists=False)) == ["load-a", "load-b", "save-c"]
    either = filters_pb2.StringFilter(operator=filters_pb2.FILTER_OPERATOR_OR, any=["save-c"], like="-a")
    assert await names(name=either) == ["load-a", "save-c"]
    running_or_named = filters_pb2.TaskRunStateFilter(
        operator=filters_pb2.FILTER_OPERATOR_OR,
        type=filters_pb2.StateTypeFilter(any=[state_pb2.STATE_TYPE_RUNNING]),
        name=filters_pb2.StringFilter(any=["Nope"]),
    )
    assert await names(state=running_or_named) == ["load-a"]
    # flow_run_id.is_null=true ignores any (the reference's precedence): none of ours.
    page = await tasks.ListTaskRuns(
        tasks_pb.ListTaskRunsRequest(
            task_run_filter=filters_pb2.TaskRunFilter(flow_run_id=filters_pb2.IdFilter(any=[flow_run_id], is_null=True))
        )
    )
    assert not any(run.flow_run_id == flow_run_id for run in page.task_runs)


async def test_list_paging_errors(flows, runs, tasks, unique):
    flow_run_id, _ = await make_task_runs(flows, runs, tasks, unique, ["a", "b", "c"])
    first = await tasks.ListTaskRuns(
        tasks_pb.ListTaskRunsRequest(task_run_filter=of_flow_run(flow_run_id), page_size=1)
    )
    assert len(first.task_runs) == 1 and first.next_page_token

    other_filter = tasks_pb.ListTaskRunsRequest(
        task_run_filter=of_flow_run(flow_run_id, name=filters_pb2.StringFilter(like="a")),
        page_size=1,
        page_token=first.next_page_token,
    )
    error = await expect_error(tasks.ListTaskRuns(other_filter))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.reason == "INVALID_PAGE_TOKEN"
    other_sort = tasks_pb.ListTaskRunsRequest(
        task_run_filter=of_flow_run(flow_run_id),
        sort=filters_pb2.TASK_RUN_SORT_NAME_ASC,
        page_size=1,
        page_token=first.next_page_token,
    )
    error = await expect_error(tasks.ListTaskRuns(other_sort))
    assert error.reason == "INVALID_PAGE_TOKEN" and set(error.field_violations) == {"page_token"}

    error = await expect_error(tasks.ListTaskRuns(tasks_pb.ListTaskRunsRequest(page_size=-1)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and set(error.field_violations) == {"page_size"}
    error = await expect_error(tasks.ListTaskRuns(tasks_pb.ListTaskRunsRequest(sort=99)))
    assert set(error.field_violations) == {"sort"}
    bad_filter = tasks_pb.ListTaskRunsRequest(
        task_run_filter=filters_pb2.TaskRunFilter(id=filters_pb2.IdFilter(any=["x"]))
    )
    error = await expect_error(tasks.ListTaskRuns(bad_filter))
    assert set(error.field_violations) == {"task_run_filter.id.any[0]"}

    capped = await tasks.ListTaskRuns(
        tasks_pb.ListTaskRunsRequest(task_run_filter=of_flow_run(flow_run_id), page_size=10_000)
    )
    assert len(capped.task_runs) == 3 and not capped.next_page_token


# -- SetTaskRunState --------------------------------------------------------------------------


async def test_set_state_bookkeeping_through_a_life_cycle(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    run = (await tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t"))).task_run
    pending = run.state

    running = await set_state(tasks, run.id, state_pb2.STATE_TYPE_RUNNING)
    assert running.status == state_pb2.SET_STATE_STATUS_ACCEPT and running.HasField("accept")
    assert running.state.state_details.task_run_id == run.id
    assert running.state.state_details.flow_run_id == flow_run_id
    done = await set_state(tasks, run.id, state_pb2.STATE_TYPE_COMPLETED, message="ok")
    assert done.status == state_pb2.SET_STATE_STATUS_ACCEPT
    after = (await tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id))).task_run
    assert after.state == done.state and after.state.message == "ok"
    assert (after.state_type, after.state_name) == (state_pb2.STATE_TYPE_COMPLETED, "Completed")
    assert after.run_count == 1
    assert after.expected_start_time == pending.timestamp  # set once, by the first state
    assert after.start_time == running.state.timestamp
    assert after.end_time == done.state.timestamp
    ran = done.state.timestamp.ToDatetime() - running.state.timestamp.ToDatetime()
    assert after.total_run_time.ToTimedelta() == ran > timedelta(0)
    assert after.estimated_run_time == after.total_run_time

    # A retry: leaving the terminal state clears the end time, RUNNING counts again.
    scheduled_time = Timestamp()
    scheduled_time.FromDatetime(datetime.now(UTC) + timedelta(minutes=5))
    retry = await set_state(
        tasks,
        run.id,
        state_pb2.STATE_TYPE_SCHEDULED,
        name="AwaitingRetry",
        state_details=state_pb2.StateDetails(scheduled_time=scheduled_time),
    )
    assert retry.status == state_pb2.SET_STATE_STATUS_ACCEPT
    mid = (await tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id))).task_run
    assert not mid.HasField("end_time")
    assert mid.next_scheduled_start_time == scheduled_time
    assert mid.expected_start_time == pending.timestamp
    again = await set_state(tasks, run.id, state_pb2.STATE_TYPE_RUNNING, name="Retrying")
    assert again.state.name == "Retrying"
    final = (await tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id))).task_run
    assert final.run_count == 2
    assert not final.HasField("next_scheduled_start_time")
    assert final.start_time == running.state.timestamp  # the first start stays
    assert final.estimated_run_time.ToTimedelta() >= final.total_run_time.ToTimedelta()

    stamps = [s.timestamp.ToDatetime() for s in (pending, running.state, done.state, retry.state, again.state)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_concurrent_proposals_are_serialized_by_the_row_lock(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    run = (await tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t"))).task_run
    results = await asyncio.gather(*(set_state(tasks, run.id, state_pb2.STATE_TYPE_RUNNING) for _ in range(10)))
    assert all(result.status == state_pb2.SET_STATE_STATUS_ACCEPT for result in results)
    final = (await tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id))).task_run
    assert final.run_count == 10  # no lost update
    stamps = sorted(result.state.timestamp.ToDatetime() for result in results)
    assert len(set(stamps)) == 10 and final.state.timestamp.ToDatetime() == stamps[-1]


@pytest.mark.parametrize("force", [False, True])
async def test_completed_result_is_never_overwritten_without_one(flows, runs, tasks, unique, force):
    flow_run_id = await new_flow_run(flows, runs, unique)
    run = (await tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t"))).task_run
    await set_state(tasks, run.id, state_pb2.STATE_TYPE_RUNNING)
    done = await set_state(tasks, run.id, state_pb2.STATE_TYPE_COMPLETED, data=json_value(RESULT))
    assert done.status == state_pb2.SET_STATE_STATUS_ACCEPT
    assert json_format.MessageToDict(done.state.data) == RESULT

    rejected = await set_state(tasks, run.id, state_pb2.STATE_TYPE_COMPLETED, force=force)
    assert rejected.status == state_pb2.SET_STATE_STATUS_REJECT
    assert rejected.reject.reason == DATA_LOSS
    assert rejected.state == done.state  # the current state, unchanged
    current = (await tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id))).task_run
    assert current.state == done.state

    # With a result of its own the new COMPLETED state is fine; leaving COMPLETED is too.
    replaced = await set_state(tasks, run.id, state_pb2.STATE_TYPE_COMPLETED, force=force, data=json_value(RESULT))
    assert replaced.status == state_pb2.SET_STATE_STATUS_ACCEPT
    failed = await set_state(tasks, run.id, state_pb2.STATE_TYPE_FAILED, force=force)
    assert failed.status == state_pb2.SET_STATE_STATUS_ACCEPT


async def test_set_state_errors(tasks):
    missing = str(uuid.uuid4())
    error = await expect_error(set_state(tasks, missing, state_pb2.STATE_TYPE_RUNNING))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "TASK_RUN_NOT_FOUND" and error.metadata == {"task_run_id": missing}
    error = await expect_error(tasks.SetTaskRunState(tasks_pb.SetTaskRunStateRequest(task_run_id="bad")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.field_violations) == {"task_run_id", "state"}
    error = await expect_error(set_state(tasks, missing, state_pb2.STATE_TYPE_UNSPECIFIED))
    assert set(error.field_violations) == {"state.type"}


async def test_deleting_the_flow_run_deletes_its_task_runs(flows, runs, tasks, unique):
    flow_run_id = await new_flow_run(flows, runs, unique)
    run = (await tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key="t"))).task_run
    await set_state(tasks, run.id, state_pb2.STATE_TYPE_RUNNING)
    await runs.DeleteFlowRun(runs_pb.DeleteFlowRunRequest(flow_run_id=flow_run_id))
    error = await expect_error(tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=run.id)))
    assert error.code == grpc.StatusCode.NOT_FOUND
