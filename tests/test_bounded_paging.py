"""Bounded pages: a List response never outgrows the message limit (the page is cut and
its token continues after the last item returned), and a signed page token whose cursor
the database cannot bind is INVALID_ARGUMENT naming page_token, never INTERNAL.

A server of its own per backend with a small max_message_bytes (1 MiB), so a handful of
runs with ~100 KB parameters already overflows one page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from flowrun.server.app import App, build_app
from flowrun.v1 import deployment_service_pb2 as dep_pb
from flowrun.v1 import (
    deployment_service_pb2_grpc,
    filters_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2_grpc,
    state_pb2,
    task_run_service_pb2_grpc,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error

MESSAGE_LIMIT = 1024 * 1024
ITEMS = 24  # ~2.4 MB of parameters in all: more than two full messages
PARAMETER_BYTES = 100_000


@pytest.fixture(scope="module")
async def small_app(database_url: str) -> AsyncIterator[App]:
    app = await build_app(settings_for(database_url, max_message_bytes=MESSAGE_LIMIT, migrate_on_start=True))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


@pytest.fixture(scope="module")
async def small_channel(small_app: App) -> AsyncIterator[grpc.aio.Channel]:
    # The client accepts more than the server may send, so an oversized response would be
    # the server's RESOURCE_EXHAUSTED, not the client's.
    options = [("grpc.max_receive_message_length", 64 * MESSAGE_LIMIT)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{small_app.port}", options=options) as channel:
        yield channel


def big_struct(seed: str) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    # Text and numbers: numbers cost more on the wire than in JSON, so both are covered.
    value.update(
        {"blob": seed * (PARAMETER_BYTES // 2 // len(seed)), "numbers": list(range(PARAMETER_BYTES // 2 // 11))}
    )
    return value


async def all_pages(call, request, field: str) -> tuple[list, int]:
    """Every item across pages and the number of pages; each response is within the limit."""
    items, pages = [], 0
    while True:
        response = await call(request)
        assert response.ByteSize() <= MESSAGE_LIMIT
        pages += 1
        items.extend(getattr(response, field))
        if not response.next_page_token:
            return items, pages
        request.page_token = response.next_page_token
        if "offset" in request.DESCRIPTOR.fields_by_name:
            request.ClearField("offset")


@pytest.mark.slow
@pytest.mark.parametrize(
    "sort",
    [
        filters_pb2.FLOW_RUN_SORT_UNSPECIFIED,
        filters_pb2.FLOW_RUN_SORT_NAME_ASC,
        filters_pb2.FLOW_RUN_SORT_START_TIME_DESC,
    ],
)
async def test_large_flow_runs_come_in_smaller_pages_each_exactly_once(small_channel, unique, sort):
    flows = flow_service_pb2_grpc.FlowServiceStub(small_channel)
    runs = flow_run_service_pb2_grpc.FlowRunServiceStub(small_channel)
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"big-{unique}"))).flow
    created = set()
    for i in range(ITEMS):
        request = runs_pb.CreateFlowRunRequest(
            flow_id=flow.id, name=f"big-{unique}-{i:02d}", parameters=big_struct(f"{i:02d}")
        )
        created.add((await runs.CreateFlowRun(request)).flow_run.id)

    request = runs_pb.ListFlowRunsRequest(flow_filter=filters_pb2.FlowFilter(id={"any": [flow.id]}), sort=sort)
    items, pages = await all_pages(runs.ListFlowRuns, request, "flow_runs")
    ids = [run.id for run in items]
    assert len(ids) == len(set(ids)) == ITEMS
    assert set(ids) == created
    assert pages >= 3
    assert all(len(run.parameters["blob"]) > 0 for run in items)


@pytest.mark.slow
async def test_offset_limit_paging_is_cut_too_and_gives_a_token(small_channel, unique):
    flows = flow_service_pb2_grpc.FlowServiceStub(small_channel)
    runs = flow_run_service_pb2_grpc.FlowRunServiceStub(small_channel)
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"off-{unique}"))).flow
    for i in range(12):
        await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, parameters=big_struct(f"{i:02d}")))
    request = runs_pb.ListFlowRunsRequest(flow_filter=filters_pb2.FlowFilter(id={"any": [flow.id]}), offset=1, limit=50)
    first = await runs.ListFlowRuns(request)
    assert 0 < len(first.flow_runs) < 11 and first.next_page_token
    items, _ = await all_pages(runs.ListFlowRuns, request, "flow_runs")
    assert len({run.id for run in items}) == len(items) == 11


@pytest.mark.slow
async def test_large_task_runs_and_states_and_deployments_are_paged_by_size(small_channel, unique):
    flows = flow_service_pb2_grpc.FlowServiceStub(small_channel)
    runs = flow_run_service_pb2_grpc.FlowRunServiceStub(small_channel)
    tasks = task_run_service_pb2_grpc.TaskRunServiceStub(small_channel)
    deployments = deployment_service_pb2_grpc.DeploymentServiceStub(small_channel)
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"mix-{unique}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run

    for i in range(ITEMS):
        await tasks.CreateTaskRun(
            tasks_pb.CreateTaskRunRequest(flow_run_id=run.id, task_key=f"t{i}", labels=_labels(f"{i:02d}"))
        )
        await deployments.CreateDeployment(
            dep_pb.CreateDeploymentRequest(
                flow_id=flow.id, name=f"d{i:02d}", tags=[unique], parameters=big_struct(f"{i:02d}")
            )
        )
        await runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(
                flow_run_id=run.id,
                state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING, message="m" * PARAMETER_BYTES),
                force=True,
            )
        )

    task_runs, pages = await all_pages(
        tasks.ListTaskRuns,
        tasks_pb.ListTaskRunsRequest(task_run_filter=filters_pb2.TaskRunFilter(flow_run_id={"any": [run.id]})),
        "task_runs",
    )
    assert len({t.id for t in task_runs}) == len(task_runs) == ITEMS and pages >= 3

    deployment_list, pages = await all_pages(
        deployments.ListDeployments,
        dep_pb.ListDeploymentsRequest(deployment_filter=filters_pb2.DeploymentFilter(tags={"all": [unique]})),
        "deployments",
    )
    assert [d.name for d in deployment_list] == [f"d{i:02d}" for i in range(ITEMS)] and pages >= 3

    states, pages = await all_pages(
        runs.ListFlowRunStates, runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id), "states"
    )
    assert len({s.id for s in states}) == len(states) == ITEMS + 1 and pages >= 3


def _labels(seed: str) -> struct_pb2.Struct:
    labels = struct_pb2.Struct()
    labels.update({f"k{j}": seed * 500 for j in range(PARAMETER_BYTES // 1000)})
    return labels


# -- page tokens whose cursor the database cannot bind ------------------------------------


def _open(token: str) -> dict:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return json.loads(raw[:-16])


def _seal(payload: dict, app: App) -> str:
    """Signs `payload` with the key `app` signs page tokens with (the database's own)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    mac = hmac.new(app.settings.page_token_secret.encode(), body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("sort", "change"),
    [
        (filters_pb2.FLOW_RUN_SORT_UNSPECIFIED, {"i": "not-a-uuid"}),
        (filters_pb2.FLOW_RUN_SORT_UNSPECIFIED, {"k": "not-a-uuid"}),
        (filters_pb2.FLOW_RUN_SORT_UNSPECIFIED, {"k": 12}),
        (filters_pb2.FLOW_RUN_SORT_UNSPECIFIED, {"i": 7}),
        (filters_pb2.FLOW_RUN_SORT_NAME_ASC, {"k": 12}),
        (filters_pb2.FLOW_RUN_SORT_NAME_ASC, {"k": "a\u0000b"}),
        (filters_pb2.FLOW_RUN_SORT_NAME_ASC, {"i": "x" * 40}),
        (filters_pb2.FLOW_RUN_SORT_START_TIME_DESC, {"k": "yesterday"}),
        (filters_pb2.FLOW_RUN_SORT_START_TIME_DESC, {"k": 10**18}),
        (filters_pb2.FLOW_RUN_SORT_START_TIME_DESC, {"k": 1.5}),
        (filters_pb2.FLOW_RUN_SORT_START_TIME_DESC, {"k": None}),
    ],
)
async def test_signed_token_with_unbindable_cursor_is_invalid_page_token(app, runs, flows, unique, sort, change):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"tok-{unique}"))).flow
    for _ in range(2):
        await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))
    request = runs_pb.ListFlowRunsRequest(
        flow_filter=filters_pb2.FlowFilter(id={"any": [flow.id]}), sort=sort, page_size=1
    )
    token = (await runs.ListFlowRuns(request)).next_page_token
    payload = _open(token)
    request.page_token = _seal(payload, app)
    assert len((await runs.ListFlowRuns(request)).flow_runs) == 1  # re-sealing alone changes nothing

    request.page_token = _seal(payload | change, app)
    error = await expect_error(runs.ListFlowRuns(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert list(error.field_violations) == ["page_token"]


async def test_state_history_token_with_non_uuid_cursor_is_invalid(app, runs, flows, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"hist-{unique}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
        )
    )
    request = runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id, page_size=1)
    payload = _open((await runs.ListFlowRunStates(request)).next_page_token)
    request.page_token = _seal(payload | {"i": "'; drop table flow_run; --"}, app)
    error = await expect_error(runs.ListFlowRunStates(request))
    assert (error.code, list(error.field_violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
