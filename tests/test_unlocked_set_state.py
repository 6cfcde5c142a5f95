"""The two-round-trip SetFlowRunState and the one-statement CreateFlowRun on PostgreSQL
(server/orchestration/unlocked.py): a change that commits between the read and the
write is never overwritten, a write that finds the run changed leaves nothing behind,
rules that need other rows hand over to the locking path, plain runs never take the
locking path at all; a plain run is created with its first state, merged labels and
event in one statement, an idempotent replay writes nothing, and runs with a deployment
are created in a transaction."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from flowrun.server import clock
from flowrun.server.domain.events import decode_payload
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration import interceptor, unlocked
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.repositories.flow_runs import FlowRunRepository
from flowrun.v1 import deployment_service_pb2, deployment_service_pb2_grpc, flow_service_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from tests.helpers.rich_errors import expect_error

ACCEPT = state_pb2.SET_STATE_STATUS_ACCEPT


@pytest.fixture(autouse=True)
def postgres_only(backend):
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: every SetState takes the locking path there")


@pytest.fixture
def locking_calls(monkeypatch) -> list[str]:
    """The run ids the interceptor handed to the locking path."""
    calls: list[str] = []

    async def spy(repos, kind, run_id, *args, **kwargs):
        calls.append(run_id)
        return await set_state(repos, kind, run_id, *args, **kwargs)

    monkeypatch.setattr(interceptor, "set_state", spy)
    return calls


async def new_run(flows, runs, unique: str) -> str:
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"unlocked-{unique}"))).flow
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run.id


async def propose(runs, run_id: str, state_type: int) -> runs_pb.SetFlowRunStateResponse:
    request = runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type))
    return await runs.SetFlowRunState(request)


async def history(runs, run_id: str) -> list[int]:
    response = await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run_id))
    return [state.type for state in response.states]


async def event_kinds(app, run_id: str) -> list[str]:
    async with app.database.unit_of_work(write=False) as uow:
        rows = await uow.connection.exec_driver_sql(
            "SELECT kind FROM flow_run_event WHERE flow_run_id = $1 ORDER BY sequence", (run_id,)
        )
        return [row.kind for row in rows]


async def test_a_plain_run_never_takes_the_locking_path(app, flows, runs, unique, locking_calls):
    run_id = await new_run(flows, runs, unique)
    for state_type in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
        assert (await propose(runs, run_id, state_type)).status == ACCEPT
    assert locking_calls == []
    assert await history(runs, run_id) == [
        state_pb2.STATE_TYPE_PENDING,
        state_pb2.STATE_TYPE_RUNNING,
        state_pb2.STATE_TYPE_COMPLETED,
    ]
    assert await event_kinds(app, run_id) == ["CREATED", "STATE_CHANGED", "STATE_CHANGED"]


async def test_a_change_committed_between_the_read_and_the_write_is_never_overwritten(
    app, flows, runs, unique, monkeypatch, locking_calls
):
    """CANCELLING is proposed for a PENDING run; after the proposal's read, another
    transaction completes the run. The conditional write finds the row changed and
    writes nothing; decided again from a fresh read, CANCELLING is refused for the
    COMPLETED run. Without the row-version check it would land on top of COMPLETED."""
    run_id = await new_run(flows, runs, unique)
    read = FlowRunRepository.read_with_version
    interfered = []

    async def read_then_complete(self, flow_run_id):
        found = await read(self, flow_run_id)
        if not interfered:
            interfered.append(True)
            completed = State(type=StateType.COMPLETED, name="Completed", timestamp=clock.now())
            async with app.database.unit_of_work(write=True) as uow:
                await set_state(
                    uow.repos, FLOW_RUNS, flow_run_id, completed, clock.now(), force=True, settings=app.settings
                )
        return found

    monkeypatch.setattr(FlowRunRepository, "read_with_version", read_then_complete)
    response = await propose(runs, run_id, state_pb2.STATE_TYPE_CANCELLING)
    assert response.status == state_pb2.SET_STATE_STATUS_ABORT
    assert response.state.type == state_pb2.STATE_TYPE_COMPLETED
    assert await history(runs, run_id) == [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_COMPLETED]
    assert await event_kinds(app, run_id) == ["CREATED", "STATE_CHANGED"]
    assert locking_calls == []  # decided again on the same path


async def test_a_run_that_keeps_changing_is_decided_by_the_locking_path_once(
    app, flows, runs, unique, monkeypatch, locking_calls
):
    """Every conditional write finds the row changed (its version is misreported): none
    of them leaves a state or an event, and after ATTEMPTS the locking path writes the
    proposal exactly once."""
    run_id = await new_run(flows, runs, unique)
    read = FlowRunRepository.read_with_version

    async def stale(self, flow_run_id):
        run, version = await read(self, flow_run_id)
        return run, version + 1

    monkeypatch.setattr(FlowRunRepository, "read_with_version", stale)
    assert (await propose(runs, run_id, state_pb2.STATE_TYPE_RUNNING)).status == ACCEPT
    assert locking_calls == [run_id]
    assert await history(runs, run_id) == [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING]
    assert await event_kinds(app, run_id) == ["CREATED", "STATE_CHANGED"]


async def test_a_rule_that_needs_other_rows_hands_over_to_the_locking_path(
    app, flows, runs, unique, monkeypatch, locking_calls
):
    """A rule that uses the repositories (here: one made to) cannot be decided from one
    row version: the attempt writes nothing and the locking path decides."""
    run_id = await new_run(flows, runs, unique)
    handed_over = []
    real = unlocked.orchestrate

    async def needs_rows(context, policy, bookkeeping):
        try:
            context.repos.leases  # noqa: B018 - what a slot rule does first
        except unlocked.NeedsRowLocks:
            handed_over.append(True)
            raise
        await real(context, policy, bookkeeping)

    monkeypatch.setattr(unlocked, "orchestrate", needs_rows)
    assert (await propose(runs, run_id, state_pb2.STATE_TYPE_RUNNING)).status == ACCEPT
    assert handed_over == [True]
    assert locking_calls == [run_id]
    assert await history(runs, run_id) == [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING]


async def test_a_policy_only_write_needs_the_version_it_read(app, flows, runs, unique):
    """The write of a decision that stored no state but changed the run's policy (the
    second statement's other form) lands only on the row version it read."""
    run_id = await new_run(flows, runs, unique)
    async with app.database.unit_of_work(write=True, transaction=False) as uow:
        repository = uow.repos.flow_runs
        run, version = await repository.read_with_version(run_id)
        run.empirical_policy.resuming = True
        assert await repository.save_policy_if_unchanged(run, version, clock.now())
        assert not await repository.save_policy_if_unchanged(run, version, clock.now())  # the row moved on
        again, _ = await repository.read_with_version(run_id)
    assert again.empirical_policy.resuming is True


# CreateFlowRun in one statement (unlocked.create_flow_run_unlocked).


@pytest.fixture
def transaction_creates(monkeypatch) -> list[str]:
    """The flow ids CreateFlowRun created a run for through the transaction path."""
    calls: list[str] = []
    create = FlowRunRepository.create

    async def spy(self, new, *args, **kwargs):
        calls.append(new.flow_id)
        return await create(self, new, *args, **kwargs)

    monkeypatch.setattr(FlowRunRepository, "create", spy)
    return calls


async def test_a_plain_run_is_created_in_one_statement_with_its_event(app, flows, runs, unique, transaction_creates):
    labels = struct_pb2.Struct()
    labels.update({"team": "data", "env": "dev"})
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"one-{unique}", labels=labels))).flow
    own = struct_pb2.Struct()
    own.update({"env": "prod"})
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, labels=own))).flow_run
    assert transaction_creates == []
    expected = {"team": "data", "env": "prod", "prefect.flow.id": flow.id}
    assert MessageToDict(run.labels) == expected
    async with app.database.unit_of_work(write=False) as uow:
        rows = (
            await uow.connection.exec_driver_sql(
                "SELECT kind, payload FROM flow_run_event WHERE flow_run_id = $1", (run.id,)
            )
        ).all()
    assert [row.kind for row in rows] == ["CREATED"]
    event = decode_payload(1, rows[0].kind, clock.now(), rows[0].payload)
    assert (event.run.labels, event.run.state_type, event.state.id) == (expected, StateType.PENDING, run.state.id)
    assert await history(runs, run.id) == [state_pb2.STATE_TYPE_PENDING]


async def test_an_idempotent_replay_returns_the_first_run_and_writes_nothing(app, flows, runs, unique):
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"again-{unique}"))).flow
    request = runs_pb.CreateFlowRunRequest(flow_id=flow.id, idempotency_key="nightly")
    first, again = await runs.CreateFlowRun(request), await runs.CreateFlowRun(request)
    assert (first.created, again.created) == (True, False)
    assert again.flow_run.id == first.flow_run.id
    assert await history(runs, first.flow_run.id) == [state_pb2.STATE_TYPE_PENDING]
    assert await event_kinds(app, first.flow_run.id) == ["CREATED"]


async def test_a_run_of_an_unknown_flow_is_not_found(runs):
    request = runs_pb.CreateFlowRunRequest(flow_id=str(uuid.uuid4()))
    error = await expect_error(runs.CreateFlowRun(request))
    assert error.code == grpc.StatusCode.NOT_FOUND


async def test_a_run_with_a_deployment_is_created_in_a_transaction(channel, flows, runs, unique, transaction_creates):
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"dep-{unique}"))).flow
    deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
    request = deployment_service_pb2.CreateDeploymentRequest(flow_id=flow.id, name=f"d-{unique}")
    deployment = (await deployments.CreateDeployment(request)).deployment
    run = await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, deployment_id=deployment.id))
    assert run.created and transaction_creates == [flow.id]
