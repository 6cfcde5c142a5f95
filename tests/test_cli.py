"""The `flowrun` command line: every command against the in-process server, through
main(argv) with stdout and stderr captured (so not a terminal: JSON unless -o table).

The subprocess cases (a closed pipe, gRPC core's log lines, the server's busy port) are in
tests/test_cli_process.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from flowrun.client import FlowrunClient, cli, commands_runs
from flowrun.client import cli_args as cli_args_module
from flowrun.v1 import state_pb2

Flowrun = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def flowrun(app, capsys, monkeypatch) -> Flowrun:
    """Run one `flowrun` command against the test server: (exit code, stdout, stderr).
    Output goes to a pipe, as from a script: no COLUMNS of the test runner's (pytest-xdist
    sets 80 in its workers) narrows the tables."""
    target = f"127.0.0.1:{app.port}"
    monkeypatch.delenv("COLUMNS", raising=False)

    async def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["--target", target, "--no-retry", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
async def client(app):
    async with FlowrunClient(f"127.0.0.1:{app.port}") as client:
        yield client


async def ok(flowrun: Flowrun, *args: str) -> dict:
    """A command that must succeed and print JSON."""
    code, out, err = await flowrun(*args)
    assert (code, err) == (0, ""), (code, err)
    return json.loads(out)


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# Flows


async def test_flow_create_ls_count_inspect_delete(flowrun, unique):
    created = await ok(flowrun, "flow", "create", f"cli-{unique}", "--tag", "t1", "--tag", unique)
    assert created["created"] is True and created["flow"]["tags"] == ["t1", unique]
    again = await ok(flowrun, "flow", "create", f"cli-{unique}")
    assert again["created"] is False and again["flow"]["id"] == created["flow"]["id"]
    other = (await ok(flowrun, "flow", "create", f"cli-{unique}-b", "--tag", unique))["flow"]

    listed = await ok(flowrun, "flow", "ls", "--tag", unique, "--sort", "name-desc")
    assert [flow["name"] for flow in listed["flows"]] == [f"cli-{unique}-b", f"cli-{unique}"]
    assert listed["more"] is False
    limited = await ok(flowrun, "flow", "ls", "--name", unique, "--limit", "1", "--sort", "name")
    assert [flow["name"] for flow in limited["flows"]] == [f"cli-{unique}"] and limited["more"] is True
    assert (await ok(flowrun, "flow", "count", "--tag", unique, "--tag", "t1"))["count"] == 1
    await ok(flowrun, "deployment", "create", other["id"], f"d-{unique}")
    with_deployment = await ok(flowrun, "flow", "ls", "--tag", unique, "--with-deployment")
    assert [flow["id"] for flow in with_deployment["flows"]] == [other["id"]]
    assert (await ok(flowrun, "flow", "count", "--tag", unique, "--without-deployment"))["count"] == 1

    by_name = await ok(flowrun, "flow", "inspect", f"cli-{unique}")
    by_id = await ok(flowrun, "flow", "get", created["flow"]["id"])
    assert by_name["flow"] == by_id["flow"] and by_name["run_count"] == 0

    assert (await ok(flowrun, "flow", "delete", f"cli-{unique}"))["deleted_flow_ids"] == [created["flow"]["id"]]
    code, _, err = await flowrun("flow", "inspect", f"cli-{unique}")
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND", "FLOW_NOT_FOUND")
    # Several at once: the ones that exist are deleted, the missing one is reported and fails the command.
    missing = str(uuid.uuid4())
    code, out, err = await flowrun("flow", "delete", other["id"], missing)
    assert code == 1 and json.loads(out)["deleted_flow_ids"] == [other["id"]]
    assert_one_error_line(err, "NOT_FOUND", missing)


async def test_flow_tables(flowrun, unique):
    await ok(flowrun, "flow", "create", f"table-{unique}", "--tag", "nightly")
    code, out, err = await flowrun("-o", "table", "flow", "ls", "--name", unique)
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split() == ["ID", "NAME", "TAGS", "CREATED"]
    assert f"table-{unique}" in row and "nightly" in row
    # The option also goes after the command, and $FLOWRUN_OUTPUT sets the default.
    code, out, _ = await flowrun("flow", "inspect", f"table-{unique}", "--output", "table")
    assert code == 0 and "runs: 0" in out and not out.startswith("{")


async def test_output_follows_flowrun_output_variable(flowrun, unique, monkeypatch):
    await ok(flowrun, "flow", "create", f"env-{unique}")
    monkeypatch.setenv("FLOWRUN_OUTPUT", "table")
    code, out, _ = await flowrun("flow", "count", "--name", f"env-{unique}")
    assert (code, out) == (0, "1\n")
    code, out, _ = await flowrun("flow", "count", "--name", f"env-{unique}", "-o", "json")
    assert (code, json.loads(out)) == (0, {"count": 1})
    monkeypatch.setenv("FLOWRUN_OUTPUT", "yaml")
    code, out, err = await flowrun("flow", "count")
    assert (code, out) == (2, "") and "FLOWRUN_OUTPUT='yaml'" in err
    code, out, _ = await flowrun("flow", "count", "--name", f"env-{unique}", "-o", "json")
    assert (code, json.loads(out)) == (0, {"count": 1})  # a number, not proto JSON's int64 string


# Runs


async def make_flow(flowrun: Flowrun, name: str) -> str:
    return (await ok(flowrun, "flow", "create", name))["flow"]["id"]


async def test_run_create_with_parameters_tags_and_a_scheduled_time(flowrun, unique):
    flow_id = await make_flow(flowrun, f"create-{unique}")
    at = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    created = await ok(
        flowrun,
        "run",
        "create",
        f"create-{unique}",  # by name
        "--name",
        f"nightly-{unique}",
        "--params",
        '{"day": "2031-01-02", "n": 1}',
        "--param",
        "n=3",
        "--param",
        "flags=[1, 2]",
        "--param",
        "who=etl team",
        "--tag",
        "a",
        "--tag",
        "b",
        "--scheduled-at",
        "2031-01-02T03:04:05Z",
        "--idempotency-key",
        f"key-{unique}",
    )
    run = created["flow_run"]
    assert created["created"] is True and run["flow_id"] == flow_id and run["name"] == f"nightly-{unique}"
    assert run["parameters"] == {"day": "2031-01-02", "n": 3, "flags": [1, 2], "who": "etl team"}
    assert run["tags"] == ["a", "b"]
    assert run["state"]["type"] == "STATE_TYPE_SCHEDULED"
    assert run["state"]["state_details"]["scheduled_time"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run["expected_start_time"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    again = await ok(flowrun, "run", "create", flow_id, "--idempotency-key", f"key-{unique}")
    assert again["created"] is False and again["flow_run"]["id"] == run["id"]

    running = await ok(flowrun, "run", "create", flow_id, "--state", "running")
    assert running["flow_run"]["state_type"] == "STATE_TYPE_RUNNING"
    # Relative times, and what is refused before any call: exit 2 with argparse's message.
    soon = await ok(flowrun, "run", "create", flow_id, "--scheduled-at", "now+2h")
    expected = datetime.fromisoformat(soon["flow_run"]["expected_start_time"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < expected - datetime.now(UTC) <= timedelta(hours=2)
    for bad in (["--param", "novalue"], ["--params", "[1]"], ["--scheduled-at", "tomorrow"], ["--state", "done"]):
        code, out, err = await flowrun("run", "create", flow_id, *bad)
        assert code == 2 and out == "" and "Traceback" not in err, bad
    code, _, err = await flowrun("run", "create", f"no-such-flow-{unique}")
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND")


async def test_run_ls_filters_sort_limit_and_all(flowrun, client, channel, unique, monkeypatch):
    from tests.helpers.factories import create_deployment

    flow, _ = await client.create_flow(f"ls-{unique}")
    other, _ = await client.create_flow(f"ls-other-{unique}")
    deployment_id = await create_deployment(channel, flow.id)
    deployment = await client.get_deployment(deployment_id)
    pool = await client.create_work_pool(f"pool-{unique}")
    await client.create_work_queue(pool.name, "fast")
    runs = {}
    for name, kwargs in {
        "a": {"tags": [unique, "x"]},
        "b": {"tags": [unique], "deployment_id": deployment_id},
        "c": {"tags": [unique], "work_pool_name": pool.name, "work_queue_name": "fast"},
        "d": {"tags": [unique], "state": state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)},
    }.items():
        runs[name], _ = await client.create_flow_run(flow.id, name=f"{name}-{unique}", **kwargs)
    runs["e"], _ = await client.create_flow_run(other.id, name=f"e-{unique}", tags=[unique])
    await client.set_flow_run_state(runs["a"].id, state_pb2.STATE_TYPE_RUNNING)
    await client.set_flow_run_state(runs["a"].id, state_pb2.STATE_TYPE_FAILED)

    async def names(*options: str) -> list[str]:
        listed = await ok(flowrun, "run", "ls", "--tag", unique, "--sort", "name", *options)
        return [run["name"].removesuffix(f"-{unique}") for run in listed["flow_runs"]]

    assert await names() == ["a", "b", "c", "d", "e"]
    assert await names("--flow", f"ls-{unique}") == ["a", "b", "c", "d"]
    assert await names("--flow-id", other.id) == ["e"]
    assert await names("--state", "failed,crashed") == ["a"]
    assert await names("--state", "running", "--state", "failed") == ["a", "d"]
    assert await names("--state-name", "Failed") == ["a"]
    assert await names("--not-state", "pending,failed") == ["d"]
    assert await names("--not-state", "pending", "--state", "running,failed") == ["a", "d"]
    assert await names("--tag", "x") == ["a"]
    assert await names("--name", "c-") == ["c"]
    assert await names("--deployment", deployment_id) == ["b"]
    assert await names("--deployment-name", deployment.name) == ["b"]
    assert await names("--work-pool", pool.name) == ["c"]
    assert await names("--work-queue", "fast", "--work-pool", pool.name) == ["c"]
    # Start times compare the expected start of runs that have not started (as the reference does).
    assert await names("--started-after", "now-1h") == ["a", "b", "c", "d", "e"]
    assert await names("--started-after", "now+1h") == []
    assert await names("--started-before", "now-1h") == []
    assert await names("--ended-before", "now+1m") == ["a"]
    assert await names("--expected-before", "2000-01-01") == []
    assert await names("--sort", "name-desc") == ["e", "d", "c", "b", "a"]

    listed = await ok(flowrun, "run", "ls", "--tag", unique, "--sort", "name", "--limit", "2")
    assert [run["name"][0] for run in listed["flow_runs"]] == ["a", "b"] and listed["more"] is True
    code, out, err = await flowrun("-o", "table", "run", "ls", "--tag", unique, "--sort", "name", "--limit", "2")
    assert code == 0 and "--all" in err and len(out.splitlines()) == 3
    # --all follows page tokens: pages of 2 here, so three pages.
    monkeypatch.setattr(commands_runs, "MAX_PAGE", 2)
    listed = await ok(flowrun, "run", "ls", "--tag", unique, "--sort", "name", "--all")
    assert len(listed["flow_runs"]) == 5 and listed["more"] is False

    assert (await ok(flowrun, "run", "count", "--tag", unique))["count"] == 5
    assert (await ok(flowrun, "run", "count", "--tag", unique, "--state", "running"))["count"] == 1
    assert (await ok(flowrun, "run", "count", "--tag", unique, "--work-pool", pool.name))["count"] == 1

    code, out, _ = await flowrun("-o", "table", "run", "ls", "--tag", unique, "--sort", "name")
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "FLOW", "NAME", "STATE", "WHEN", "TAGS"]
    assert f"ls-{unique}" in rows[0] and "Failed" in rows[0] and f"ls-other-{unique}" in rows[4]


async def test_run_inspect_and_history(flowrun, client, unique):
    flow, _ = await client.create_flow(f"inspect-{unique}")
    run, _ = await client.create_flow_run(flow.id, parameters={"n": 1})
    for kind in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
        await client.set_flow_run_state(run.id, kind)
    inspected = await ok(flowrun, "run", "inspect", run.id, "--states", "2")
    assert inspected["flow_run"]["id"] == run.id
    assert [state["type"] for state in inspected["states"]] == ["STATE_TYPE_RUNNING", "STATE_TYPE_COMPLETED"]
    assert (await ok(flowrun, "run", "get", run.id, "--states", "0"))["states"] == []
    history = await ok(flowrun, "run", "history", run.id)
    assert [state["name"] for state in history["states"]] == ["Pending", "Running", "Completed"]
    assert (await ok(flowrun, "run", "states", run.id))["states"] == history["states"]

    code, out, _ = await flowrun("-o", "table", "run", "inspect", run.id)
    assert code == 0 and f"inspect-{unique} ({flow.id})" in out and "last 3 states" in out and "Completed" in out
    code, out, _ = await flowrun("-o", "table", "run", "history", run.id)
    assert out.splitlines()[0].split() == ["TIMESTAMP", "STATE", "ID"]  # no message: no MESSAGE column
    assert code == 0 and [line.split()[2] for line in out.splitlines()[1:]] == ["Pending", "Running", "Completed"]

    unknown = str(uuid.uuid4())
    for command in ("inspect", "history"):
        code, out, err = await flowrun("run", command, unknown)
        assert code == 1 and out == ""
        assert_one_error_line(err, "NOT_FOUND", "FLOW_RUN_NOT_FOUND", unknown)


async def test_run_tasks(flowrun, client, unique):
    flow, _ = await client.create_flow(f"tasks-{unique}")
    run, _ = await client.create_flow_run(flow.id)
    first, _ = await client.create_task_run(run.id, "extract", name=f"extract-{unique}")
    await client.create_task_run(run.id, "load", name=f"load-{unique}", dynamic_key="2")
    await client.set_task_run_state(first.id, state_pb2.STATE_TYPE_RUNNING)
    listed = await ok(flowrun, "run", "tasks", run.id)
    assert sorted(task["task_key"] for task in listed["task_runs"]) == ["extract", "load"]
    running = await ok(flowrun, "run", "tasks", run.id, "--state", "running")
    assert [task["id"] for task in running["task_runs"]] == [first.id]
    code, out, _ = await flowrun("-o", "table", "run", "tasks", run.id)
    assert code == 0 and "load [2]" in out and "Running" in out and first.id in out
    code, _, err = await flowrun("run", "tasks", str(uuid.uuid4()))
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND")


async def test_set_state_exit_codes_tell_accept_reject_wait_and_abort(flowrun, client, unique):
    flow, _ = await client.create_flow(f"codes-{unique}")
    run, _ = await client.create_flow_run(flow.id)

    code, out, _ = await flowrun("run", "set-state", run.id, "running")
    assert (code, json.loads(out)["status"]) == (cli_args_module.EXIT_OK, "SET_STATE_STATUS_ACCEPT")

    in_the_future = cli_args_module.timestamp(datetime(2100, 1, 1, tzinfo=UTC))
    later, _ = await client.create_flow_run(
        flow.id,
        state=state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_SCHEDULED, state_details=state_pb2.StateDetails(scheduled_time=in_the_future)
        ),
    )
    code, out, _ = await flowrun("run", "set-state", later.id, "running")
    assert (code, json.loads(out)["status"]) == (cli_args_module.EXIT_WAIT, "SET_STATE_STATUS_WAIT")
    code, out, _ = await flowrun("-o", "table", "run", "set-state", later.id, "running")
    assert code == 4 and out.startswith("WAIT: Scheduled (retry after ") and "Scheduled time is in the future" in out

    await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_COMPLETED)
    code, out, _ = await flowrun("run", "set-state", run.id, "cancelling")
    assert (code, json.loads(out)["status"]) == (cli_args_module.EXIT_ABORT, "SET_STATE_STATUS_ABORT")
    code, out, _ = await flowrun("-o", "table", "run", "set-state", run.id, "paused")
    assert code == 5 and out.startswith("ABORT: Completed (Run is already in terminal state")

    pending, _ = await client.create_flow_run(flow.id)
    await client.set_flow_run_state(pending.id, state_pb2.STATE_TYPE_CANCELLING)
    code, out, _ = await flowrun("run", "set-state", pending.id, "running", "--name", "Again", "--message", "m")
    assert (code, json.loads(out)["status"]) == (cli_args_module.EXIT_REJECT, "SET_STATE_STATUS_REJECT")
    # --force skips that rule (an operator's override), with the name and message given.
    forced = ("run", "set-state", pending.id, "running", "--force", "--name", "Again", "--message", "m")
    code, out, _ = await flowrun(*forced)
    state = json.loads(out)["state"]
    assert code == 0 and (state["type"], state["name"], state["message"]) == ("STATE_TYPE_RUNNING", "Again", "m")


async def test_set_state_transition_id_makes_a_resend_safe(flowrun, client, unique):
    flow, _ = await client.create_flow(f"tid-{unique}")
    run, _ = await client.create_flow_run(flow.id)
    transition = uuid.uuid4()
    code, out, _ = await flowrun("run", "set-state", run.id, "running", "--transition-id", str(transition))
    first = json.loads(out)
    assert code == 0 and first["state"]["state_details"]["transition_id"] == str(transition)
    # The same proposal again (an answer lost to a timeout): not applied twice, exit 3.
    code, out, _ = await flowrun("run", "set-state", run.id, "running", "--transition-id", transition.hex.upper())
    again = json.loads(out)
    assert code == 3 and again["reject"]["reason"] == "This run has already made this state transition."
    assert again["state"]["id"] == first["state"]["id"]
    assert len((await client.list_flow_run_states(run.id))[0]) == 2
    code, out, err = await flowrun("run", "set-state", run.id, "running", "--transition-id", "nope")
    assert code == 2 and "not a UUID" in err


async def test_cancel_follows_the_server_policy(flowrun, client, unique):
    flow, _ = await client.create_flow(f"cancel-{unique}")
    # Nothing runs a scheduled run without infrastructure: straight to CANCELLED.
    scheduled, _ = await client.create_flow_run(
        flow.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    )
    code, out, _ = await flowrun("run", "cancel", scheduled.id)
    answer = json.loads(out)
    assert code == 0 and answer["state"]["type"] == "STATE_TYPE_CANCELLED"
    assert (await client.get_flow_run(scheduled.id)).state_type == state_pb2.STATE_TYPE_CANCELLED
    # A running one waits in CANCELLING for its worker.
    running, _ = await client.create_flow_run(flow.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
    code, out, _ = await flowrun("-o", "table", "run", "cancel", running.id, "--message", "stop it")
    assert code == 0 and out.startswith("ACCEPT: Cancelling")
    current = await client.get_flow_run(running.id)
    assert (current.state_type, current.state.message) == (state_pb2.STATE_TYPE_CANCELLING, "stop it")
    # Cancelling twice is refused (REJECT, exit 3); a finished run cannot be cancelled (ABORT, exit 5).
    assert (await flowrun("run", "cancel", running.id))[0] == 3
    await client.set_flow_run_state(running.id, state_pb2.STATE_TYPE_CANCELLED)
    code, out, _ = await flowrun("run", "cancel", scheduled.id)
    assert code == 5 and json.loads(out)["status"] == "SET_STATE_STATUS_ABORT"


async def test_run_delete(flowrun, client, unique):
    flow, _ = await client.create_flow(f"delete-{unique}")
    first, _ = await client.create_flow_run(flow.id)
    second, _ = await client.create_flow_run(flow.id)
    assert (await ok(flowrun, "run", "delete", first.id))["deleted_flow_run_ids"] == [first.id]
    code, _, err = await flowrun("run", "delete", first.id)
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND")
    code, out, err = await flowrun("run", "delete", first.id, second.id)
    assert code == 1 and json.loads(out)["deleted_flow_run_ids"] == [second.id]
    assert_one_error_line(err, first.id, "NOT_FOUND")
    code, out, _ = await flowrun("-o", "table", "run", "delete", str(uuid.uuid4()))
    assert code == 1 and out == ""


# Deployments, work pools and queues


async def test_deployment_commands(flowrun, unique):
    await make_flow(flowrun, f"dep-{unique}")
    await ok(flowrun, "work-pool", "create", f"dpool-{unique}")
    created = await ok(
        flowrun,
        "deployment",
        "create",
        f"dep-{unique}",
        f"nightly-{unique}",
        "--work-pool",
        f"dpool-{unique}",
        "--concurrency-limit",
        "2",
        "--tag",
        unique,
        "--paused",
    )
    deployment = created["deployment"]
    assert (deployment["concurrency_limit"], deployment["paused"], deployment["tags"]) == (2, True, [unique])
    listed = await ok(flowrun, "deployment", "ls", "--tag", unique)
    assert [item["id"] for item in listed["deployments"]] == [deployment["id"]]
    assert (await ok(flowrun, "deployment", "ls", "--name", f"nightly-{unique}"))["deployments"][0]["id"] == (
        deployment["id"]
    )
    assert (await ok(flowrun, "deployment", "inspect", deployment["id"]))["deployment"]["name"] == f"nightly-{unique}"
    code, out, _ = await flowrun("-o", "table", "deployment", "ls", "--tag", unique)
    assert code == 0 and f"nightly-{unique}" in out and f"dpool-{unique}" in out
    code, out, _ = await flowrun("-o", "table", "deployment", "inspect", deployment["id"])
    assert code == 0 and "concurrency limit" in out
    code, _, err = await flowrun("deployment", "create", f"dep-{unique}", f"nightly-{unique}")
    assert code == 1
    assert_one_error_line(err, "ALREADY_EXISTS")
    await ok(flowrun, "deployment", "delete", deployment["id"])
    code, _, err = await flowrun("deployment", "inspect", deployment["id"])
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND")


async def test_work_pool_and_queue_commands(flowrun, unique):
    pool = (await ok(flowrun, "work-pool", "create", f"wp-{unique}", "--type", "docker", "--concurrency-limit", "3"))[
        "work_pool"
    ]
    assert (pool["type"], pool["concurrency_limit"]) == ("docker", 3)
    assert [p["name"] for p in (await ok(flowrun, "work-pool", "ls", "--name", f"wp-{unique}"))["work_pools"]] == [
        f"wp-{unique}"
    ]
    queue = (await ok(flowrun, "work-queue", "create", "urgent", "--pool", f"wp-{unique}", "--priority", "1"))[
        "work_queue"
    ]
    assert queue["work_pool_name"] == f"wp-{unique}"
    queues = await ok(flowrun, "work-queue", "ls", "--pool", f"wp-{unique}")
    assert sorted(q["name"] for q in queues["work_queues"]) == ["default", "urgent"]
    assert (await ok(flowrun, "work-queue", "inspect", "urgent", "--pool", f"wp-{unique}"))["work_queue"]["id"] == (
        queue["id"]
    )
    inspected = await ok(flowrun, "work-pool", "inspect", f"wp-{unique}")
    assert inspected["work_pool"]["id"] == pool["id"] and len(inspected["work_queues"]) == 2
    code, out, _ = await flowrun("-o", "table", "work-pool", "inspect", f"wp-{unique}")
    assert code == 0 and "urgent" in out and "docker" in out
    code, out, _ = await flowrun("-o", "table", "work-queue", "ls", "--pool", f"wp-{unique}")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["NAME", "POOL", "PRIORITY"]

    await ok(flowrun, "work-queue", "delete", "urgent", "--pool", f"wp-{unique}")
    code, _, err = await flowrun("work-queue", "inspect", "urgent", "--pool", f"wp-{unique}")
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND")
    code, _, err = await flowrun("work-queue", "ls")
    assert code == 2 and "--pool" in err
    await ok(flowrun, "work-pool", "delete", f"wp-{unique}")
    code, _, err = await flowrun("work-pool", "inspect", f"wp-{unique}")
    assert code == 1
    assert_one_error_line(err, "NOT_FOUND")


# Errors and the command line itself


async def test_errors_are_one_line_with_code_and_reason(flowrun, capsys):
    code, out, err = await flowrun("run", "inspect", "not-a-uuid")
    assert (code, out) == (1, "")
    assert_one_error_line(err, "INVALID_ARGUMENT", "flow_run_id")
    assert err.count("INVALID_ARGUMENT") == 1 and err.count("flow_run_id") == 1  # nothing said twice
    # Unreachable server: the code, the transport's reason and the attempts, on one line.
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["--target", "127.0.0.1:1", "--max-attempts", "2", "flow", "ls"])
    err = capsys.readouterr().err
    assert code == 1
    assert_one_error_line(err, "UNAVAILABLE", "failed after 2 attempts")
    code = await asyncio.to_thread(cli.main, ["--target", " ", "flow", "ls"])
    assert code == 1
    assert_one_error_line(capsys.readouterr().err, "no server address")


async def test_usage_errors_exit_2_and_help_exits_0(flowrun, capsys):
    assert (await flowrun("run", "ls", "--limit", "0"))[0] == 2
    assert (await flowrun("run", "ls", "--limit", "3", "--all"))[0] == 2
    assert (await flowrun("run", "ls", "--started-after", "yesterday"))[0] == 2
    assert (await flowrun("run", "nonsense"))[0] == 2
    code, out, _ = await flowrun("run", "set-state", "--help")
    assert code == 0 and "5 ABORT" in out and "--transition-id" in out
    code, out, _ = await flowrun("--help")
    assert code == 0 and "exit codes" in out


async def test_an_unexpected_fault_is_one_line_unless_debugging(flowrun, monkeypatch):
    async def broken(client, args):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(commands_runs, "_count", broken)
    code, _, err = await flowrun("run", "count")
    assert code == 1
    assert_one_error_line(err, "ValueError: boom second line", "FLOWRUN_DEBUG")
    monkeypatch.setenv("FLOWRUN_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        await flowrun("run", "count")


def test_times_parse_iso_and_relative_forms():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    moment = cli_args_module.moment
    assert moment("now", now=now) == now
    assert moment("now-2h", now=now) == now - timedelta(hours=2)
    assert moment("NOW + 30m", now=now) == now + timedelta(minutes=30)
    assert moment("now-1.5d", now=now) == now - timedelta(days=1.5)
    assert moment("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert moment("2026-12-01T10:00:00Z") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert moment("2026-12-01T10:00:00+01:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    for bad in ("yesterday", "now-2", "now-2y", "2026-13-01"):
        with pytest.raises(Exception, match="not a time"):
            moment(bad)


def test_token_list_prints_a_table_or_json(tmp_path, capsys):
    path = str(tmp_path / "tokens")
    assert cli.main(["token", "create", "ci", "--role", "writer", "--file", path]) == 0
    capsys.readouterr()
    assert cli.main(["token", "ls", "--file", path, "-o", "table"]) == 0
    out = capsys.readouterr().out
    assert out.split()[:4] == ["NAME", "ROLE", "CREATED", "TOKEN"] and "writer" in out
    assert cli.main(["token", "list", "--file", path]) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)] == ["ci"]


def test_tables_keep_ids_whole_on_a_narrow_terminal_and_drop_empty_columns():
    import io

    from rich.console import Console

    from flowrun.client import cli_output
    from flowrun.v1 import flow_run_pb2

    runs = [
        flow_run_pb2.FlowRun(
            id=str(uuid.UUID(int=index)),
            flow_id="f",
            name="a-rather-long-run-name-" * 2,
            state_type=state_pb2.STATE_TYPE_SCHEDULED,
            state_name="AwaitingRetry",
        )
        for index in range(3)
    ]
    buffer = io.StringIO()
    Console(file=buffer, width=80, no_color=True).print(cli_output.runs_table(runs, {"f": "etl-" * 10}))
    text = buffer.getvalue()
    assert all(run.id in text for run in runs)  # whole, on one line
    assert "AwaitingRetry" in text
    assert "TAGS" not in text  # no run has tags: no column for them
    assert max(len(line) for line in text.splitlines()) <= 80
    empty = cli_output.runs_table([], {})
    assert [str(column.header) for column in empty.columns][:2] == ["ID", "FLOW"]  # no rows: headers stay


@pytest.mark.parametrize(("environment", "target"), [("", "127.0.0.1:50051"), ("example:1", "example:1")])
def test_the_default_target_is_the_clients(monkeypatch, environment, target):
    """The CLI dials what FlowrunClient would: $FLOWRUN_TARGET, and the default when it is empty."""
    from flowrun.client import cli_parser
    from flowrun.client.client import default_target

    monkeypatch.setenv("FLOWRUN_TARGET", environment)
    assert cli_parser.build().parse_args(["flow", "ls"]).target == default_target() == target
