"""Racing SetFlowRunState proposals and checking the histories they leave, for the
concurrency tests in one process (test_concurrency.py), across server processes
(test_multiprocess_race.py, test_workers.py) and under faults (fault_load.py).

What must hold whatever the policy decides:

(a) Every call saw, under the run's lock, the state its predecessor wrote: no two
    ACCEPTs report the same state, every state a call wrote is in the history exactly
    once, and the history holds the initial state plus one entry per writing call.
(b) Racing one transition whose repeat the core policy refuses (SCHEDULED -> PENDING,
    RUNNING -> PAUSED, ...) is accepted exactly once; the others see the changed state.
(c) A run's history is strictly increasing in timestamp and every state id appears once;
    the run's state pointer and denormalized state columns name the last entry.

The policy-consistency check infers each written state's predecessor from the history
and requires that no (from, to, force, same transition id) combination was both written
by one call and refused (ABORT / REJECT to the current state) to another: under the
conditions these tests keep (no deployments, retries, infrastructure pids, pause
timeouts, result data or custom names) the policy's answer depends on nothing else, so a
call that saw a different state than the history claims shows up as a contradiction.
Each unforced answer must also be the core policy's own for that pair (CORE_POLICY_ACCEPTS,
the decision table): so every history is a valid chain under the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import grpc
import pytest

from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc, state_pb2
from flowrun.v1 import flow_service_pb2 as flows_pb

ACCEPT = state_pb2.SET_STATE_STATUS_ACCEPT
REJECT = state_pb2.SET_STATE_STATUS_REJECT
ABORT = state_pb2.SET_STATE_STATUS_ABORT
SCHEDULED = state_pb2.STATE_TYPE_SCHEDULED
PENDING = state_pb2.STATE_TYPE_PENDING
RUNNING = state_pb2.STATE_TYPE_RUNNING
CANCELLED = state_pb2.STATE_TYPE_CANCELLED
CANCELLING = state_pb2.STATE_TYPE_CANCELLING
PAUSED = state_pb2.STATE_TYPE_PAUSED
STATE_TYPES = [value for value in state_pb2.StateType.values() if value != state_pb2.STATE_TYPE_UNSPECIFIED]

# The core policy's ACCEPT cells (README "Transition rules", spec section 7) for runs like
# these: no deployment, retries, infrastructure pid, result data or pause timeout, default
# names, scheduled times already due. Every other unforced (current, proposed) pair is
# refused (ABORT or REJECT), or for SCHEDULED -> CANCELLING replaced by CANCELLED.
_T = {
    name: state_pb2.StateType.Value(f"STATE_TYPE_{name}")
    for name in (
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "CRASHED",
        "PAUSED",
        "CANCELLING",
    )
}
_ACCEPTS = {
    "SCHEDULED": "SCHEDULED PENDING RUNNING COMPLETED FAILED CANCELLED CRASHED",
    "PENDING": "SCHEDULED RUNNING COMPLETED FAILED CANCELLED CRASHED CANCELLING",
    "RUNNING": "SCHEDULED RUNNING COMPLETED FAILED CANCELLED CRASHED PAUSED CANCELLING",
    "COMPLETED": "PENDING RUNNING COMPLETED FAILED CANCELLED",
    "FAILED": "PENDING RUNNING COMPLETED FAILED CANCELLED",
    "CANCELLED": "RUNNING COMPLETED FAILED CANCELLED",
    "CRASHED": "PENDING RUNNING COMPLETED FAILED CANCELLED",
    "PAUSED": "SCHEDULED RUNNING COMPLETED FAILED CANCELLED CRASHED CANCELLING",
    "CANCELLING": "CANCELLED",
}
CORE_POLICY_ACCEPTS = {(_T[initial], _T[proposed]) for initial, row in _ACCEPTS.items() for proposed in row.split()}
CALL_TIMEOUT_SECONDS = 30


def type_name(value: int) -> str:
    return state_pb2.StateType.Name(value).removeprefix("STATE_TYPE_")


def status_name(value: int) -> str:
    return state_pb2.SetStateStatus.Name(value).removeprefix("SET_STATE_STATUS_")


def stamp(state: state_pb2.State) -> tuple[int, int]:
    return state.timestamp.seconds, state.timestamp.nanos


@dataclass
class Call:
    """One answered SetFlowRunState call."""

    proposed: int
    force: bool
    transition_id: str
    response: runs_pb.SetFlowRunStateResponse

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def state(self) -> state_pb2.State:
        return self.response.state

    def describe(self) -> str:
        forced = " force" if self.force else ""
        return (
            f"{type_name(self.proposed)}{forced} tid={self.transition_id[:8]} -> {status_name(self.status)} "
            f"{type_name(self.state.type)} {self.state.id}"
        )


@dataclass
class RunRecord:
    """A run under test: its initial state and every answered call for it."""

    run_id: str
    initial: state_pb2.State
    calls: list[Call] = field(default_factory=list)
    last_transition_id: str = ""


def proposal(
    run_id: str, state_type: int, *, force: bool = False, transition_id: str = ""
) -> runs_pb.SetFlowRunStateRequest:
    return runs_pb.SetFlowRunStateRequest(
        flow_run_id=run_id,
        state=state_pb2.StateCreate(type=state_type, state_details=state_pb2.StateDetails(transition_id=transition_id)),
        force=force,
    )


async def propose(stub, run_id: str, state_type: int, *, force: bool = False, transition_id: str | None = None) -> Call:
    transition_id = str(uuid.uuid4()) if transition_id is None else transition_id
    response = await stub.SetFlowRunState(
        proposal(run_id, state_type, force=force, transition_id=transition_id), timeout=CALL_TIMEOUT_SECONDS
    )
    return Call(proposed=state_type, force=force, transition_id=transition_id, response=response)


async def read_history(stub, run_id: str) -> list[state_pb2.State]:
    states: list[state_pb2.State] = []
    token = ""
    while True:
        page = await stub.ListFlowRunStates(
            runs_pb.ListFlowRunStatesRequest(flow_run_id=run_id, page_size=1000, page_token=token),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        states.extend(page.states)
        token = page.next_page_token
        if not token:
            return states


def render(history: Sequence[state_pb2.State], calls: Sequence[Call]) -> str:
    lines = ["history:"]
    lines += [
        f"  {stamp(s)} {type_name(s.type)} {s.name} {s.id} tid={s.state_details.transition_id[:8]}" for s in history
    ]
    lines.append("calls:")
    lines += [f"  {call.describe()}" for call in calls]
    return "\n".join(lines)


def writer_ids(record: RunRecord) -> tuple[list[str], set[str]]:
    """(ids reported by ACCEPTs, ids only REJECTs report other than the initial state):
    the states that ACCEPTs and REJECT-with-a-new-state wrote. A REJECT to the current
    state reports a state some other call wrote (or the initial one), so it adds nothing."""
    accepted = [call.state.id for call in record.calls if call.status == ACCEPT]
    rejected = {call.state.id for call in record.calls if call.status == REJECT}
    return accepted, rejected - set(accepted) - {record.initial.id}


def check_serialized(record: RunRecord, history: Sequence[state_pb2.State]) -> None:
    """Invariants (a) and (c) for one run."""
    context = f"run {record.run_id}\n{render(history, record.calls)}"
    ids = [state.id for state in history]
    duplicated = [state_id for state_id, count in Counter(ids).items() if count > 1]
    assert not duplicated, f"states listed twice in the history: {duplicated}\n{context}"
    assert all(stamp(a) < stamp(b) for a, b in pairwise(history)), f"timestamps not strictly increasing\n{context}"
    assert ids and ids[0] == record.initial.id, f"the history does not start with the initial state\n{context}"

    by_id = {state.id: state for state in history}
    accepted, reject_written = writer_ids(record)
    twice = [state_id for state_id, count in Counter(accepted).items() if count > 1]
    assert not twice, f"several ACCEPTs report the same new state {twice}\n{context}"
    assert record.initial.id not in accepted, f"an ACCEPT reports the initial state\n{context}"
    for call in record.calls:
        assert call.state.id in by_id, (
            f"a response reports a state missing from the history: {call.describe()}\n{context}"
        )
        if call.status == ACCEPT:
            stored = by_id[call.state.id]
            assert call.state.type == call.proposed, f"an ACCEPT of another type: {call.describe()}\n{context}"
            assert (stored.type, stored.name, stamp(stored)) == (call.state.type, call.state.name, stamp(call.state)), (
                f"an ACCEPT reports a state other than the one stored: {call.describe()}\n{context}"
            )
    assert len(history) == 1 + len(accepted) + len(reject_written), (
        f"{len(history)} history entries, but 1 initial + {len(accepted)} ACCEPTs + "
        f"{len(reject_written)} REJECTs with a new state wrote them\n{context}"
    )


def check_run_matches_history(run, history: Sequence[state_pb2.State]) -> None:
    last = history[-1]
    assert (run.state_id, run.state_type, run.state_name) == (last.id, last.type, last.name), (
        f"run {run.id} points at {run.state_id} {type_name(run.state_type)} {run.state_name!r}, "
        f"its last history entry is {last.id} {type_name(last.type)} {last.name!r}"
    )
    assert run.state.id == last.id and stamp(run.state) == stamp(last)


def check_policy_consistency(record: RunRecord, history: Sequence[state_pb2.State]) -> None:
    """Each written state with its predecessor from the history must be a transition the
    policy could have made from that predecessor (see the module docstring)."""
    context = f"run {record.run_id}\n{render(history, record.calls)}"
    accepted = {call.state.id: call for call in record.calls if call.status == ACCEPT}
    _, reject_written = writer_ids(record)
    written: dict[tuple, str] = {}
    for predecessor, state in pairwise(history):
        if state.id in reject_written:
            # The only replacement these runs can get (no deployments, retries, pause
            # timeouts): Bypass...NoInfra turns SCHEDULED -> CANCELLING into CANCELLED.
            proposers = [c for c in record.calls if c.status == REJECT and c.state.id == state.id]
            assert state.type == CANCELLED and predecessor.type == SCHEDULED, (
                f"REJECT wrote {type_name(state.type)} after {type_name(predecessor.type)}\n{context}"
            )
            assert any(c.proposed == CANCELLING for c in proposers), f"CANCELLED {state.id} written unasked\n{context}"
            continue
        call = accepted[state.id]
        if call.force:
            # The minimal policy (force) accepts everything here except SCHEDULED -> CANCELLING.
            assert not (predecessor.type == SCHEDULED and call.proposed == CANCELLING), (
                f"forced CANCELLING accepted after SCHEDULED: {call.describe()}\n{context}"
            )
        same_tid = bool(call.transition_id) and call.transition_id == predecessor.state_details.transition_id
        if not call.force:
            assert not same_tid and (predecessor.type, call.proposed) in CORE_POLICY_ACCEPTS, (
                f"the core policy accepted {type_name(predecessor.type)} -> {type_name(call.proposed)}"
                f" (same transition id: {same_tid}): {call.describe()}\n{context}"
            )
        written[(predecessor.type, call.proposed, call.force, same_tid)] = f"{predecessor.id} -> {call.describe()}"
    for call in record.calls:
        refused = call.status == ABORT or (call.status == REJECT and call.state.id not in reject_written)
        if not refused:
            continue  # ACCEPT, REJECT with a new state, or WAIT (which depends on the clock)
        current = call.state
        same_tid = bool(call.transition_id) and call.transition_id == current.state_details.transition_id
        key = (current.type, call.proposed, call.force, same_tid)
        if not call.force and not same_tid:
            assert (current.type, call.proposed) not in CORE_POLICY_ACCEPTS, (
                f"the core policy refused {type_name(current.type)} -> {type_name(call.proposed)}: {call.describe()}"
                f"\n{context}"
            )
        assert key not in written, (
            f"{type_name(key[0])} -> {type_name(key[1])} (force={key[2]}, same transition id={key[3]}) was refused "
            f"to {call.describe()} but written by {written[key]}: a call saw another state than the history says\n"
            f"{context}"
        )


def check_all(record: RunRecord, history: Sequence[state_pb2.State], run) -> None:
    check_serialized(record, history)
    check_run_matches_history(run, history)
    check_policy_consistency(record, history)


@contextlib.asynccontextmanager
async def client_stubs(addresses: Sequence[str], count: int):
    """`count` FlowRunService stubs, each on its own channel, spread over `addresses`."""
    async with contextlib.AsyncExitStack() as stack:
        stubs = []
        for index in range(count):
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(addresses[index % len(addresses)]))
            await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_SECONDS)
            stubs.append(flow_run_service_pb2_grpc.FlowRunServiceStub(channel))
        yield stubs


async def new_flow(address: str, unique: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        return (
            await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"race-{unique}"), timeout=CALL_TIMEOUT_SECONDS)
        ).flow.id


async def new_run(stub, flow_id: str, state_type: int = PENDING) -> RunRecord:
    request = runs_pb.CreateFlowRunRequest(flow_id=flow_id, state=state_pb2.StateCreate(type=state_type))
    run = (await stub.CreateFlowRun(request, timeout=CALL_TIMEOUT_SECONDS)).flow_run
    assert run.state.type == state_type
    return RunRecord(run_id=run.id, initial=run.state)


async def verify_runs(stub, records: Sequence[RunRecord]) -> None:
    for record in records:
        history = await read_history(stub, record.run_id)
        run = (
            await stub.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=record.run_id), timeout=CALL_TIMEOUT_SECONDS)
        ).flow_run
        check_all(record, history, run)


async def random_race(
    addresses: Sequence[str],
    *,
    runs: int,
    clients: int,
    calls: int,
    seed: int,
    time_limit: float,
) -> list[RunRecord]:
    """Creates `runs` runs (half PENDING, half SCHEDULED) and lets `clients` clients,
    spread over `addresses`, make `calls` random proposals between them: a random target
    type, force on ~10%, a fresh transition id or (~15%) the last one proposed for that
    run. Every call must be answered OK within `time_limit` seconds overall. Returns the
    runs with their calls; `verify_runs` checks them."""
    flow_id = await new_flow(addresses[0], f"{seed}-{uuid.uuid4().hex[:8]}")
    budget = iter(range(calls))
    failures: list[str] = []
    async with client_stubs(addresses, clients) as stubs:
        records = [await new_run(stubs[0], flow_id, SCHEDULED if i % 2 else PENDING) for i in range(runs)]

        async def client(index: int, stub) -> None:
            rng = random.Random(seed * 1_000 + index)
            for _ in budget:
                record = rng.choice(records)
                if record.last_transition_id and rng.random() < 0.15:
                    transition_id = record.last_transition_id
                else:
                    transition_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                record.last_transition_id = transition_id
                target, force = rng.choice(STATE_TYPES), rng.random() < 0.1
                try:
                    call = await propose(stub, record.run_id, target, force=force, transition_id=transition_id)
                except grpc.aio.AioRpcError as exc:
                    failures.append(
                        f"client {index}: {type_name(target)} on {record.run_id}: {exc.code()} {exc.details()}"
                    )
                    continue
                record.calls.append(call)

        try:
            await asyncio.wait_for(asyncio.gather(*(client(i, stub) for i, stub in enumerate(stubs))), time_limit)
        except TimeoutError:
            pytest.fail(f"the race (seed {seed}) did not finish {calls} calls within {time_limit} s")
        assert not failures, f"{len(failures)} calls failed (seed {seed}):\n" + "\n".join(failures[:20])
        try:
            await verify_runs(stubs[0], records)
        except AssertionError as exc:
            raise AssertionError(f"(race seed {seed}) {exc}") from None
    return records
