"""What a user observes of flows, flow runs and state histories through the API
(spec 2.1-2.3 and the RPC comments): get-or-create, idempotency keys under concurrency,
update masks, cascading deletes, labels, state history reads and result data."""

from __future__ import annotations

import asyncio
import re
import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Struct, Value

from flowrun.v1 import filters_pb2, flow_pb2, flow_run_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.factories import create_deployment
from tests.helpers.rich_errors import expect_error

SLUG = re.compile(r"^[a-z]+-[a-z]+$")


def struct(value: dict) -> Struct:
    message = Struct()
    message.update(value)
    return message


def json_value(value) -> Value:
    return ParseDict(value, Value())


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


async def create_flow(flows, name: str, **kwargs) -> flow_pb2.Flow:
    return (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=name, **kwargs))).flow


async def create_run(runs, flow_id: str, **kwargs) -> flow_run_pb2.FlowRun:
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id, **kwargs))).flow_run


async def set_state(runs, run_id: str, state_type: int, *, force: bool = True, **kwargs):
    return await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type, **kwargs), force=force
        )
    )


async def get_run(runs, run_id: str) -> flow_run_pb2.FlowRun:
    return (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run_id))).flow_run


async def history(runs, run_id: str) -> list[state_pb2.State]:
    return list((await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run_id))).states)


def stable(run: flow_run_pb2.FlowRun) -> flow_run_pb2.FlowRun:
    """The run without the fields computed from the server's clock at read time
    (estimated run time, lateness), so two reads of an unchanged run compare equal."""
    copy = flow_run_pb2.FlowRun()
    copy.CopyFrom(run)
    copy.ClearField("estimated_run_time")
    copy.ClearField("estimated_start_time_delta")
    return copy


async def expect_code(call, code: grpc.StatusCode):
    error = await expect_error(call)
    assert error.code == code, (error.code, error.message)
    return error


# -- flows ------------------------------------------------------------------------------------


async def test_create_flow_is_get_or_create(flows, unique):
    name = f"get-or-create-{unique}"
    first = await flows.CreateFlow(
        flows_pb.CreateFlowRequest(name=name, tags=["a", "b"], labels=struct({"team": "data", "tier": 2}))
    )
    assert first.created
    second = await flows.CreateFlow(
        flows_pb.CreateFlowRequest(name=name, tags=["other"], labels=struct({"team": "ops"}))
    )
    assert not second.created
    assert second.flow == first.flow, "the existing flow is returned unchanged"
    assert list(second.flow.tags) == ["a", "b"]
    assert MessageToDict(second.flow.labels) == {"team": "data", "tier": 2}
    stored = (await flows.GetFlow(flows_pb.GetFlowRequest(flow_id=first.flow.id))).flow
    assert stored == first.flow


async def test_concurrent_create_flow_creates_exactly_once(flows, unique):
    name = f"race-{unique}"
    responses = await asyncio.gather(
        *(flows.CreateFlow(flows_pb.CreateFlowRequest(name=name, tags=[f"t{i}"])) for i in range(10))
    )
    assert len({r.flow.id for r in responses}) == 1
    winners = [r for r in responses if r.created]
    assert len(winners) == 1
    stored = (await flows.GetFlowByName(flows_pb.GetFlowByNameRequest(name=name))).flow
    assert list(stored.tags) == list(winners[0].flow.tags), "the creator's tags are the stored ones"
    count = await flows.CountFlows(flows_pb.CountFlowsRequest(flow_filter=filters_pb2.FlowFilter(name={"any": [name]})))
    assert count.count == 1


async def test_get_flow_by_name_is_exact(flows, unique):
    flow = await create_flow(flows, f"Exact-{unique}")
    found = (await flows.GetFlowByName(flows_pb.GetFlowByNameRequest(name=f"Exact-{unique}"))).flow
    assert found == flow
    for near in (f"exact-{unique}", f"Exact-{unique} ", f"Exact-{unique[:-1]}"):
        error = await expect_code(
            flows.GetFlowByName(flows_pb.GetFlowByNameRequest(name=near)), grpc.StatusCode.NOT_FOUND
        )
        assert error.reason == "FLOW_NOT_FOUND"


async def test_update_flow_tags_with_a_mask(flows, unique):
    flow = await create_flow(flows, f"update-{unique}", tags=["old"], labels=struct({"keep": "me"}))
    response = await flows.UpdateFlow(
        flows_pb.UpdateFlowRequest(flow=flow_pb2.Flow(id=flow.id, tags=["new", "newer"]), update_mask=mask("tags"))
    )
    updated = response.flow
    assert list(updated.tags) == ["new", "newer"]
    assert (updated.id, updated.name, updated.created) == (flow.id, flow.name, flow.created)
    assert MessageToDict(updated.labels) == {"keep": "me"}
    assert updated.updated.ToDatetime() > flow.updated.ToDatetime()
    assert (await flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id))).flow == updated

    # An empty tag list under the mask clears the tags.
    cleared = (
        await flows.UpdateFlow(flows_pb.UpdateFlowRequest(flow=flow_pb2.Flow(id=flow.id), update_mask=mask("tags")))
    ).flow
    assert list(cleared.tags) == []


async def test_update_flow_with_an_empty_mask_applies_the_set_fields(flows, unique):
    flow = await create_flow(flows, f"update-empty-{unique}", tags=["old"])
    changed = (await flows.UpdateFlow(flows_pb.UpdateFlowRequest(flow=flow_pb2.Flow(id=flow.id, tags=["x"])))).flow
    assert list(changed.tags) == ["x"]
    assert changed.updated.ToDatetime() > flow.updated.ToDatetime()
    # Nothing set, nothing changes, but `updated` is still bumped ("every call bumps updated").
    touched = (await flows.UpdateFlow(flows_pb.UpdateFlowRequest(flow=flow_pb2.Flow(id=flow.id)))).flow
    assert list(touched.tags) == ["x"]
    assert touched.updated.ToDatetime() > changed.updated.ToDatetime()


@pytest.mark.parametrize(
    "paths",
    [["labels"], ["name"], ["tags", "labels"], ["no_such_field"], ["id"], ["created"], ["tags", "bogus"]],
)
async def test_update_flow_rejects_paths_that_are_not_updatable(flows, unique, paths):
    flow = await create_flow(flows, f"update-bad-{unique}", tags=["old"], labels=struct({"a": "b"}))
    request = flows_pb.UpdateFlowRequest(
        flow=flow_pb2.Flow(id=flow.id, name="renamed", tags=["new"], labels=struct({"a": "c"})),
        update_mask=mask(*paths),
    )
    error = await expect_code(flows.UpdateFlow(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert any(field.startswith("update_mask") for field in error.field_violations), error.field_violations
    assert (await flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id))).flow == flow, "nothing was applied"


async def test_update_unknown_flow_is_not_found(flows):
    request = flows_pb.UpdateFlowRequest(flow=flow_pb2.Flow(id=str(uuid.uuid4()), tags=["x"]), update_mask=mask("tags"))
    await expect_code(flows.UpdateFlow(request), grpc.StatusCode.NOT_FOUND)


async def test_delete_flow_cascades_to_runs_and_states(flows, runs, unique):
    flow = await create_flow(flows, f"cascade-{unique}")
    doomed = [await create_run(runs, flow.id) for _ in range(2)]
    await set_state(runs, doomed[0].id, state_pb2.STATE_TYPE_RUNNING)
    states = [s.id for run in doomed for s in await history(runs, run.id)]
    assert len(states) == 3

    await flows.DeleteFlow(flows_pb.DeleteFlowRequest(flow_id=flow.id))

    await expect_code(flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id)), grpc.StatusCode.NOT_FOUND)
    for run in doomed:
        await expect_code(runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id)), grpc.StatusCode.NOT_FOUND)
        assert await history(runs, run.id) == []
    for state_id in states:
        await expect_code(
            runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=state_id)), grpc.StatusCode.NOT_FOUND
        )
    count = await runs.CountFlowRuns(
        runs_pb.CountFlowRunsRequest(flow_run_filter=filters_pb2.FlowRunFilter(flow_id={"any": [flow.id]}))
    )
    assert count.count == 0
    await expect_code(flows.DeleteFlow(flows_pb.DeleteFlowRequest(flow_id=flow.id)), grpc.StatusCode.NOT_FOUND)


async def test_delete_flows_returns_only_the_ids_that_existed(flows, runs, unique):
    kept = await create_flow(flows, f"bulk-kept-{unique}")
    doomed = [await create_flow(flows, f"bulk-{unique}-{i}") for i in range(3)]
    run = await create_run(runs, doomed[0].id)
    unknown = str(uuid.uuid4())

    response = await flows.DeleteFlows(
        flows_pb.DeleteFlowsRequest(flow_ids=[doomed[0].id, unknown, doomed[1].id, doomed[2].id.upper()])
    )
    assert sorted(response.deleted_flow_ids) == sorted(f.id for f in doomed)
    for flow in doomed:
        await expect_code(flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id)), grpc.StatusCode.NOT_FOUND)
    await expect_code(runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id)), grpc.StatusCode.NOT_FOUND)
    assert (await flows.GetFlow(flows_pb.GetFlowRequest(flow_id=kept.id))).flow == kept

    again = await flows.DeleteFlows(flows_pb.DeleteFlowsRequest(flow_ids=[f.id for f in doomed]))
    assert list(again.deleted_flow_ids) == []
    assert list((await flows.DeleteFlows(flows_pb.DeleteFlowsRequest())).deleted_flow_ids) == []


async def test_delete_flows_limits(flows):
    error = await expect_code(
        flows.DeleteFlows(flows_pb.DeleteFlowsRequest(flow_ids=[str(uuid.uuid4()) for _ in range(201)])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "flow_ids" in error.field_violations
    error = await expect_code(
        flows.DeleteFlows(flows_pb.DeleteFlowsRequest(flow_ids=[str(uuid.uuid4()), "nope"])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "flow_ids[1]" in error.field_violations


async def test_get_flow_labels(flows, unique):
    labelled = await create_flow(flows, f"labels-{unique}", labels=struct({"team": "data", "n": 3, "on": True}))
    bare = await create_flow(flows, f"no-labels-{unique}")
    labels = (await flows.GetFlowLabels(flows_pb.GetFlowLabelsRequest(flow_id=labelled.id))).labels
    assert MessageToDict(labels) == {"team": "data", "n": 3, "on": True}
    empty = (await flows.GetFlowLabels(flows_pb.GetFlowLabelsRequest(flow_id=bare.id))).labels
    assert MessageToDict(empty) == {}
    await expect_code(
        flows.GetFlowLabels(flows_pb.GetFlowLabelsRequest(flow_id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )


# -- creating runs ----------------------------------------------------------------------------


async def test_idempotency_key_returns_the_first_run_unchanged(flows, runs, unique):
    flow = await create_flow(flows, f"idem-{unique}")
    key = f"key-{unique}"
    first = await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, idempotency_key=key, name="first"))
    assert first.created
    retry = runs_pb.CreateFlowRunRequest(
        flow_id=flow.id,
        idempotency_key=key,
        name="second",
        tags=["x"],
        state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING),
    )
    second = await runs.CreateFlowRun(retry)
    assert not second.created
    assert second.flow_run.id == first.flow_run.id
    assert second.flow_run.name == "first" and list(second.flow_run.tags) == []
    assert second.flow_run.state == first.flow_run.state, "the state is not set again"
    assert second.flow_run.run_count == 0

    states = await history(runs, first.flow_run.id)
    assert [s.type for s in states] == [state_pb2.STATE_TYPE_PENDING]
    stored = await get_run(runs, first.flow_run.id)
    assert stored.idempotency_key == key and stored.state_type == state_pb2.STATE_TYPE_PENDING

    # The key is per flow: another flow gets its own run.
    other_flow = await create_flow(flows, f"idem-other-{unique}")
    other = await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=other_flow.id, idempotency_key=key))
    assert other.created and other.flow_run.id != first.flow_run.id
    # Without a key every call creates a run.
    a, b = [await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id)) for _ in range(2)]
    assert a.created and b.created and a.flow_run.id != b.flow_run.id


async def test_concurrent_creates_with_one_idempotency_key_make_one_run(flows, runs, unique):
    flow = await create_flow(flows, f"idem-race-{unique}")
    key = f"race-{unique}"
    responses = await asyncio.gather(
        *(
            runs.CreateFlowRun(
                runs_pb.CreateFlowRunRequest(
                    flow_id=flow.id,
                    idempotency_key=key,
                    state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING),
                )
            )
            for _ in range(10)
        )
    )
    assert len({r.flow_run.id for r in responses}) == 1
    assert sum(r.created for r in responses) == 1
    run_id = responses[0].flow_run.id
    assert [s.type for s in await history(runs, run_id)] == [state_pb2.STATE_TYPE_RUNNING]
    assert (await get_run(runs, run_id)).run_count == 1
    count = await runs.CountFlowRuns(
        runs_pb.CountFlowRunsRequest(flow_run_filter=filters_pb2.FlowRunFilter(flow_id={"any": [flow.id]}))
    )
    assert count.count == 1


async def test_run_labels_merge_flow_labels_then_flow_id_then_run_labels(flows, runs, unique):
    flow = await create_flow(
        flows, f"labels-run-{unique}", labels=struct({"team": "data", "env": "dev", "prefect.flow.id": "stale"})
    )
    run = await create_run(runs, flow.id, labels=struct({"env": "prod", "owner": "me", "weight": 1.5}))
    assert MessageToDict(run.labels) == {
        "team": "data",
        "env": "prod",
        "owner": "me",
        "weight": 1.5,
        "prefect.flow.id": flow.id,
    }
    assert (await get_run(runs, run.id)).labels == run.labels
    # The run's own labels come last, so they win even over the system label.
    custom = await create_run(runs, flow.id, labels=struct({"prefect.flow.id": "mine"}))
    assert MessageToDict(custom.labels)["prefect.flow.id"] == "mine"
    bare_flow = await create_flow(flows, f"labels-bare-{unique}")
    bare = await create_run(runs, bare_flow.id)
    assert MessageToDict(bare.labels) == {"prefect.flow.id": bare_flow.id}


async def test_run_name_defaults_to_a_random_slug(flows, runs, unique):
    flow = await create_flow(flows, f"names-{unique}")
    generated = [await create_run(runs, flow.id) for _ in range(3)]
    assert all(SLUG.match(run.name) for run in generated), [run.name for run in generated]
    named = await create_run(runs, flow.id, name="My Run_1")
    assert named.name == "My Run_1"


async def test_create_run_state(flows, runs, unique):
    flow = await create_flow(flows, f"initial-{unique}")
    pending = await create_run(runs, flow.id)
    assert pending.state.type == state_pb2.STATE_TYPE_PENDING and pending.state.name == "Pending"
    assert pending.run_count == 0 and not pending.HasField("start_time")
    assert pending.expected_start_time == pending.state.timestamp
    assert pending.state_id == pending.state.id

    running = await create_run(runs, flow.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
    assert running.state_type == state_pb2.STATE_TYPE_RUNNING and running.state_name == "Running"
    assert running.run_count == 1
    assert running.start_time == running.state.timestamp
    assert running.expected_start_time == running.state.timestamp
    stored = await get_run(runs, running.id)
    assert (stored.run_count, stored.start_time) == (1, running.start_time)

    scheduled_state = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    scheduled_state.state_details.scheduled_time.FromSeconds(4_102_444_800)  # 2100-01-01
    scheduled = await create_run(runs, flow.id, state=scheduled_state)
    assert scheduled.expected_start_time.seconds == 4_102_444_800
    assert scheduled.next_scheduled_start_time == scheduled.expected_start_time
    assert scheduled.run_count == 0 and not scheduled.HasField("start_time")


# -- updating runs ----------------------------------------------------------------------------


async def test_update_flow_run_fields_with_a_mask(flows, runs, unique):
    flow = await create_flow(flows, f"run-update-{unique}")
    run = await create_run(runs, flow.id, name="before", tags=["t"], flow_version="1", parameters=struct({"x": 1}))
    patch = flow_run_pb2.FlowRun(
        id=run.id,
        name="after",
        tags=["u", "v"],
        flow_version="2",
        parameters=struct({"y": "z"}),
        infrastructure_pid="pid-7",
    )
    updated = (
        await runs.UpdateFlowRun(
            runs_pb.UpdateFlowRunRequest(flow_run=patch, update_mask=mask("tags", "flow_version", "infrastructure_pid"))
        )
    ).flow_run
    assert list(updated.tags) == ["u", "v"]
    assert (updated.flow_version, updated.infrastructure_pid) == ("2", "pid-7")
    assert updated.name == "before", "paths outside the mask are left alone"
    assert MessageToDict(updated.parameters) == {"x": 1}
    assert updated.state == run.state and updated.created == run.created
    assert updated.updated.ToDatetime() > run.updated.ToDatetime()
    assert stable(await get_run(runs, run.id)) == stable(updated)

    # An empty mask applies every updatable field that is set.
    everything = (await runs.UpdateFlowRun(runs_pb.UpdateFlowRunRequest(flow_run=patch))).flow_run
    assert everything.name == "after"
    assert MessageToDict(everything.parameters) == {"y": "z"}


async def test_update_flow_run_empty_name_draws_a_random_name(flows, runs, unique):
    flow = await create_flow(flows, f"rename-{unique}")
    run = await create_run(runs, flow.id, name="Named Run")
    renamed = (
        await runs.UpdateFlowRun(
            runs_pb.UpdateFlowRunRequest(flow_run=flow_run_pb2.FlowRun(id=run.id, name=""), update_mask=mask("name"))
        )
    ).flow_run
    assert SLUG.match(renamed.name), renamed.name


async def test_update_flow_run_replaces_the_empirical_policy_wholesale(flows, runs, unique):
    flow = await create_flow(flows, f"policy-{unique}")
    policy = flow_run_pb2.FlowRunPolicy(retries=3, resuming=True, pause_keys=["k"])
    policy.retry_delay.FromSeconds(10)
    run = await create_run(runs, flow.id, empirical_policy=policy)
    assert run.empirical_policy.retries == 3 and run.empirical_policy.retry_delay.seconds == 10

    partial = (
        await runs.UpdateFlowRun(
            runs_pb.UpdateFlowRunRequest(
                flow_run=flow_run_pb2.FlowRun(id=run.id, empirical_policy=flow_run_pb2.FlowRunPolicy(retries=1)),
                update_mask=mask("empirical_policy"),
            )
        )
    ).flow_run.empirical_policy
    assert partial.retries == 1
    assert not partial.HasField("retry_delay") and not partial.resuming and list(partial.pause_keys) == []

    reset = (
        await runs.UpdateFlowRun(
            runs_pb.UpdateFlowRunRequest(flow_run=flow_run_pb2.FlowRun(id=run.id), update_mask=mask("empirical_policy"))
        )
    ).flow_run.empirical_policy
    assert reset == flow_run_pb2.FlowRunPolicy(), "an empty policy resets every field"


@pytest.mark.parametrize(
    "paths", [["state"], ["state_type"], ["tags", "state"], ["id"], ["flow_id"], ["run_count"], ["nonexistent"]]
)
async def test_update_flow_run_rejects_paths_that_are_not_updatable(flows, runs, unique, paths):
    flow = await create_flow(flows, f"run-update-bad-{unique}")
    run = await create_run(runs, flow.id, tags=["t"])
    patch = flow_run_pb2.FlowRun(id=run.id, tags=["changed"], state_type=state_pb2.STATE_TYPE_COMPLETED, run_count=5)
    patch.state.type = state_pb2.STATE_TYPE_COMPLETED
    error = await expect_code(
        runs.UpdateFlowRun(runs_pb.UpdateFlowRunRequest(flow_run=patch, update_mask=mask(*paths))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert any(field.startswith("update_mask") for field in error.field_violations), error.field_violations
    assert stable(await get_run(runs, run.id)) == stable(run), "nothing was applied"


async def test_job_variables_update_needs_a_scheduled_deployment_run(flows, runs, channel, unique):
    flow = await create_flow(flows, f"jobvars-{unique}")

    def request(run_id: str) -> runs_pb.UpdateFlowRunRequest:
        return runs_pb.UpdateFlowRunRequest(
            flow_run=flow_run_pb2.FlowRun(id=run_id, job_variables=struct({"memory": "2Gi"})),
            update_mask=mask("job_variables"),
        )

    deployment_id = await create_deployment(channel, flow.id)
    pending = await create_run(runs, flow.id, deployment_id=deployment_id)
    await expect_code(runs.UpdateFlowRun(request(pending.id)), grpc.StatusCode.FAILED_PRECONDITION)

    scheduled = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    no_deployment = await create_run(runs, flow.id, state=scheduled)
    await expect_code(runs.UpdateFlowRun(request(no_deployment.id)), grpc.StatusCode.FAILED_PRECONDITION)

    ready = await create_run(runs, flow.id, state=scheduled, deployment_id=deployment_id)
    updated = (await runs.UpdateFlowRun(request(ready.id))).flow_run
    assert MessageToDict(updated.job_variables) == {"memory": "2Gi"}
    assert (await get_run(runs, pending.id)).job_variables == pending.job_variables


async def test_update_unknown_flow_run_is_not_found(runs):
    request = runs_pb.UpdateFlowRunRequest(
        flow_run=flow_run_pb2.FlowRun(id=str(uuid.uuid4()), tags=["x"]), update_mask=mask("tags")
    )
    await expect_code(runs.UpdateFlowRun(request), grpc.StatusCode.NOT_FOUND)


# -- deleting runs and states -------------------------------------------------------------------


async def test_delete_flow_run(flows, runs, unique):
    flow = await create_flow(flows, f"delete-run-{unique}")
    run, sibling = await create_run(runs, flow.id), await create_run(runs, flow.id)
    await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING)
    states = await history(runs, run.id)

    await runs.DeleteFlowRun(runs_pb.DeleteFlowRunRequest(flow_run_id=run.id))

    await expect_code(runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id)), grpc.StatusCode.NOT_FOUND)
    for state in states:
        await expect_code(
            runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=state.id)), grpc.StatusCode.NOT_FOUND
        )
    assert await history(runs, run.id) == []
    assert stable(await get_run(runs, sibling.id)) == stable(sibling)
    assert (await flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id))).flow == flow
    await expect_code(runs.DeleteFlowRun(runs_pb.DeleteFlowRunRequest(flow_run_id=run.id)), grpc.StatusCode.NOT_FOUND)


async def test_get_flow_run_state(flows, runs, unique):
    flow = await create_flow(flows, f"get-state-{unique}")
    run = await create_run(runs, flow.id)
    response = await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING, name="Warming", message="go")
    state = (await runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=response.state.id))).state
    assert state == response.state
    assert (state.type, state.name, state.message) == (state_pb2.STATE_TYPE_RUNNING, "Warming", "go")
    assert state.state_details.flow_run_id == run.id
    assert (await get_run(runs, run.id)).state == state
    first = (await runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=run.state.id))).state
    assert first == run.state


async def test_delete_current_state_keeps_the_denormalized_type(flows, runs, unique):
    flow = await create_flow(flows, f"delete-state-{unique}")
    run = await create_run(runs, flow.id)
    first_state = run.state
    current = (await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING, name="Busy")).state

    await runs.DeleteFlowRunState(runs_pb.DeleteFlowRunStateRequest(state_id=current.id))

    after = await get_run(runs, run.id)
    assert after.state_id == "" and not after.HasField("state")
    assert (after.state_type, after.state_name) == (state_pb2.STATE_TYPE_RUNNING, "Busy")
    assert [s.id for s in await history(runs, run.id)] == [first_state.id]
    await expect_code(
        runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=current.id)), grpc.StatusCode.NOT_FOUND
    )
    await expect_code(
        runs.DeleteFlowRunState(runs_pb.DeleteFlowRunStateRequest(state_id=current.id)), grpc.StatusCode.NOT_FOUND
    )
    # The run still matches filters on its (stale) state type.
    count = await runs.CountFlowRuns(
        runs_pb.CountFlowRunsRequest(
            flow_run_filter=filters_pb2.FlowRunFilter(
                id={"any": [run.id]}, state={"type": {"any": [state_pb2.STATE_TYPE_RUNNING]}}
            )
        )
    )
    assert count.count == 1


async def test_delete_an_earlier_state_keeps_the_current_one(flows, runs, unique):
    flow = await create_flow(flows, f"delete-old-state-{unique}")
    run = await create_run(runs, flow.id)
    current = (await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING)).state
    await runs.DeleteFlowRunState(runs_pb.DeleteFlowRunStateRequest(state_id=run.state.id))
    after = await get_run(runs, run.id)
    assert after.state_id == current.id and after.state == current
    assert [s.id for s in await history(runs, run.id)] == [current.id]


# -- dependencies and graph -----------------------------------------------------------------------


async def test_task_run_dependencies_of_a_run_without_task_runs(flows, runs, unique):
    flow = await create_flow(flows, f"deps-{unique}")
    run = await create_run(runs, flow.id)
    response = await runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run.id))
    assert list(response.dependencies) == []


async def test_graph_of_a_run_without_task_runs(flows, runs, unique):
    flow = await create_flow(flows, f"graph-{unique}")
    run = await create_run(runs, flow.id)
    pending = (await runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=run.id))).graph
    assert pending.start_time == run.expected_start_time, "start is the expected start before the run starts"
    assert not pending.HasField("end_time")

    await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING)
    await set_state(runs, run.id, state_pb2.STATE_TYPE_COMPLETED)
    stored = await get_run(runs, run.id)
    graph = (await runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=run.id))).graph
    assert list(graph.nodes) == [] and list(graph.root_node_ids) == [] and list(graph.artifacts) == []
    assert graph.start_time == stored.start_time
    assert graph.end_time == stored.end_time
    states = await history(runs, run.id)
    assert [(g.id, g.type, g.name, g.timestamp) for g in graph.states] == [
        (s.id, s.type, s.name, s.timestamp) for s in states
    ]
    assert [g.type for g in graph.states] == [
        state_pb2.STATE_TYPE_PENDING,
        state_pb2.STATE_TYPE_RUNNING,
        state_pb2.STATE_TYPE_COMPLETED,
    ]
    since = graph.end_time
    assert (
        list((await runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=run.id, since=since))).graph.nodes)
        == []
    )


# -- result data ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [{"type": "unpersisted"}, {"type": "unpersisted", "value": 42, "note": "kept in memory"}],
    ids=["bare", "with-extras"],
)
async def test_unpersisted_data_is_echoed_but_not_stored(flows, runs, unique, payload):
    flow = await create_flow(flows, f"unpersisted-{unique}")
    run = await create_run(runs, flow.id)
    await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING)
    response = await set_state(runs, run.id, state_pb2.STATE_TYPE_COMPLETED, data=json_value(payload))
    assert response.status == state_pb2.SET_STATE_STATUS_ACCEPT
    assert MessageToDict(response.state.data) == payload

    stored = (await runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=response.state.id))).state
    assert not stored.HasField("data")
    assert not (await get_run(runs, run.id)).state.HasField("data")
    assert not (await history(runs, run.id))[-1].HasField("data")


@pytest.mark.parametrize(
    "payload",
    [
        {"storage_key": "s3://bucket/result.json", "serializer": "json", "type": "literal"},
        {"nested": {"list": [1, "two", None, True]}},
        [1, 2, 3],
        "plain text",
        3.5,
        True,
        {"type": "persisted-elsewhere"},
        0,
        False,
        "",
        pytest.param([], id="empty-list"),
        pytest.param({}, id="empty-object"),
    ],
    ids=[
        "result-record",
        "nested",
        "list",
        "string",
        "number",
        "true",
        "other-type",
        "zero",
        "false",
        "empty-string",
        "empty-list",
        "empty-object",
    ],
)
async def test_persisted_data_is_stored_and_read_back(flows, runs, unique, payload):
    flow = await create_flow(flows, f"persisted-{unique}")
    run = await create_run(runs, flow.id)
    response = await set_state(runs, run.id, state_pb2.STATE_TYPE_RUNNING, data=json_value(payload))
    assert MessageToDict(response.state.data) == payload

    reads = [
        (await runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=response.state.id))).state,
        (await get_run(runs, run.id)).state,
        (await history(runs, run.id))[-1],
    ]
    for state in reads:
        assert state.HasField("data"), f"{payload!r} was not stored"
        assert MessageToDict(state.data) == payload
