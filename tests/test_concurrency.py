"""SetFlowRunState under real concurrency: clients on separate channels race proposals
against one in-process server, on SQLite and on PostgreSQL. The invariants every race
must keep, and their checks, are in tests/helpers/races.py (shared with the
multi-process tests)."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from flowrun.v1 import flow_run_service_pb2 as runs_pb
from tests.helpers.races import (
    ABORT,
    ACCEPT,
    CANCELLING,
    PAUSED,
    PENDING,
    REJECT,
    RUNNING,
    SCHEDULED,
    check_all,
    client_stubs,
    new_flow,
    new_run,
    propose,
    random_race,
    read_history,
    render,
    type_name,
)

# Also behind pgbouncer in transaction pooling mode (tests/conftest.py).
pytestmark = pytest.mark.pgbouncer

# --- the tests -------------------------------------------------------------------------


@pytest.fixture
def address(app) -> str:
    return f"127.0.0.1:{app.port}"


@pytest.mark.parametrize(("clients", "rounds"), [(2, 10), (16, 3)])
async def test_concurrent_proposals_are_serialized(address, runs, unique, clients, rounds):
    """`clients` calls propose RUNNING on one PENDING run at once (`rounds` times, on a
    fresh run each time: two calls overlap only now and then). PENDING -> RUNNING and
    RUNNING -> RUNNING are both accepted by the policy, so every call writes; serialized,
    each one starts from the state the previous one wrote. The run's bookkeeping makes a
    lost update visible: run_count counts every RUNNING entry, total_run_time every
    stretch spent RUNNING."""
    flow_id = await new_flow(address, unique)
    async with client_stubs([address], clients) as stubs:
        for _ in range(rounds):
            record = await new_run(runs, flow_id, PENDING)
            record.calls = list(await asyncio.gather(*(propose(stub, record.run_id, RUNNING) for stub in stubs)))

            history = await read_history(runs, record.run_id)
            run = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=record.run_id))).flow_run
            check_all(record, history, run)
            assert [call.status for call in record.calls] == [ACCEPT] * clients, render(history, record.calls)
            assert [state.type for state in history] == [PENDING] + [RUNNING] * clients
            assert run.run_count == clients, f"run_count {run.run_count} after {clients} accepted RUNNING states"
            assert run.start_time == history[1].timestamp
            running = history[1].timestamp.ToDatetime()
            expected_run_time = (history[-1].timestamp.ToDatetime() - running).total_seconds()
            assert run.total_run_time.ToTimedelta().total_seconds() == pytest.approx(expected_run_time, abs=1e-5)


RACES = {
    # SCHEDULED -> PENDING is accepted once; then PENDING -> PENDING("Pending") is aborted.
    "scheduled-to-pending": (SCHEDULED, PENDING, False),
    # RUNNING -> PAUSED once; then PAUSED -> PAUSED is rejected (not running).
    "running-to-paused": (RUNNING, PAUSED, False),
    # RUNNING -> CANCELLING once; then CANCELLING -> CANCELLING is rejected.
    "running-to-cancelling": (RUNNING, CANCELLING, False),
    # Retries of one proposal (one transition id): applied once, then "already made".
    "same-transition-id": (PENDING, RUNNING, True),
}


@pytest.mark.parametrize("race", list(RACES))
async def test_racing_one_transition_accepts_exactly_one(address, runs, unique, race):
    """20 clients propose the same transition (no force) on one run at once. The first to
    hold the lock is accepted; each later one finds the state already changed, and the
    core policy refuses the same transition from there (ABORT or REJECT to the current
    state), so the losers write nothing and report the winner's state.

    The refusals come from the core policy (server/orchestration/core_rules.py,
    pause_rules.py): without it every proposal is accepted and the count below fails."""
    initial, target, shared_transition_id = RACES[race]
    flow_id = await new_flow(address, unique)
    record = await new_run(runs, flow_id, initial)
    shared = str(uuid.uuid4()) if shared_transition_id else None
    async with client_stubs([address], 20) as stubs:
        record.calls = list(
            await asyncio.gather(*(propose(stub, record.run_id, target, transition_id=shared) for stub in stubs))
        )

    history = await read_history(runs, record.run_id)
    run = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=record.run_id))).flow_run
    check_all(record, history, run)
    winners = [call for call in record.calls if call.status == ACCEPT]
    assert len(winners) == 1, (
        f"{len(winners)} of 20 racing {type_name(initial)} -> {type_name(target)} proposals were accepted\n"
        + render(history, record.calls)
    )
    assert [state.id for state in history] == [record.initial.id, winners[0].state.id]
    losers = [call for call in record.calls if call is not winners[0]]
    assert all(call.status in (ABORT, REJECT) and call.state.id == winners[0].state.id for call in losers), render(
        history, record.calls
    )


@pytest.mark.slow  # 240 random proposals
async def test_random_proposals_keep_every_history_consistent(address, unique):
    """16 clients make 240 random proposals (random target, force on ~10%, some repeated
    transition ids) on 6 runs of one in-process server."""
    seed = random.randrange(1_000_000)
    await random_race([address], runs=6, clients=16, calls=240, seed=seed, time_limit=60)
