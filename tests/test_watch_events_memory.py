"""The outbox as set_state fills it, in memory: every flow-run state that is stored gets
exactly one event, in the order of the run's history (CREATED for the first, then
STATE_CHANGED with the type before), whatever the policy decides and whether or not the
proposal is forced; task runs get none."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from flowrun.server.config import Settings
from flowrun.server.domain.states import StateType
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.task_runs import TASK_RUNS
from flowrun.server.orchestration.transitions import set_state
from tests.helpers.memory_repositories import MemoryRepositories, proposal

SETTINGS = Settings()
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_events_follow_each_runs_history_exactly():
    repos = MemoryRepositories()
    now = START
    chooser = random.Random(12)
    runs = []
    for _ in range(6):
        run = repos.add_flow_run(now)
        await set_state(
            repos, FLOW_RUNS, run.id, proposal("PENDING", now), now, force=True, settings=SETTINGS, created=run
        )
        runs.append(run.id)
    task = repos.add_task_run(now, runs[0])
    await set_state(
        repos, TASK_RUNS, task.id, proposal("PENDING", now), now, force=True, settings=SETTINGS, created=task
    )
    for _ in range(300):
        now += timedelta(seconds=1)
        run_id = chooser.choice(runs)
        state_type = chooser.choice(list(StateType))
        await set_state(
            repos, FLOW_RUNS, run_id, proposal(state_type, now), now, force=chooser.random() < 0.2, settings=SETTINGS
        )
        if chooser.random() < 0.2:
            await set_state(repos, TASK_RUNS, task.id, proposal(state_type, now), now, force=False, settings=SETTINGS)
    appended = repos.flow_run_events.appended
    assert {run_id for _, run_id, _, _ in appended} == set(runs)  # never the task run
    for run_id in runs:
        history = [state.type.value for state in repos.flow_runs.history(run_id)]
        events = [(kind, state, previous) for kind, rid, state, previous in appended if rid == run_id]
        assert [state for _, state, _ in events] == history
        assert events[0] == ("CREATED", "PENDING", None)
        assert all(kind == "STATE_CHANGED" for kind, _, _ in events[1:])
        assert [previous for _, _, previous in events[1:]] == history[:-1]
    assert len(appended) > 6 + 50  # the policy accepted a good share, and rejected some
