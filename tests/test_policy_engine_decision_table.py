"""The orchestration decision table (PREFECT-SPEC section 7) against the policy engine
itself: every case of tests/helpers/decision_table.py, under the same ids as the gRPC
table, run through transitions.set_state on in-memory repositories with an injected
clock. No server, no database, no real time: the whole table runs in well under a second.

Each case checks what the gRPC table checks (status, resulting state type and name,
reason, wait delay, whether a state was written, the empirical policy afterwards); with
an exact clock the wait delay is exact too. The setup that other RPCs make over gRPC
(deployments, parent task runs, infrastructure pids, a run without a state) is built
directly in the memory repositories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowrun.server.config import Settings
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.task_runs import TASK_RUNS
from flowrun.server.orchestration.transitions import RunKind, set_state
from flowrun.server.services import from_proto, to_proto
from flowrun.v1 import flow_run_pb2
from tests.helpers.decision_table import CORE_TABLE, FORCED_TABLE, Expect, Proposal, Start, table_cases, variant_cases
from tests.helpers.memory_repositories import MemoryRepositories, proposal

SETTINGS = Settings()
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # when the run and its first state are made
PROPOSED = CREATED + timedelta(seconds=1)  # when the case's proposal is made


def resolved(details: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Detail values given as timedeltas are relative to `now`, as the gRPC table sends them."""
    return {key: now + value if isinstance(value, timedelta) else value for key, value in details.items()}


def start_policy(values: dict[str, Any]):
    """The case's empirical policy, converted exactly as CreateFlowRun converts it."""
    violations = from_proto.Violations()
    policy = from_proto.policy(flow_run_pb2.FlowRunPolicy(**values), "empirical_policy", violations)
    violations.raise_if_any()
    return policy


async def first_state(repos: MemoryRepositories, kind: RunKind, run: Any, state: State) -> None:
    """A new run's first state: forced, on the run just created, as CreateFlowRun and
    CreateTaskRun set it."""
    await set_state(repos, kind, run.id, state, CREATED, force=True, settings=SETTINGS, created=run)


async def start_run(repos: MemoryRepositories, start: Start) -> FlowRun:
    """The run as the gRPC table sets it up: created with its first state (forced, as
    CreateFlowRun does), which is deleted again for a run without a state."""
    parent_task_run_id = None
    if start.subflow:
        parent = repos.add_flow_run(CREATED)
        await first_state(repos, FLOW_RUNS, parent, proposal("PENDING", CREATED))
        task = repos.add_task_run(CREATED, parent.id, "subflow")
        await first_state(repos, TASK_RUNS, task, proposal("PENDING", CREATED))
        parent_task_run_id = task.id
    run = repos.add_flow_run(
        CREATED,
        deployment_id=repos.leases.add_deployment() if start.deployment else None,
        parent_task_run_id=parent_task_run_id,
        infrastructure_pid=start.infrastructure_pid or None,
        empirical_policy=start_policy(start.policy),
    )
    first = proposal(start.type or "PENDING", CREATED, start.name, data=start.data, **resolved(start.details, CREATED))
    await first_state(repos, FLOW_RUNS, run, first)
    if start.type is None:  # the only way to a run without a current state
        repos.flow_runs.delete_state(run.id, repos.flow_runs.get(run.id).state_id)
    return repos.flow_runs.get(run.id)


def policy_fields(policy) -> dict[str, Any]:
    """The policy fields the table names, as a client reads them (retry_type as the enum)."""
    return {
        "pause_keys": sorted(policy.pause_keys),
        "resuming": policy.resuming,
        "retry_type": to_proto.RETRY_TYPES.get(policy.retry_type),
        "retries": policy.retries,
    }


async def check(start: Start, proposed: Proposal, expect: Expect) -> None:
    repos = MemoryRepositories()
    run = await start_run(repos, start)
    before = [state.id for state in repos.flow_runs.history(run.id)]
    state = proposal(
        proposed.type,
        PROPOSED,
        proposed.name,
        message=proposed.message,
        data=proposed.data,
        **resolved(proposed.details, PROPOSED),
    )

    result = await set_state(repos, FLOW_RUNS, run.id, state, PROPOSED, force=proposed.force, settings=SETTINGS)

    assert (result.status.value, result.reason or "") == (expect.status, expect.reason)
    if expect.delay is None:
        assert result.delay_seconds is None
    else:  # the clock is exact: the scheduled time is IN_FUTURE after creation, 1 s ago
        low, high = expect.delay
        assert low <= result.delay_seconds <= high
        assert result.delay_seconds == int((run.state.state_details.scheduled_time - PROPOSED).total_seconds())
    after = [state.id for state in repos.flow_runs.history(run.id)]
    current = repos.flow_runs.get(run.id)
    if expect.state is None:  # nothing written: the current state comes back unchanged
        assert after == before
        assert result.state == run.state
        assert current.state_id == run.state_id
    else:
        state_type, name = expect.state
        assert (result.state.type, result.state.name) == (StateType(state_type), name)
        assert after == [*before, result.state.id]
        assert current.state_id == result.state.id
        assert (current.state_type, current.state_name) == (result.state.type, name)
        assert (result.state.message or "") == expect.message
    if expect.keeps_policy:
        assert current.empirical_policy == run.empirical_policy
    if expect.policy:
        actual = policy_fields(current.empirical_policy)
        assert {key: actual[key] for key in expect.policy} == {
            key: sorted(value) if isinstance(value, list) else value for key, value in expect.policy.items()
        }


@pytest.mark.parametrize(("start", "proposed", "expect"), table_cases(CORE_TABLE, force=False))
async def test_core_policy(start, proposed, expect):
    await check(start, proposed, expect)


@pytest.mark.parametrize(("start", "proposed", "expect"), table_cases(FORCED_TABLE, force=True))
async def test_forced(start, proposed, expect):
    await check(start, proposed, expect)


@pytest.mark.parametrize(("start", "proposed", "expect"), variant_cases())
async def test_variant(start, proposed, expect):
    await check(start, proposed, expect)
