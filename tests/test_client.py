"""The Python client and the `flowrun` command line against a real server."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from client import FlowrunClient, InvalidArgumentError, NotFoundError
from client import cli
from flowrun.v1 import filters_pb2, state_pb2


@pytest.fixture
async def client(app):
    async with FlowrunClient(f"127.0.0.1:{app.port}") as client:
        yield client


async def test_client_drives_a_run_and_pages(client, unique):
    flow, created = await client.create_flow(f"client-{unique}", tags=[unique], labels={"team": "data"})
    assert created and await client.get_flow_labels(flow.id) == {"team": "data"}
    run_ids = set()
    for index in range(5):
        run, _ = await client.create_flow_run(flow.id, tags=[unique], parameters={"n": index})
        run_ids.add(run.id)
    result = await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_RUNNING, transition_id=str(uuid.uuid4()))
    assert result.status == state_pb2.SET_STATE_STATUS_ACCEPT
    run_filter = filters_pb2.FlowRunFilter(tags=filters_pb2.TagsFilter(all=[unique]))
    seen = [item.id async for item in client.iter_flow_runs(flow_run_filter=run_filter, page_size=2)]
    assert sorted(seen) == sorted(run_ids)
    assert await client.count_flow_runs(flow_run_filter=run_filter) == 5
    updated = await client.update_flow_run(run.id, name=f"renamed-{unique}", tags=["x"])
    assert (updated.name, list(updated.tags)) == (f"renamed-{unique}", ["x"])


async def test_client_errors_keep_code_reason_and_fields(client):
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as not_found:
        await client.get_flow_run(missing)
    assert not_found.value.code == grpc.StatusCode.NOT_FOUND
    assert not_found.value.reason == "FLOW_RUN_NOT_FOUND"
    assert not_found.value.metadata == {"flow_run_id": missing}
    with pytest.raises(InvalidArgumentError) as invalid:
        await client.get_flow("nope")
    assert ("flow_id", "must be a UUID, got 'nope'") in invalid.value.field_violations


async def test_command_line(app, unique, capsys):
    target = f"127.0.0.1:{app.port}"
    assert await asyncio.to_thread(cli.main, ["--target", target, "flow", "create", f"cli-{unique}"]) == 0
    flow = json.loads(capsys.readouterr().out)["flow"]
    assert await asyncio.to_thread(cli.main, ["--target", target, "run", "create", flow["id"]]) == 0
    run = json.loads(capsys.readouterr().out)["flow_run"]
    code = await asyncio.to_thread(cli.main, ["--target", target, "run", "set-state", run["id"], "running"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["status"] == "SET_STATE_STATUS_ACCEPT"
    code = await asyncio.to_thread(cli.main, ["--target", target, "run", "get", "not-a-uuid"])
    assert code == 1
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
