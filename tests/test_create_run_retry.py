"""The one-statement writes of PostgreSQL (server/orchestration/unlocked.py) on a dead
connection: CreateFlowRun and SetFlowRunState's conditional write are sent once more on
a connection that BEGIN found live, and neither is ever applied twice nor reported
wrongly, whether the first attempt was never sent or committed with its answer lost.

A lost answer is simulated by running the real statement and then raising what asyncpg
raises when the connection dies mid-call; a dead pooled connection for real, by
restarting a private PostgreSQL cluster (never the shared one)."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from flowrun.server import clock
from flowrun.server.app import build_app
from flowrun.server.orchestration import unlocked
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.repositories.flow_runs import FlowRunRepository
from flowrun.v1 import flow_run_service_pb2 as pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc, state_pb2
from tests.conftest import settings_for
from tests.helpers.watching import make_flow, make_run, propose

LOST = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")


@pytest.fixture
def postgres_only(backend):
    if backend != "postgres":
        pytest.skip("the one-statement paths are PostgreSQL's")


def driver_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def counts(database_url: str, flow_id: str) -> tuple[int, int, int]:
    """(runs, states, events) of the flow's runs, read by the test itself."""
    connection = await asyncpg.connect(driver_url(database_url), timeout=10)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM flow_run WHERE flow_id = $1) AS runs, "
            "(SELECT count(*) FROM flow_run_state s JOIN flow_run r ON r.id = s.flow_run_id "
            " WHERE r.flow_id = $1) AS states, "
            "(SELECT count(*) FROM flow_run_event e JOIN flow_run r ON r.id = e.flow_run_id "
            " WHERE r.flow_id = $1) AS events",
            flow_id,
        )
    finally:
        await connection.close()
    assert row is not None
    return row["runs"], row["states"], row["events"]


def lose_first_answer(monkeypatch, owner, name: str, *, sent: bool) -> list[str]:
    """The first call of `owner.name` fails as on a connection that died: after running
    for real (`sent`: it committed, the answer was lost) or before (nothing was sent).
    Later calls run normally. Returns a log of the calls."""
    real = getattr(owner, name)
    calls: list[str] = []

    async def flaky(self, *args, **kwargs):
        calls.append(name)
        if len(calls) == 1:
            if sent:
                await real(self, *args, **kwargs)
                raise LOST
            raise asyncpg.InterfaceError("cannot perform operation: connection is closed")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)
    return calls


@pytest.mark.parametrize("sent", [False, True], ids=["never-sent", "committed-answer-lost"])
@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "idempotency-key"])
async def test_create_whose_answer_was_lost_is_retried_once_and_not_duplicated(
    postgres_only, database_url, flows, runs, unique, monkeypatch, sent, keyed
):
    flow_id = await make_flow(flows, unique)
    calls = lose_first_answer(monkeypatch, FlowRunRepository, "create_in_one_statement", sent=sent)
    fields = {"idempotency_key": f"key-{unique}"} if keyed else {}
    response = await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id, **fields))
    assert len(calls) == 2, "sent once more"
    assert response.created, "the run is the call's own, whichever attempt committed it"
    assert response.flow_run.state.type == state_pb2.STATE_TYPE_PENDING
    assert await counts(database_url, flow_id) == (1, 1, 1)
    got = await runs.GetFlowRun(pb.GetFlowRunRequest(flow_run_id=response.flow_run.id))
    assert got.flow_run.labels == response.flow_run.labels
    if keyed:  # the key still names that run, for a later call
        again = await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id, **fields))
        assert not again.created and again.flow_run.id == response.flow_run.id
        assert await counts(database_url, flow_id) == (1, 1, 1)


async def test_idempotency_key_semantics_are_unchanged(postgres_only, database_url, flows, runs, unique):
    flow_id = await make_flow(flows, unique)
    first = await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id, idempotency_key="k"))
    second = await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id, idempotency_key="k"))
    other = await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id, idempotency_key="other"))
    plain = await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id))
    assert first.created and not second.created and other.created and plain.created
    assert second.flow_run.id == first.flow_run.id
    assert len({first.flow_run.id, other.flow_run.id, plain.flow_run.id}) == 3
    assert await counts(database_url, flow_id) == (3, 3, 3)


async def test_create_that_fails_twice_is_unavailable(postgres_only, flows, runs, unique, monkeypatch):
    """Once more, not in a loop: a database that stays unreachable is the client's to wait for."""
    flow_id = await make_flow(flows, unique)
    calls: list[int] = []

    async def dead(self, *args, **kwargs):
        calls.append(1)
        raise LOST

    monkeypatch.setattr(FlowRunRepository, "create_in_one_statement", dead)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(calls) == 2


@pytest.mark.parametrize("sent", [False, True], ids=["never-sent", "committed-answer-lost"])
async def test_set_state_whose_answer_was_lost_is_applied_once(
    postgres_only, database_url, flows, runs, unique, monkeypatch, sent
):
    flow_id = await make_flow(flows, unique)
    run = await make_run(runs, flow_id)
    calls = lose_first_answer(monkeypatch, FlowRunRepository, "save_transition_if_unchanged", sent=sent)
    response = await runs.SetFlowRunState(
        pb.SetFlowRunStateRequest(flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
    )
    assert len(calls) == 2, "sent once more"
    assert response.status == state_pb2.SET_STATE_STATUS_ACCEPT
    assert response.state.type == state_pb2.STATE_TYPE_RUNNING
    history = await runs.ListFlowRunStates(pb.ListFlowRunStatesRequest(flow_run_id=run.id))
    assert [state.type for state in history.states] == [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING]
    assert history.states[-1].id == response.state.id
    assert await counts(database_url, flow_id) == (1, 2, 2)


async def test_set_state_lost_while_another_change_won_is_decided_again(
    postgres_only, database_url, flows, runs, unique, monkeypatch
):
    """The first attempt never arrived and another change committed meanwhile: the
    write sent again does not apply (row version), no state of ours exists, so the
    proposal is decided again from a fresh read, not reported as written."""
    flow_id = await make_flow(flows, unique)
    run = await make_run(runs, flow_id)
    real = FlowRunRepository.save_transition_if_unchanged
    calls: list[int] = []

    async def overtaken(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(FlowRunRepository, "save_transition_if_unchanged", real)
            await propose(runs, run.id, "STATE_TYPE_SCHEDULED", force=True)  # another client wins
            raise asyncpg.InterfaceError("cannot perform operation: connection is closed")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(FlowRunRepository, "save_transition_if_unchanged", overtaken)
    response = await runs.SetFlowRunState(
        pb.SetFlowRunStateRequest(flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
    )
    assert response.status == state_pb2.SET_STATE_STATUS_ACCEPT
    history = await runs.ListFlowRunStates(pb.ListFlowRunStatesRequest(flow_run_id=run.id))
    assert [state.type for state in history.states] == [
        state_pb2.STATE_TYPE_PENDING,
        state_pb2.STATE_TYPE_SCHEDULED,
        state_pb2.STATE_TYPE_RUNNING,
    ]
    assert await counts(database_url, flow_id) == (1, 3, 3)


async def test_a_resent_set_state_blocked_by_its_first_attempt_is_unavailable_not_aborted(
    postgres_only, served, database_url, unique, monkeypatch
):
    """The client side of the first attempt's connection gave up while the statement
    still runs on the server (here: a transaction holding the run's row lock stands in
    for it). The resend waits for that lock until lock_timeout; the first attempt may
    still commit, so the answer is UNAVAILABLE (outcome unknown), not ABORTED (which
    says nothing was written)."""
    _, flows, runs = await served(lock_timeout_ms=300)
    run = await make_run(runs, await make_flow(flows, unique))
    holder = await asyncpg.connect(driver_url(database_url), timeout=10)
    real = FlowRunRepository.save_transition_if_unchanged
    try:

        async def first_still_running(self, *args, **kwargs):
            monkeypatch.setattr(FlowRunRepository, "save_transition_if_unchanged", real)
            await holder.execute("BEGIN")
            await holder.execute("SELECT 1 FROM flow_run WHERE id = $1 FOR UPDATE", run.id)
            raise LOST

        monkeypatch.setattr(FlowRunRepository, "save_transition_if_unchanged", first_still_running)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await propose(runs, run.id, "STATE_TYPE_RUNNING")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
    finally:
        await holder.close()  # the stand-in never writes: the run keeps its state
    history = await runs.ListFlowRunStates(pb.ListFlowRunStatesRequest(flow_run_id=run.id))
    assert [state.type for state in history.states] == [state_pb2.STATE_TYPE_PENDING]


async def test_a_resent_create_blocked_by_its_first_attempt_is_unavailable_then_created_once(
    postgres_only, served, database_url, unique, monkeypatch
):
    """The first attempt's statement is still running on the server (here: run for real
    in a transaction that commits only later) when the resend with the same run id
    arrives: its insert waits on that id until lock_timeout, and the answer is
    UNAVAILABLE (outcome unknown), not ABORTED; once the first commits, the run exists
    once."""
    app, flows, runs = await served(lock_timeout_ms=300)
    flow_id = await make_flow(flows, unique)
    real = FlowRunRepository.create_in_one_statement
    inserted, release = asyncio.Event(), asyncio.Event()

    async def commit_later(run, state, payload) -> None:
        async with app.database.unit_of_work(write=True) as uow:
            await real(uow.repos.flow_runs, run, state, payload)
            inserted.set()
            await release.wait()

    async def first_still_running(self, run, state, payload):
        monkeypatch.setattr(FlowRunRepository, "create_in_one_statement", real)
        first.append(asyncio.create_task(commit_later(run, state, payload)))
        await inserted.wait()
        raise LOST

    first: list[asyncio.Task[None]] = []
    monkeypatch.setattr(FlowRunRepository, "create_in_one_statement", first_still_running)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow_id))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
    release.set()
    await first[0]
    assert await counts(database_url, flow_id) == (1, 1, 1)


async def test_a_lost_policy_only_write_is_sent_again_and_unknown_outcomes_are_unavailable(
    postgres_only, app, flows, runs, unique
):
    """A decision that changed only the run's policy leaves no state to look for: sent
    again, it applies if the row version is still the one read; if not, whether the
    first attempt applied cannot be known, and the answer says so (ConnectionError:
    UNAVAILABLE), never that it was written."""
    run_id = (await make_run(runs, await make_flow(flows, unique))).id
    async with app.database.unit_of_work(write=True, transaction=False) as uow:
        run, version = await uow.repos.flow_runs.read_with_version(run_id)
    run.empirical_policy.resuming = True
    context = unlocked.OrchestrationContext(
        run=run, initial_state=run.state, proposed_state=None, repos=None, store=None, now=clock.now(), settings=None
    )
    store = unlocked._Deferred()
    store.policy_changed = True
    assert await unlocked._write_again(app.database, context, store, version, FLOW_RUNS)
    with pytest.raises(ConnectionError, match="outcome is unknown"):
        await unlocked._write_again(app.database, context, store, version, FLOW_RUNS)  # the row moved on


@pytest.mark.multiprocess  # a PostgreSQL cluster of the module's own
@pytest.mark.parametrize("first", ["create", "set_state", "list"])
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_first_calls_after_a_postgres_restart_succeed(private_postgres, private_database, mode, first):
    """Every pooled connection is dead after a restart: the first CreateFlowRun, the
    first SetFlowRunStates or the first ListFlowRuns, and every call after them succeed, with no client retry. The
    health check is kept out of the way (an hour apart) so that it does not renew the
    pool first."""
    app = await build_app(settings_for(private_database, health_check_interval_seconds=3600))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            flow_id = await make_flow(flows, mode)
            # Several connections into the pool: concurrent calls each take one.
            before = await asyncio.gather(*(make_run(runs, flow_id) for _ in range(4)))
            try:
                await asyncio.to_thread(private_postgres.restart, mode)
            finally:
                await asyncio.to_thread(private_postgres.ensure_running)
            if first == "list":  # ListFlowRuns reads through the asyncpg driver itself
                for _ in before:
                    listed = await runs.ListFlowRuns(pb.ListFlowRunsRequest())
                    assert {run.id for run in before} <= {run.id for run in listed.flow_runs}
            if first in ("set_state", "list"):
                for run in before:
                    await propose(runs, run.id, "STATE_TYPE_RUNNING")
            for _ in range(3):
                created = await make_run(runs, flow_id)
                assert created.state.type == state_pb2.STATE_TYPE_PENDING
            await propose(runs, created.id, "STATE_TYPE_RUNNING")
            if first == "create":
                for run in before:
                    await propose(runs, run.id, "STATE_TYPE_RUNNING")
            # 7 runs, each PENDING and its CREATED event; 5 RUNNING, each with its event.
            assert await counts(private_database, flow_id) == (7, 12, 12)
    finally:
        await app.stop(grace=0)
