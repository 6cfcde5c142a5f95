"""Limits on what a request's filters may hold, alike on SQLite and PostgreSQL.

- At most MAX_FILTER_VALUES (10,000) values in all the lists of one request's filters:
  PostgreSQL's protocol takes at most 32,767 bind parameters per statement, and a request
  of many full lists failed there (UNAVAILABLE / INTERNAL) while SQLite answered.
- A `like` or `startswith` text of at most MAX_PATTERN_LENGTH (1,000) characters, the
  longest value a filtered field can hold: SQLite refused a pattern past 50,000 bytes
  (INTERNAL) and PostgreSQL spent time in proportion to length x rows.
- 1,000 `startswith` prefixes (the per-list cap) work on SQLite, whose parser refused the
  flat OR of 1,000 terms as deeper than 1,000.

Refusals are INVALID_ARGUMENT with a BadRequest naming the field.
"""

from __future__ import annotations

import uuid

import grpc
import pytest

from flowrun.server.services.filters_from_proto import (
    MAX_FILTER_VALUES,
    MAX_LIST_VALUES,
    MAX_PATTERN_CHARACTERS,
    MAX_PATTERN_LENGTH,
)
from flowrun.v1 import (
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    flow_run_service_pb2,
    flow_service_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
    work_pool_service_pb2,
    work_pool_service_pb2_grpc,
)
from tests.helpers.rich_errors import expect_error

# Lists of a FlowRunFilter, ids or strings: eleven, so they can hold more than the cap.
FLOW_RUN_LISTS = [
    *(
        f"flow_run_filter.{f}.{side}"
        for f in ("id", "deployment_id", "flow_id", "parent_task_run_id")
        for side in ("any", "not_any")
    ),
    "flow_run_filter.name.any",
    "flow_run_filter.name.not_any",
    "flow_run_filter.name.startswith",
]
TASK_RUN_LISTS = [
    "task_run_filter.id.any",
    "task_run_filter.id.not_any",
    "task_run_filter.flow_run_id.any",
    "task_run_filter.flow_run_id.not_any",
    "task_run_filter.name.any",
    "task_run_filter.name.not_any",
    "task_run_filter.name.startswith",
    "task_run_filter.tags.all",
    "task_run_filter.tags.any",
    "task_run_filter.state.name.any",
    "task_run_filter.state.name.not_any",
]
# Every list these filters have: full, they hold at most the cap.
DEPLOYMENT_LISTS = [
    "deployment_filter.id.any",
    "deployment_filter.id.not_any",
    "deployment_filter.name.any",
    "deployment_filter.name.not_any",
    "deployment_filter.name.startswith",
    "deployment_filter.tags.all",
    "deployment_filter.tags.any",
    "deployment_filter.work_queue_name.any",
    "deployment_filter.work_queue_name.not_any",
    "deployment_filter.work_queue_name.startswith",
]
WORK_POOL_LISTS = [
    f"work_pool_filter.{f}.{side}"
    for f in ("id", "name", "type")
    for side in ("any", "not_any", "startswith")
    if not (f == "id" and side == "startswith")
]
WORK_QUEUE_LISTS = [
    "work_queue_filter.id.any",
    "work_queue_filter.id.not_any",
    "work_queue_filter.name.any",
    "work_queue_filter.name.not_any",
    "work_queue_filter.name.startswith",
]


def filled(request, lists: list[str], total: int):
    """`request` with `total` values spread over `lists`, each at most MAX_LIST_VALUES."""
    for path in lists:
        count = min(total, MAX_LIST_VALUES)
        total -= count
        *parents, field = path.split(".")
        message = request
        for name in parents:
            message = getattr(message, name)
        is_id = parents[-1] in ("id", "deployment_id", "flow_id", "parent_task_run_id", "flow_run_id")
        getattr(message, field).extend(str(uuid.UUID(int=i + 1)) if is_id else f"v{i}" for i in range(count))
    assert total == 0, "not enough lists for the total"
    return request


async def expect_over_total(call, root: str) -> None:
    error = await expect_error(call)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = error.field_violations.items()
    assert field.startswith(f"{root}.")
    assert description == (
        f"the filters of one request hold at most {MAX_FILTER_VALUES} values in all, got {MAX_FILTER_VALUES + 1}"
    )


FLOW_RUN_RPCS = [
    ("runs", "ListFlowRuns", flow_run_service_pb2.ListFlowRunsRequest),
    ("runs", "CountFlowRuns", flow_run_service_pb2.CountFlowRunsRequest),
    ("flows", "ListFlows", flow_service_pb2.ListFlowsRequest),
    ("flows", "CountFlows", flow_service_pb2.CountFlowsRequest),
]


@pytest.fixture(scope="module")
async def stubs(channel, flows, runs):
    return {
        "flows": flows,
        "runs": runs,
        "tasks": task_run_service_pb2_grpc.TaskRunServiceStub(channel),
        "deployments": deployment_service_pb2_grpc.DeploymentServiceStub(channel),
        "pools": work_pool_service_pb2_grpc.WorkPoolServiceStub(channel),
    }


@pytest.fixture(scope="module")
async def seeded(stubs):
    """Rows for the filters to run over (SQLite's pattern errors need rows): a flow with
    a run whose flow_version is as long as a filtered value may be, a task run, a
    deployment, a work pool."""
    key = uuid.uuid4().hex[:10]
    flow = (await stubs["flows"].CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"limits-{key}"))).flow
    version = key + "v" * (1_000 - len(key))
    run = (
        await stubs["runs"].CreateFlowRun(
            flow_run_service_pb2.CreateFlowRunRequest(flow_id=flow.id, name=f"run-{key}", flow_version=version)
        )
    ).flow_run
    await stubs["tasks"].CreateTaskRun(
        task_run_service_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key=f"task-{key}", name=f"task-{key}")
    )
    await stubs["deployments"].CreateDeployment(
        deployment_service_pb2.CreateDeploymentRequest(flow_id=flow.id, name=f"deployment-{key}")
    )
    await stubs["pools"].CreateWorkPool(work_pool_service_pb2.CreateWorkPoolRequest(name=f"pool-{key}"))
    return {"key": key, "flow": flow, "run": run, "version": version, "pool": f"pool-{key}"}


# -- total values ----------------------------------------------------------------------


@pytest.mark.parametrize(("stub", "rpc", "make"), FLOW_RUN_RPCS, ids=[r[1] for r in FLOW_RUN_RPCS])
async def test_flow_run_filters_hold_the_total_cap_and_not_one_more(stubs, seeded, stub, rpc, make):
    call = getattr(stubs[stub], rpc)
    await call(filled(make(), FLOW_RUN_LISTS, MAX_FILTER_VALUES))
    await expect_over_total(call(filled(make(), FLOW_RUN_LISTS, MAX_FILTER_VALUES + 1)), "flow_run_filter")


async def test_the_total_counts_every_filter_of_the_request(stubs, seeded):
    """The cap is on the request, not on one filter: 10,000 in flow_run_filter and one in
    flow_filter is one over."""
    request = filled(flow_run_service_pb2.ListFlowRunsRequest(), FLOW_RUN_LISTS, MAX_FILTER_VALUES)
    request.flow_filter.name.any.append("one-more")
    error = await expect_error(stubs["runs"].ListFlowRuns(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.field_violations.values()) == [
        f"the filters of one request hold at most {MAX_FILTER_VALUES} values in all, got {MAX_FILTER_VALUES + 1}"
    ]


async def test_task_run_filters_hold_the_total_cap_and_not_one_more(stubs, seeded):
    call = stubs["tasks"].ListTaskRuns
    make = task_run_service_pb2.ListTaskRunsRequest
    await call(filled(make(), TASK_RUN_LISTS, MAX_FILTER_VALUES))
    await expect_over_total(call(filled(make(), TASK_RUN_LISTS, MAX_FILTER_VALUES + 1)), "task_run_filter")


async def test_deployment_and_work_pool_filters_work_with_every_list_full(stubs, seeded):
    """These filters have at most ten lists, so full they hold the cap at most."""
    await stubs["deployments"].ListDeployments(
        filled(deployment_service_pb2.ListDeploymentsRequest(), DEPLOYMENT_LISTS, len(DEPLOYMENT_LISTS) * 1_000)
    )
    await stubs["pools"].ListWorkPools(
        filled(work_pool_service_pb2.ListWorkPoolsRequest(), WORK_POOL_LISTS, len(WORK_POOL_LISTS) * 1_000)
    )
    queues = work_pool_service_pb2.ListWorkQueuesRequest(work_pool_name=seeded["pool"])
    await stubs["pools"].ListWorkQueues(filled(queues, WORK_QUEUE_LISTS, len(WORK_QUEUE_LISTS) * 1_000))


# -- like / startswith length ----------------------------------------------------------


def _version_requests(seeded, like: str = "", startswith: str = ""):
    """ListFlowRuns, CountFlowRuns, ListFlows and CountFlows, on flow_version."""
    out = []
    for stub, rpc, make in FLOW_RUN_RPCS:
        request = make()
        request.flow_run_filter.flow_id.any.append(seeded["flow"].id)
        if like:
            request.flow_run_filter.flow_version.like = like
        if startswith:
            request.flow_run_filter.flow_version.startswith.append(startswith)
        out.append((stub, rpc, request))
    return out


def _found(rpc: str, response) -> int:
    if rpc.startswith("Count"):
        return response.count
    return len(response.flows if rpc == "ListFlows" else response.flow_runs)


async def test_a_like_and_a_prefix_as_long_as_the_longest_value_match_it(stubs, seeded):
    version = seeded["version"]
    assert len(version) == MAX_PATTERN_LENGTH
    for text in (version.upper(), version):
        for stub, rpc, request in [*_version_requests(seeded, like=text), *_version_requests(seeded, startswith=text)]:
            assert _found(rpc, await getattr(stubs[stub], rpc)(request)) == 1, rpc


async def test_a_like_of_escaped_characters_at_the_cap_is_accepted(stubs, seeded):
    """Each `%` / `_` / `\\` is sent escaped (two characters): the cap still keeps the
    pattern far under SQLite's 50,000-byte limit."""
    for text in ("%" * MAX_PATTERN_LENGTH, "\\" * MAX_PATTERN_LENGTH):
        for stub, rpc, request in [*_version_requests(seeded, like=text), *_version_requests(seeded, startswith=text)]:
            assert _found(rpc, await getattr(stubs[stub], rpc)(request)) == 0, rpc


async def test_a_like_or_a_prefix_longer_than_the_cap_is_refused_naming_it(stubs, seeded):
    text = "x" * (MAX_PATTERN_LENGTH + 1)
    expected = f"at most {MAX_PATTERN_LENGTH} characters, got {MAX_PATTERN_LENGTH + 1}"
    for stub, rpc, request in _version_requests(seeded, like=text):
        error = await expect_error(getattr(stubs[stub], rpc)(request))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.field_violations == {"flow_run_filter.flow_version.like": expected}, rpc
    for stub, rpc, request in _version_requests(seeded, startswith=text):
        error = await expect_error(getattr(stubs[stub], rpc)(request))
        assert error.field_violations == {"flow_run_filter.flow_version.startswith[0]": expected}, rpc

    deployments = deployment_service_pb2.ListDeploymentsRequest()
    deployments.deployment_filter.flow_or_deployment_name.like = text
    error = await expect_error(stubs["deployments"].ListDeployments(deployments))
    assert error.field_violations == {"deployment_filter.flow_or_deployment_name.like": expected}
    tasks = task_run_service_pb2.ListTaskRunsRequest()
    tasks.task_run_filter.name.startswith.extend(["ok", text])
    error = await expect_error(stubs["tasks"].ListTaskRuns(tasks))
    assert error.field_violations == {"task_run_filter.name.startswith[1]": expected}


# -- many prefixes -----------------------------------------------------------------------


async def test_a_thousand_prefixes_work_with_rows_present(stubs, seeded):
    """The last of 1,000 prefixes matches the run (and its flow)."""
    prefixes = [f"p{i}-" for i in range(MAX_LIST_VALUES - 1)] + [f"RUN-{seeded['key']}"]
    for stub, rpc, make in FLOW_RUN_RPCS:
        request = make()
        request.flow_run_filter.name.startswith.extend(prefixes)
        assert _found(rpc, await getattr(stubs[stub], rpc)(request)) == 1, rpc
    tasks = task_run_service_pb2.ListTaskRunsRequest()
    tasks.task_run_filter.name.startswith.extend([*prefixes[:-1], f"TASK-{seeded['key']}"])
    assert len((await stubs["tasks"].ListTaskRuns(tasks)).task_runs) == 1
    deployments = deployment_service_pb2.ListDeploymentsRequest()
    deployments.deployment_filter.name.startswith.extend([*prefixes[:-1], f"DEPLOYMENT-{seeded['key']}"])
    assert len((await stubs["deployments"].ListDeployments(deployments)).deployments) == 1


async def test_the_texts_of_one_request_hold_the_total_character_cap_and_not_one_more(stubs, seeded):
    """Every like/startswith text is matched against every row read (length x rows): an
    attacker's 3,000 prefixes of 1,000 characters took 58 ms a row on PostgreSQL."""
    texts = ["q" * MAX_PATTERN_LENGTH] * (MAX_PATTERN_CHARACTERS // MAX_PATTERN_LENGTH - 1)
    at_cap = flow_run_service_pb2.CountFlowRunsRequest()
    at_cap.flow_run_filter.name.startswith.extend(texts)
    at_cap.flow_run_filter.flow_version.like = "v" * MAX_PATTERN_LENGTH
    await stubs["runs"].CountFlowRuns(at_cap)

    over = flow_run_service_pb2.CountFlowRunsRequest()
    over.CopyFrom(at_cap)
    over.flow_run_filter.work_queue_name.startswith.append("w")
    error = await expect_error(stubs["runs"].CountFlowRuns(over))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    total = MAX_PATTERN_CHARACTERS + 1
    # Named: the text that took the total past the cap (in the order the filters are read).
    assert list(error.field_violations.values()) == [
        f"the like and startswith texts of one request hold at most {MAX_PATTERN_CHARACTERS} characters "
        f"in all, got {total}"
    ]
